"""Every Redis key name Livermore uses; nothing else in the tree formats a key (SPEC 3.2).

Every public `*_key`/`*_pattern` builder returns its name under the deployment namespace and
every `parse_*` strips it (`_namespace.namespace_builders`, applied at the end of the module).
"""

from __future__ import annotations

from dataclasses import dataclass

from livermore_cache._namespace import current_namespace as current_namespace
from livermore_cache._namespace import namespace_builders
from livermore_cache._namespace import set_namespace as set_namespace
from livermore_schema.enums import IndicatorType, Timeframe


def candles_key(exchange_id: int, symbol: str, timeframe: Timeframe) -> str:
    """Tier 1 (shared) candle sorted set."""
    return f"candles:{exchange_id}:{symbol}:{timeframe.value}"


def user_candles_key(user_id: int, exchange_id: int, symbol: str, timeframe: Timeframe) -> str:
    """Tier 2 (per-user overflow) candle sorted set, with TTL."""
    return f"usercandles:{user_id}:{exchange_id}:{symbol}:{timeframe.value}"


def legacy_candles_key(user_id: int, exchange_id: int, symbol: str, timeframe: Timeframe) -> str:
    """Pre-v5 user-scoped candle key; read as a last fallback, never written."""
    return f"candles:{user_id}:{exchange_id}:{symbol}:{timeframe.value}"


def indicator_key(
    exchange_id: int, symbol: str, timeframe: Timeframe, indicator: IndicatorType
) -> str:
    """Tier 1 indicator value."""
    return f"indicator:{exchange_id}:{symbol}:{timeframe.value}:{indicator.value}"


def user_indicator_key(
    user_id: int, exchange_id: int, symbol: str, timeframe: Timeframe, indicator: IndicatorType
) -> str:
    """Tier 2 indicator value."""
    return f"userindicator:{user_id}:{exchange_id}:{symbol}:{timeframe.value}:{indicator.value}"


def legacy_indicator_key(
    user_id: int, exchange_id: int, symbol: str, timeframe: Timeframe, indicator: IndicatorType
) -> str:
    """Pre-v5 user-scoped indicator key; read-only fallback."""
    return f"indicator:{user_id}:{exchange_id}:{symbol}:{timeframe.value}:{indicator.value}"


def ticker_key(exchange_id: int, symbol: str) -> str:
    """Latest ticker of a symbol (TTL 60 s)."""
    return f"ticker:{exchange_id}:{symbol}"


def orderbook_key(exchange_id: int, symbol: str) -> str:
    """Top of book of a symbol (TTL 30 s, scalper-orderbook mode)."""
    return f"orderbook:{exchange_id}:{symbol}"


def status_key(exchange_id: int) -> str:
    """A worker's ConnectionStatus for an exchange."""
    return f"exchange:status:{exchange_id}"


def lease_key(exchange_id: int) -> str:
    """The lease that makes one worker the active one for an exchange."""
    return f"livermore:lease:{exchange_id}"


def lease_epoch_key(lease: str) -> str:
    """The epoch counter of the lease named `lease` (its full name, as `lease_key` built it).

    INCRed at each acquisition; the hash tag puts it in the lease key's cluster slot.
    """
    return f"livermore:leaseepoch:{{{lease}}}"


def fence_key(slot_tag: str) -> str:
    """A fence record: the newest lease epoch per exchange that wrote into the tag's slot."""
    return f"livermore:fence:{{{slot_tag}}}"


def worker_state_key(exchange_id: int) -> str:
    """The active worker's running state (started, mode, symbols) a standby resumes from."""
    return f"livermore:workerstate:{exchange_id}"


def command_stream_key(exchange_id: int) -> str:
    """Durable stream behind the command channel: commands survive a worker restart."""
    return f"livermore:commandstream:{exchange_id}"


def response_key(exchange_id: int, correlation_id: str) -> str:
    """Latest response to a command, kept for a while so it can be fetched by correlation id."""
    return f"livermore:response:{exchange_id}:{correlation_id}"


def alert_state_key(exchange_id: int, symbol: str, timeframe: Timeframe) -> str:
    """Alert evaluator state (previous MACD-V, reversal arming) of one series."""
    return f"alertstate:{exchange_id}:{symbol}:{timeframe.value}"


def alert_cooldown_key(exchange_id: int, symbol: str, timeframe: Timeframe, label: str) -> str:
    """Cooldown marker of one alert label on one series (expires with the cooldown)."""
    return f"alertcooldown:{exchange_id}:{symbol}:{timeframe.value}:{label}"


def alert_outbox_key(exchange_id: int) -> str:
    """Alerts published but not yet stored in PostgreSQL (retried until they land)."""
    return f"alertoutbox:{exchange_id}"


def repairs_key(exchange_id: int) -> str:
    """Unfinished gap repairs of an exchange (hash, one field per series) a successor resumes."""
    return f"repairs:{exchange_id}"


def confluence_claim_key(asset: str, timeframe: Timeframe, kind: str, direction: str) -> str:
    """Exchange time of the last confluence published for one asset, signal kind and direction."""
    return f"alertconfluence:{asset}:{timeframe.value}:{kind}:{direction}"


def confluence_outbox_key() -> str:
    """Confluence alerts published but not yet stored in PostgreSQL."""
    return "alertoutbox:confluence"


