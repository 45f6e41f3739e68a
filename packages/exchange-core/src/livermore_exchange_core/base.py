"""The contracts every venue implements: `RestClient` (request/response) and the streaming adapter.

Domain types returned across these contracts are ours (`Candle`, `ProductInfo`, `Balance`);
each venue's wire shapes die in its `parsing.py`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, Self, runtime_checkable

from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle


@dataclass(frozen=True, slots=True)
class ProductInfo:
    """One tradable product as the exchange lists it, with its own 24h quote volume."""

    symbol: str
    base_currency: str
    quote_currency: str
    quote_volume_24h: float
    is_trading: bool = True
    display_name: str | None = None
    alias_of: str | None = None
    price: float | None = None
    """Last traded price in the quote currency, when the product list carries it."""


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset balance of an exchange account (total = available + on hold)."""

    asset: str
    available: float
    hold: float = 0.0

    @property
    def total(self) -> float:
        """Return the whole quantity held."""
        return self.available + self.hold


@runtime_checkable
class RestClient(Protocol):
    """Request/response access to one exchange, shared by backfill, boundary fetches and repair.

    Every call goes through the exchange's process-wide rate limiter; throttling answers (429/418,
    Coinbase's HTML 429 and 401-as-throttle) are honoured and retried inside the client.
    """

    @property
    def exchange_id(self) -> int:
        """The `exchanges.id` stamped on every candle this client returns."""
        ...

    async def get_candles(
        self,
        symbol: str,
        timeframe: Timeframe,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
        *,
        include_open: bool = False,
    ) -> list[Candle]:
        """Return candles oldest first, paging as needed.

        Args:
            symbol: exchange-native symbol (`BTC-USD`, `BTCUSDT`).
            timeframe: bar size.
            start_ms: earliest open time wanted (inclusive); with `end_ms` only, the newest bars.
            end_ms: latest open time wanted (exclusive).
            limit: most bars to return; with no range, the newest `limit` closed bars (default 300).
            include_open: also return the still-forming bar (marked `closed=False`).

        Raises:
            InvalidSymbolError: the exchange does not list `symbol`.
            RateLimitedError: still throttled after the client's bounded retries.
        """
        ...

    async def list_products(self) -> list[ProductInfo]:
        """Return every spot product with the exchange's own 24h quote volume."""
        ...

    async def get_balances(self) -> list[Balance]:
        """Return the account's non-zero balances.

        Raises:
            AuthenticationError: the client was built without credentials, or they were rejected.
        """
        ...

    async def server_time_ms(self) -> int:
        """Return the exchange's clock, epoch milliseconds."""
        ...

    async def aclose(self) -> None:
        """Release the HTTP session if the client owns it."""
        ...


class ExchangeAdapter(abc.ABC):
    """A live market-data stream of one exchange: closed candles, tickers, gaps and lifecycle.

    Order books are a separate, optional subscription (`subscribe_order_books`): the top levels
    of each subscribed symbol's level-2 book go to the sink's `on_order_book`.

    Everything read is delivered, in stream order, to the `MarketDataSink` given at construction.
    `connect()` starts the connection(s) and returns; they reconnect by themselves until
    `close()`. Subscriptions survive reconnects. Market time comes from the exchange's own
    timestamps (`exchange_time_ms()`), never from the local clock.
    """

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the stream connection(s) in the background (idempotent)."""

    @abc.abstractmethod
    async def subscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Stream closed candles of `symbols` x `timeframes` and tickers of `symbols`."""

    @abc.abstractmethod
    async def unsubscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Stop streaming `symbols` x `timeframes` (tickers stop with a symbol's last timeframe)."""

    @abc.abstractmethod
    async def subscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Stream the top levels of `symbols`' order books (kept across reconnects)."""

    @abc.abstractmethod
    async def unsubscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Stop streaming the order books of `symbols`; no book of theirs is delivered after."""

    @property
    @abc.abstractmethod
    def order_book_symbols(self) -> frozenset[str]:
        """The symbols whose order books are streamed."""

    @abc.abstractmethod
    async def wait_ready(self) -> None:
        """Return once every connection is open and its subscriptions are acknowledged.

        Callers bound it with a timeout; it never raises (the adapter keeps reconnecting).
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection and stop reconnecting."""

    @property
    @abc.abstractmethod
    def subscriptions(self) -> frozenset[tuple[str, Timeframe]]:
        """The (symbol, timeframe) series currently streamed."""

    @property
    @abc.abstractmethod
    def rejected(self) -> Mapping[str, str]:
        """Symbols the exchange refused to subscribe, with its reason (they are not streamed).

        A refusal never stops the other symbols, and `wait_ready` counts it as an answer.
        Subscribing a symbol again clears its entry.
        """

    @abc.abstractmethod
    def exchange_time_ms(self) -> int:
        """Return the latest exchange timestamp seen (epoch ms; 0 before any message)."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
