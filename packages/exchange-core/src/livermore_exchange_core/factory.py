"""Picking the implementation for an exchange: one `match` on `ExchangeName`, no fallback.

kraken, kucoin and mexc exist as `exchanges` rows (symbol refresh may cover them) but have no
client here; asking for one raises `UnsupportedExchange` instead of quietly using another venue.
"""

from __future__ import annotations

import aiohttp

from livermore_exchange_core.adapters.binance.adapter import DEFAULT_POLICY as BINANCE_POLICY
from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.adapters.coinbase.adapter import DEFAULT_POLICY as COINBASE_POLICY
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.base import ExchangeAdapter, RestClient
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import Credentials, ExchangeConfig
from livermore_exchange_core.errors import UnsupportedExchange
from livermore_exchange_core.events import MarketDataSink
from livermore_exchange_core.websocket import ConnectionAttemptLimiter, SocketPolicy
from livermore_schema.enums import ExchangeName


def _unsupported(name: ExchangeName) -> UnsupportedExchange:
    return UnsupportedExchange(
        f"{name.value} has no Livermore client; supported: coinbase, binance, binance_us "
        "(no fallback to another exchange)",
        exchange=name.value,
    )


def create_rest_client(
    config: ExchangeConfig,
    credentials: Credentials | None = None,
    *,
    session: aiohttp.ClientSession | None = None,
    clock_rate: float = 1.0,
) -> RestClient:
    """Return the REST client of `config.name`, sharing the process-wide rate limiter.

    Args:
        config: the resolved exchange config (endpoints, limits).
        credentials: API keys for account calls; public market data needs none.
        session: an aiohttp session to reuse (the caller closes it); else the client owns one.
        clock_rate: exchange seconds per local second (1.0 except against an accelerated sim).

    Raises:
        UnsupportedExchange: kraken, kucoin, mexc.
    """
    match config.name:
        case ExchangeName.COINBASE:
            return CoinbaseRestClient(config, credentials, session=session, clock_rate=clock_rate)
        case ExchangeName.BINANCE | ExchangeName.BINANCE_US:
            return BinanceRestClient(config, credentials, session=session, clock_rate=clock_rate)
        case ExchangeName.KRAKEN | ExchangeName.KUCOIN | ExchangeName.MEXC:
            raise _unsupported(config.name)


def create_adapter(
    config: ExchangeConfig,
    sink: MarketDataSink,
    *,
    policy: SocketPolicy | None = None,
    attempt_limiter: ConnectionAttemptLimiter | None = None,
    clock: ExchangeClock | None = None,
) -> ExchangeAdapter:
    """Return the streaming adapter of `config.name`, delivering to `sink`.

    binance and binance_us share `BinanceAdapter`; each uses its own endpoints from `config`.

    `clock` is the exchange clock the adapter advances (share it with the pipeline).

    Raises:
        UnsupportedExchange: kraken, kucoin, mexc.
    """
    match config.name:
        case ExchangeName.COINBASE:
            return CoinbaseAdapter(
                config,
                sink,
                policy=policy or COINBASE_POLICY,
                attempt_limiter=attempt_limiter,
                clock=clock,
            )
        case ExchangeName.BINANCE | ExchangeName.BINANCE_US:
            return BinanceAdapter(
                config,
                sink,
                policy=policy or BINANCE_POLICY,
                attempt_limiter=attempt_limiter,
                clock=clock,
            )
        case ExchangeName.KRAKEN | ExchangeName.KUCOIN | ExchangeName.MEXC:
            raise _unsupported(config.name)