# Patterns for SCAN (clear-cache, symbol removal). Symbols never contain ':' or glob characters.


def candles_pattern(exchange_id: int, symbol: str = "*", timeframe: str = "*") -> str:
    """SCAN pattern over Tier 1 candle keys of an exchange."""
    return f"candles:{exchange_id}:{symbol}:{timeframe}"


def user_candles_pattern(exchange_id: int, symbol: str = "*", timeframe: str = "*") -> str:
    """SCAN pattern over every user's Tier 2 candle keys of an exchange."""
    return f"usercandles:*:{exchange_id}:{symbol}:{timeframe}"


def indicators_pattern(exchange_id: int, symbol: str = "*", timeframe: str = "*") -> str:
    """SCAN pattern over Tier 1 indicator keys of an exchange."""
    return f"indicator:{exchange_id}:{symbol}:{timeframe}:*"


def user_indicators_pattern(exchange_id: int, symbol: str = "*", timeframe: str = "*") -> str:
    """SCAN pattern over Tier 2 indicator keys of an exchange."""
    return f"userindicator:*:{exchange_id}:{symbol}:{timeframe}:*"


def tickers_pattern(exchange_id: int, symbol: str = "*") -> str:
    """SCAN pattern over ticker keys of an exchange."""
    return f"ticker:{exchange_id}:{symbol}"


def orderbooks_pattern(exchange_id: int, symbol: str = "*") -> str:
    """SCAN pattern over order-book keys of an exchange."""
    return f"orderbook:{exchange_id}:{symbol}"


def namespace_pattern() -> str:
    """SCAN pattern over every key of this deployment (the whole DB when no namespace is set)."""
    return "*"


# ------------------------------------------------------------------ parsers


@dataclass(frozen=True, slots=True)
class SeriesKey:
    """The series (and, for Tier 2 or legacy keys, the user) a candle or indicator key names."""

    exchange_id: int
    symbol: str
    timeframe: Timeframe
    user_id: int | None = None


def _split(key: str, prefix: str, parts: int) -> list[str]:
    found = key.split(":")
    if len(found) != parts or found[0] != prefix or not all(found):
        raise ValueError(f"not a {prefix} key with {parts} segments: {key!r}")
    return found


def _int(text: str, key: str) -> int:
    if not text.isdigit():
        raise ValueError(f"expected a numeric id in {key!r}, got {text!r}")
    return int(text)


def _series(key: str, exchange: str, symbol: str, timeframe: str, user: str | None) -> SeriesKey:
    try:
        frame = Timeframe(timeframe)
    except ValueError:
        raise ValueError(f"unknown timeframe {timeframe!r} in {key!r}") from None
    user_id = None if user is None else _int(user, key)
    return SeriesKey(_int(exchange, key), symbol, frame, user_id)


def parse_candles_key(key: str) -> SeriesKey:
    """Inverse of `candles_key`; raises ValueError on any other name (legacy keys included)."""
    _, exchange, symbol, timeframe = _split(key, "candles", 4)
    return _series(key, exchange, symbol, timeframe, None)


def parse_user_candles_key(key: str) -> SeriesKey:
    """Inverse of `user_candles_key`."""
    _, user, exchange, symbol, timeframe = _split(key, "usercandles", 5)
    return _series(key, exchange, symbol, timeframe, user)


def parse_legacy_candles_key(key: str) -> SeriesKey:
    """Inverse of `legacy_candles_key` (five segments, where Tier 1 keys have four)."""
    _, user, exchange, symbol, timeframe = _split(key, "candles", 5)
    return _series(key, exchange, symbol, timeframe, user)


def _indicator_type(text: str, key: str) -> IndicatorType:
    try:
        return IndicatorType(text)
    except ValueError:
        raise ValueError(f"unknown indicator type {text!r} in {key!r}") from None


def parse_indicator_key(key: str) -> tuple[SeriesKey, IndicatorType]:
    """Inverse of `indicator_key`; raises ValueError on any other name (legacy keys included)."""
    _, exchange, symbol, timeframe, kind = _split(key, "indicator", 5)
    return _series(key, exchange, symbol, timeframe, None), _indicator_type(kind, key)


def parse_user_indicator_key(key: str) -> tuple[SeriesKey, IndicatorType]:
    """Inverse of `user_indicator_key`."""
    _, user, exchange, symbol, timeframe, kind = _split(key, "userindicator", 6)
    return _series(key, exchange, symbol, timeframe, user), _indicator_type(kind, key)


def parse_ticker_key(key: str) -> tuple[int, str]:
    """Inverse of `ticker_key`: (exchange_id, symbol)."""
    _, exchange, symbol = _split(key, "ticker", 3)
    return _int(exchange, key), symbol


def parse_status_key(key: str) -> int:
    """Inverse of `status_key`: the exchange id."""
    found = _split(key, "exchange", 3)
    if found[1] != "status":
        raise ValueError(f"not a status key: {key!r}")
    return _int(found[2], key)


def parse_response_key(key: str) -> tuple[int, str]:
    """Inverse of `response_key`: (exchange_id, correlation_id)."""
    found = _split(key, "livermore", 4)
    if found[1] != "response":
        raise ValueError(f"not a response key: {key!r}")
    return _int(found[2], key), found[3]


namespace_builders(globals())
