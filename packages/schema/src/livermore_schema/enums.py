"""Every fixed set of values Livermore uses, as string enums."""

from __future__ import annotations

from enum import StrEnum


class Timeframe(StrEnum):
    """Candle timeframes; the runtime set is `RUNTIME_TIMEFRAMES`."""

    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    D1 = "1d"


RUNTIME_TIMEFRAMES: tuple[Timeframe, ...] = (
    Timeframe.M1,
    Timeframe.M5,
    Timeframe.M15,
    Timeframe.H1,
    Timeframe.H4,
    Timeframe.D1,
)
"""The timeframes a worker streams, caches and evaluates, lowest first."""


class ExchangeName(StrEnum):
    """Exchanges known to Livermore (the `exchanges.name` column)."""

    COINBASE = "coinbase"
    BINANCE = "binance"
    BINANCE_US = "binance_us"
    KRAKEN = "kraken"
    KUCOIN = "kucoin"
    MEXC = "mexc"


STREAMING_EXCHANGES: frozenset[ExchangeName] = frozenset(
    {ExchangeName.COINBASE, ExchangeName.BINANCE, ExchangeName.BINANCE_US}
)
"""Exchanges with a streaming adapter; the rest exist as rows only."""


class ConnectionState(StrEnum):
    """State of a worker's exchange connection (`exchange:status:*`)."""

    IDLE = "idle"
    STARTING = "starting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    STOPPED = "stopped"


class WorkerRole(StrEnum):
    """Whether a worker holds its exchange's lease or waits as a hot standby."""

    ACTIVE = "active"
    STANDBY = "standby"


class CandleSource(StrEnum):
    """Where a candle came from."""

    WS = "ws"
    REST = "rest"
    AGGREGATE = "aggregate"


class IndicatorType(StrEnum):
    """Indicator kinds stored under `indicator:*` keys."""

    MACD_V = "macd-v"


class Stage(StrEnum):
    """MACD-V stage classification (SPEC section 6)."""

    OVERSOLD = "oversold"
    OVERBOUGHT = "overbought"
    RALLYING = "rallying"
    REBOUNDING = "rebounding"
    REVERSING = "reversing"
    RETRACING = "retracing"
    RANGING = "ranging"
    UNKNOWN = "unknown"


class Liquidity(StrEnum):
    """Liquidity class from the synthetic-bar gap ratio."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Bias(StrEnum):
    """Multi-timeframe bias attached to an alert."""

    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


class AlertType(StrEnum):
    """Alert families."""

    MACDV = "macdv"
    CONFLUENCE = "confluence"


class AlertDirection(StrEnum):
    """Which way MACD-V moved when an alert fired (a reversal from oversold is `up`)."""

    UP = "up"
    DOWN = "down"


class WorkerMode(StrEnum):
    """Worker operating modes (SPEC section 9)."""

    POSITION_MONITOR = "position-monitor"
    SCALPER_MACDV = "scalper-macdv"
    SCALPER_ORDERBOOK = "scalper-orderbook"


class CommandType(StrEnum):
    """Control-protocol command types."""

    START = "start"
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    RELOAD_SETTINGS = "reload-settings"
    SWITCH_MODE = "switch-mode"
    ADD_SYMBOL = "add-symbol"
    REMOVE_SYMBOL = "remove-symbol"
    BULK_ADD_SYMBOLS = "bulk-add-symbols"
    FORCE_BACKFILL = "force-backfill"
    CLEAR_CACHE = "clear-cache"


class ResponseStatus(StrEnum):
    """Control-protocol response statuses."""

    ACK = "ack"
    SUCCESS = "success"
    ERROR = "error"


class ClearScope(StrEnum):
    """Scopes of the `clear-cache` command."""

    ALL = "all"
    SYMBOL = "symbol"
    TIMEFRAME = "timeframe"


class StartupPhase(StrEnum):
    """Phases of the worker start sequence, reported in status progress."""

    IDLE = "idle"
    RESOLVE = "resolve"
    SYMBOLS = "symbols"
    BACKFILL = "backfill"
    WARMUP = "warmup"
    CONNECT = "connect"
    BOUNDARY = "boundary"
    ALERTS = "alerts"
    COMPLETE = "complete"


class UserRole(StrEnum):
    """User roles."""

    ADMIN = "admin"
    USER = "user"


class SymbolTier(StrEnum):
    """Symbol tiers: the shared pool (1) and per-user overflow (2)."""

    TIER_1 = "1"
    TIER_2 = "2"
