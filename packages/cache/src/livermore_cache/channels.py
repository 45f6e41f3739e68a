"""Every pub/sub channel name and pattern, with inverse parsers (SPEC 3.3).

Every public `*_channel`/`*_pattern` builder returns its name under the deployment namespace
and every `parse_*` strips it (`_namespace.namespace_builders`, applied at the end).
"""

from __future__ import annotations

from dataclasses import dataclass

from livermore_cache._namespace import namespace_builders, prefixed
from livermore_schema.enums import IndicatorType, Timeframe


def candle_close_channel(exchange_id: int, symbol: str, timeframe: Timeframe) -> str:
    """Closed candles of one series, published after the write."""
    return f"channel:exchange:{exchange_id}:candle:close:{symbol}:{timeframe.value}"


def legacy_candle_close_channel(
    user_id: int, exchange_id: int, symbol: str, timeframe: Timeframe
) -> str:
    """User-scoped twin of the candle-close channel (dual-published while legacy is on)."""
    return f"channel:candle:close:{user_id}:{exchange_id}:{symbol}:{timeframe.value}"


def ticker_channel(exchange_id: int, symbol: str) -> str:
    """Tickers of one symbol."""
    return f"channel:ticker:{exchange_id}:{symbol}"


def indicator_channel(
    exchange_id: int, symbol: str, timeframe: Timeframe, indicator: IndicatorType
) -> str:
    """Indicator values of one series."""
    return f"channel:indicator:{exchange_id}:{symbol}:{timeframe.value}:{indicator.value}"


def alerts_channel(exchange_id: int) -> str:
    """Alerts of one exchange, readable by any subscriber."""
    return f"channel:alerts:{exchange_id}"


def confluence_channel() -> str:
    """Confluence alerts: one asset signalling alike on two or more exchanges (SPEC 7)."""
    return "channel:alerts:confluence"


def lifecycle_channel(exchange_id: int) -> str:
    """Lifecycle events of an exchange's worker."""
    return f"channel:exchange:{exchange_id}:lifecycle"


def commands_channel(exchange_id: int) -> str:
    """Control commands to an exchange's worker."""
    return f"livermore:commands:{exchange_id}"


def responses_channel(exchange_id: int) -> str:
    """Control responses from an exchange's worker."""
    return f"livermore:responses:{exchange_id}"


# ------------------------------------------------------------------ patterns

_ALL_ALERTS = "channel:alerts:*"


def all_alerts_pattern() -> str:
    """Pattern matching every exchange's alert channel (and the confluence channel)."""
    return _ALL_ALERTS


def __getattr__(name: str) -> str:
    # ALL_ALERTS_PATTERN stays readable as a constant, built under the namespace at each read
    if name == "ALL_ALERTS_PATTERN":
        return prefixed(_ALL_ALERTS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def candle_close_pattern(exchange_id: int | str = "*") -> str:
    """Pattern over the candle-close channels of one exchange (or all)."""
    return f"channel:exchange:{exchange_id}:candle:close:*"


def indicator_pattern(exchange_id: int | str = "*") -> str:
    """Pattern over the indicator channels of one exchange (or all)."""
    return f"channel:indicator:{exchange_id}:*"


def responses_pattern() -> str:
    """Pattern over every exchange's control-response channel."""
    return "livermore:responses:*"


def lifecycle_pattern() -> str:
    """Pattern over every exchange's lifecycle channel."""
    return "channel:exchange:*:lifecycle"


# ------------------------------------------------------------------ parsers


@dataclass(frozen=True, slots=True)
class SeriesChannel:
    """The (exchange, symbol, timeframe) a series channel names."""

    exchange_id: int
    symbol: str
    timeframe: Timeframe


def parse_candle_close_channel(channel: str) -> SeriesChannel:
    """Inverse of `candle_close_channel`; raises ValueError on any other name."""
    parts = channel.split(":")
    if len(parts) != 7 or parts[:2] != ["channel", "exchange"] or parts[3:5] != ["candle", "close"]:
        raise ValueError(f"not a candle-close channel: {channel!r}")
    return SeriesChannel(int(parts[2]), parts[5], Timeframe(parts[6]))


def parse_indicator_channel(channel: str) -> tuple[SeriesChannel, IndicatorType]:
    """Inverse of `indicator_channel`; raises ValueError on any other name."""
    parts = channel.split(":")
    if len(parts) != 6 or parts[:2] != ["channel", "indicator"]:
        raise ValueError(f"not an indicator channel: {channel!r}")
    return SeriesChannel(int(parts[2]), parts[3], Timeframe(parts[4])), IndicatorType(parts[5])


def parse_alerts_channel(channel: str) -> int:
    """Inverse of `alerts_channel`: the exchange id."""
    prefix = "channel:alerts:"
    if not channel.startswith(prefix) or not channel[len(prefix) :].isdigit():
        raise ValueError(f"not an alerts channel: {channel!r}")
    return int(channel[len(prefix) :])


def parse_responses_channel(channel: str) -> int:
    """Inverse of `responses_channel`: the exchange id."""
    prefix = "livermore:responses:"
    if not channel.startswith(prefix) or not channel[len(prefix) :].isdigit():
        raise ValueError(f"not a responses channel: {channel!r}")
    return int(channel[len(prefix) :])


def parse_lifecycle_channel(channel: str) -> int:
    """Inverse of `lifecycle_channel`: the exchange id."""
    parts = channel.split(":")
    if len(parts) != 4 or parts[:2] != ["channel", "exchange"] or parts[3] != "lifecycle":
        raise ValueError(f"not a lifecycle channel: {channel!r}")
    return int(parts[2])


def parse_legacy_candle_close_channel(channel: str) -> tuple[int, SeriesChannel]:
    """Inverse of `legacy_candle_close_channel`: (user_id, series)."""
    parts = channel.split(":")
    if len(parts) != 7 or parts[:3] != ["channel", "candle", "close"]:
        raise ValueError(f"not a legacy candle-close channel: {channel!r}")
    return int(parts[3]), SeriesChannel(int(parts[4]), parts[5], Timeframe(parts[6]))


def parse_ticker_channel(channel: str) -> tuple[int, str]:
    """Inverse of `ticker_channel`: (exchange_id, symbol)."""
    parts = channel.split(":")
    if len(parts) != 4 or parts[:2] != ["channel", "ticker"] or not parts[3]:
        raise ValueError(f"not a ticker channel: {channel!r}")
    return int(parts[2]), parts[3]


namespace_builders(globals())
