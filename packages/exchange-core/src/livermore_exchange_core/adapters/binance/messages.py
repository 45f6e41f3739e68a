"""Binance spot WebSocket wire shapes (web-socket-streams.md), as typed dicts.

Typed dicts cost nothing at runtime: a frame stays the dict `json.loads` produced, and the
ingest path reads the few keys it needs. `parsing.py` turns them into our `Candle` and `Ticker`.
Reference: https://github.com/binance/binance-spot-api-docs/blob/master/web-socket-streams.md
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

from livermore_schema.enums import Timeframe

KLINE_EVENT = "kline"
MINI_TICKER_EVENT = "24hrMiniTicker"
SERVER_SHUTDOWN_EVENT = "serverShutdown"

TIMEFRAME_INTERVALS: dict[Timeframe, str] = {
    Timeframe.M1: "1m",
    Timeframe.M5: "5m",
    Timeframe.M15: "15m",
    Timeframe.M30: "30m",
    Timeframe.H1: "1h",
    Timeframe.H2: "2h",
    Timeframe.H4: "4h",
    Timeframe.H6: "6h",
    Timeframe.D1: "1d",
}
"""Our timeframes to Binance kline intervals (case-sensitive on the wire)."""

INTERVAL_TIMEFRAMES: dict[str, Timeframe] = {v: k for k, v in TIMEFRAME_INTERVALS.items()}


class KlineBody(TypedDict):
    """`k` of a kline event: times/ids are ints, prices/volumes strings."""

    t: int
    T: int
    s: str
    i: str
    o: str
    c: str
    h: str
    l: str  # noqa: E741  (the wire name)
    v: str
    n: int
    x: bool
    q: str


class KlineMessage(TypedDict):
    """`<symbol>@kline_<interval>` payload."""

    e: Literal["kline"]
    E: int
    s: str
    k: KlineBody


class MiniTickerMessage(TypedDict):
    """`<symbol>@miniTicker` payload (rolling 24 h window)."""

    e: Literal["24hrMiniTicker"]
    E: int
    s: str
    c: str
    o: str
    h: str
    l: str  # noqa: E741
    v: str
    q: str


class PartialDepthMessage(TypedDict):
    """`<symbol>@depth<levels>[@100ms]` payload: the top levels whole, best first.

    It names neither the symbol nor an event time: the combined stream's `stream` says which
    symbol, and the adapter stamps it with the exchange clock.
    """

    lastUpdateId: int
    bids: list[list[str]]
    asks: list[list[str]]
    E: NotRequired[int]


class ServerShutdownMessage(TypedDict):
    """Sent before maintenance; the connection will be closed."""

    e: Literal["serverShutdown"]
    E: int


class SubscribeRequest(TypedDict):
    """`SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` control request."""

    method: str
    params: list[str]
    id: int


def kline_stream(symbol: str, timeframe: Timeframe) -> str:
    """Return the stream name of a symbol's klines (`btcusdt@kline_5m`)."""
    return f"{symbol.lower()}@kline_{TIMEFRAME_INTERVALS[timeframe]}"


def mini_ticker_stream(symbol: str) -> str:
    """Return the stream name of a symbol's mini ticker (`btcusdt@miniTicker`)."""
    return f"{symbol.lower()}@miniTicker"


DEPTH_LEVELS = frozenset({5, 10, 20})
"""Levels a partial book depth stream serves."""

DEPTH_SPEED_MS = 100
"""Push cadence we ask for (`@100ms`; without it the stream pushes every second)."""


def depth_stream(symbol: str, levels: int, speed_ms: int = DEPTH_SPEED_MS) -> str:
    """Return the partial book depth stream of a symbol (`btcusdt@depth10@100ms`).

    Raises:
        ValueError: `levels` is not 5, 10 or 20.
    """
    if levels not in DEPTH_LEVELS:
        raise ValueError(f"Binance partial depth serves 5, 10 or 20 levels, not {levels}")
    suffix = "" if speed_ms == 1000 else f"@{speed_ms}ms"
    return f"{symbol.lower()}@depth{levels}{suffix}"


def combined_stream_url(ws_base_url: str) -> str:
    """Return the combined-stream endpoint; streams are added with paced SUBSCRIBE frames."""
    return f"{ws_base_url.rstrip('/')}/stream"
