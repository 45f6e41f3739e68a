"""`ExchangeConfig`: one exchange's endpoints and limits, resolved once from its `exchanges` row.

The row holds the production endpoints; `EndpointSettings` (`LIVERMORE_{NAME}_WS_URL` /
`LIVERMORE_{NAME}_REST_URL`) override them: that is how tests, the demo and the simulator wire it.
Limits fall back to the exchanges' published figures when the row's `api_limits` lacks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.settings import EndpointSettings

_DEFAULT_URLS: dict[ExchangeName, tuple[str, str]] = {
    ExchangeName.COINBASE: ("wss://advanced-trade-ws.coinbase.com", "https://api.coinbase.com"),
    ExchangeName.BINANCE: ("wss://stream.binance.com:9443", "https://api.binance.com"),
    ExchangeName.BINANCE_US: ("wss://stream.binance.us:9443", "https://api.binance.us"),
    ExchangeName.KRAKEN: ("wss://ws.kraken.com", "https://api.kraken.com"),
    ExchangeName.KUCOIN: ("wss://ws-api-spot.kucoin.com", "https://api.kucoin.com"),
    ExchangeName.MEXC: ("wss://wbs.mexc.com/ws", "https://api.mexc.com"),
}


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Published limits of one exchange; `None` where the exchange has no such limit.

    Coinbase meters public REST by requests per second; Binance by request weight per minute
    (the runtime value comes from `/api/v3/exchangeInfo`; this is the starting figure).
    """

    rest_requests_per_second: float | None = None
    rest_weight_per_minute: int | None = None
    ws_messages_per_second: float | None = None
    ws_streams_per_connection: int | None = None
    ws_connections_per_5min: int | None = None


_DEFAULT_LIMITS: dict[ExchangeName, RateLimits] = {
    ExchangeName.COINBASE: RateLimits(rest_requests_per_second=10.0, ws_messages_per_second=8.0),
    ExchangeName.BINANCE: RateLimits(
        rest_weight_per_minute=6000,
        ws_messages_per_second=5.0,
        ws_streams_per_connection=1024,
        ws_connections_per_5min=300,
    ),
    ExchangeName.BINANCE_US: RateLimits(
        rest_weight_per_minute=1200,
        ws_messages_per_second=5.0,
        ws_streams_per_connection=1024,
        ws_connections_per_5min=300,
    ),
    ExchangeName.KRAKEN: RateLimits(rest_requests_per_second=1.0),
    ExchangeName.KUCOIN: RateLimits(rest_requests_per_second=10.0),
    ExchangeName.MEXC: RateLimits(rest_requests_per_second=20.0),
}

# Keys of `exchanges.api_limits` (as seeded) that map onto RateLimits fields. Coinbase's seeded
# `rest_weight_limit` is not a Coinbase concept and is ignored (SPEC section 4: 10 req/s public).
_ROW_LIMIT_KEYS: dict[str, str] = {
    "rest_calls_per_second": "rest_requests_per_second",
    "rest_requests_per_second": "rest_requests_per_second",
    "ws_messages_per_second": "ws_messages_per_second",
    "ws_streams_per_connection": "ws_streams_per_connection",
    "ws_connections_per_5min": "ws_connections_per_5min",
}


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Everything an adapter or REST client needs to reach one exchange."""

    exchange_id: int
    name: ExchangeName
    display_name: str
    ws_url: str
    rest_url: str
    limits: RateLimits = field(default_factory=RateLimits)
    supported_timeframes: frozenset[Timeframe] = frozenset()

    def supports(self, timeframe: Timeframe) -> bool:
        """Return whether the exchange serves `timeframe` natively."""
        return not self.supported_timeframes or timeframe in self.supported_timeframes


def _field(row: Any, name: str) -> Any:
    if isinstance(row, Mapping):
        return row.get(name)
    return getattr(row, name, None)


def _timeframes(raw: Any) -> frozenset[Timeframe]:
    known = {tf.value for tf in Timeframe}
    return frozenset(Timeframe(value) for value in raw or () if value in known)


def _limits(name: ExchangeName, api_limits: Any) -> RateLimits:
    values: dict[str, Any] = {}
    if isinstance(api_limits, Mapping):
        for key, attr in _ROW_LIMIT_KEYS.items():
            if api_limits.get(key) is not None:
                values[attr] = api_limits[key]
        if name is not ExchangeName.COINBASE and api_limits.get("rest_weight_limit") is not None:
            values["rest_weight_per_minute"] = int(api_limits["rest_weight_limit"])
    base = _DEFAULT_LIMITS[name]
    merged = {slot: values.get(slot, getattr(base, slot)) for slot in RateLimits.__slots__}
    return RateLimits(**merged)


def resolve_exchange_config(row: Any, endpoints: EndpointSettings) -> ExchangeConfig:
    """Build the config of one exchange from its `exchanges` row (model or mapping) and overrides.

    Raises:
        ValueError: the row has no id or names an exchange Livermore does not know.
    """
    exchange_id = _field(row, "id")
    if exchange_id is None:
        raise ValueError("exchange row has no id")
    name = ExchangeName(str(_field(row, "name")))
    default_ws, default_rest = _DEFAULT_URLS[name]
    ws_url = endpoints.ws_url(name) or _field(row, "ws_url") or default_ws
    rest_url = endpoints.rest_url(name) or _field(row, "rest_url") or default_rest
    return ExchangeConfig(
        exchange_id=int(exchange_id),
        name=name,
        display_name=str(_field(row, "display_name") or name.value),
        ws_url=str(ws_url).rstrip("/"),
        rest_url=str(rest_url).rstrip("/"),
        limits=_limits(name, _field(row, "api_limits")),
        supported_timeframes=_timeframes(_field(row, "supported_timeframes")),
    )


def default_exchange_config(
    name: ExchangeName,
    exchange_id: int,
    *,
    rest_url: str | None = None,
    ws_url: str | None = None,
) -> ExchangeConfig:
    """Build a config from the published defaults (tools and tests without a database row)."""
    default_ws, default_rest = _DEFAULT_URLS[name]
    return ExchangeConfig(
        exchange_id=exchange_id,
        name=name,
        display_name=name.value,
        ws_url=(ws_url or default_ws).rstrip("/"),
        rest_url=(rest_url or default_rest).rstrip("/"),
        limits=_DEFAULT_LIMITS[name],
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """An exchange API key pair, read from the env vars a `user_exchanges` row names.

    Coinbase: `api_key` is the CDP key name (`organizations/.../apiKeys/...`) and `api_secret`
    the EC private key PEM. Binance: the HMAC key and secret.
    """

    api_key: str
    api_secret: SecretStr

    def __repr__(self) -> str:
        return f"Credentials(api_key={self.api_key[:6]}..., api_secret=**********)"
