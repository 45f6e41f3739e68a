"""Binance spot wire shapes: venue config, interval map, stream names and payload builders (pure).

Prices and volumes are strings with eight decimals, times and ids are integers, exactly as in
binance/binance-spot-api-docs (web-socket-streams.md, rest-api.md).
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from livermore_exchange_sim.market import Bar, Venue

_MINUTE = 60_000

INTERVAL_MS: dict[str, int] = {
    "1m": _MINUTE,
    "3m": 3 * _MINUTE,
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 30 * _MINUTE,
    "1h": 60 * _MINUTE,
    "2h": 120 * _MINUTE,
    "4h": 240 * _MINUTE,
    "6h": 360 * _MINUTE,
    "8h": 480 * _MINUTE,
    "12h": 720 * _MINUTE,
    "1d": 1440 * _MINUTE,
}

FINALS_KEPT = 20_000
"""Closing frames remembered with their send time (`GET /_sim/finals`, for benchmarks)."""
# 2017-07-14 00:00 UTC, the first day of Binance spot trading.
DEFAULT_LISTING_MS = 1_499_990_400_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class BinanceVenueConfig:
    """Tunable limits and behaviour of one Binance-protocol venue (binance or binance_us)."""

    weight_limit: int = 6000
    weight_window_s: int = 60
    """REQUEST_WEIGHT window in whole seconds, published in exchangeInfo (`1 MINUTE`, or
    `n SECOND` when shorter) and in the used-weight header name (`-1M`, `-nS`)."""
    raw_requests_limit: int = 61000
    ban_seconds: int = 120
    requests_after_429_before_ban: int = 1
    kline_update_ms: int = 2000
    ticker_update_ms: int = 1000
    min_frame_gap_s: float = 0.05
    ping_interval_s: float = 20.0
    max_incoming_per_s: int = 5
    max_streams: int = 1024
    connection_lifetime_ms: int = DAY_MS
    connection_lifetime_wall_s: float | None = None
    listing_ms: int = DEFAULT_LISTING_MS
    api_key: str = "livermore-sim-binance-key"
    api_secret: str = "livermore-sim-binance-secret"
    geo_blocked: bool = False

    def __post_init__(self) -> None:
        if self.weight_window_s < 1 or self.weight_limit < 1:
            raise ValueError("weight_window_s and weight_limit must be positive")


BINANCE_US_CONFIG = BinanceVenueConfig(
    weight_limit=1200,
    ping_interval_s=180.0,
    api_key="livermore-sim-binance-us-key",
    api_secret="livermore-sim-binance-us-secret",
)


class StreamKind(StrEnum):
    """The stream families the sim serves."""

    KLINE = "kline"
    MINI_TICKER = "miniTicker"
    TICKER = "ticker"
    BOOK_TICKER = "bookTicker"
    DEPTH = "depth"
    """Partial book depth: `<symbol>@depth<levels>[@100ms|@1000ms]`."""


DEPTH_LEVELS = frozenset({5, 10, 20})
"""Levels a partial book depth stream may ask for."""

DEFAULT_DEPTH_UPDATE_MS = 1000
"""Partial book depth pushes every second unless the name asks for `@100ms`."""


@dataclass(frozen=True, slots=True)
class StreamName:
    """A parsed stream name such as `btcusdt@kline_5m`."""

    name: str
    symbol: str
    kind: StreamKind
    interval: str | None = None
    depth: int | None = None
    """Levels per side (partial book depth streams only)."""
    update_ms: int | None = None
    """Push cadence in simulated ms (partial book depth streams only)."""

    @property
    def interval_ms(self) -> int:
        """Return the kline interval in milliseconds (klines only)."""
        assert self.interval is not None
        return INTERVAL_MS[self.interval]


_STREAM_RE = re.compile(
    r"^([a-z0-9]{2,20})@(kline_([0-9]+[mhd])|miniTicker|ticker|bookTicker"
    r"|depth([0-9]+)(?:@(100|1000)ms)?)$"
)


def parse_stream_name(name: str) -> StreamName | None:
    """Parse a lowercase stream name; None when it is not a stream the sim knows."""
    match = _STREAM_RE.match(name)
    if match is None:
        return None
    symbol = match.group(1).upper()
    if match.group(4) is not None:
        levels = int(match.group(4))
        if levels not in DEPTH_LEVELS:
            return None
        speed = int(match.group(5) or DEFAULT_DEPTH_UPDATE_MS)
        return StreamName(name, symbol, StreamKind.DEPTH, depth=levels, update_ms=speed)
    interval = match.group(3)
    if interval is not None:
        if interval not in INTERVAL_MS:
            return None
        return StreamName(name, symbol, StreamKind.KLINE, interval)
    return StreamName(name, symbol, StreamKind(match.group(2)), None)


def fmt(value: float) -> str:
    """Format a price or volume the way Binance does: a string with eight decimals."""
    return f"{value:.8f}"


def taker_buy_fraction(bar: Bar) -> float:
    """Return a deterministic taker-buy share of a bar's volume (0.35 .. 0.65)."""
    step = (bar.open_time // bar.interval_ms) % 7
    return 0.35 + 0.05 * step


def trade_ids(bar: Bar) -> tuple[int, int]:
    """Return deterministic first/last trade ids of a bar; (-1, -1) when it had no trades."""
    if bar.trades == 0:
        return -1, -1
    first = bar.open_time // 10
    return first, first + bar.trades - 1


def kline_row(bar: Bar) -> list[Any]:
    """Return one REST `/api/v3/klines` row for `bar`."""
    share = taker_buy_fraction(bar)
    return [
        bar.open_time,
        fmt(bar.open),
        fmt(bar.high),
        fmt(bar.low),
        fmt(bar.close),
        fmt(bar.volume),
        bar.open_time + bar.interval_ms - 1,
        fmt(bar.quote_volume),
        bar.trades,
        fmt(bar.volume * share),
        fmt(bar.quote_volume * share),
        "0",
    ]


def kline_event(
    bar: Bar, symbol: str, interval: str, event_ms: int, closed: bool
) -> dict[str, Any]:
    """Return one `<symbol>@kline_<interval>` stream payload."""
    share = taker_buy_fraction(bar)
    first, last = trade_ids(bar)
    return {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": bar.open_time,
            "T": bar.open_time + bar.interval_ms - 1,
            "s": symbol,
            "i": interval,
            "f": first,
            "L": last,
            "o": fmt(bar.open),
            "c": fmt(bar.close),
            "h": fmt(bar.high),
            "l": fmt(bar.low),
            "v": fmt(bar.volume),
            "n": bar.trades,
            "x": closed,
            "q": fmt(bar.quote_volume),
            "V": fmt(bar.volume * share),
            "Q": fmt(bar.quote_volume * share),
            "B": "0",
        },
    }


def error_body(code: int, msg: str) -> dict[str, Any]:
    """Return a Binance REST error body."""
    return {"code": code, "msg": msg}


def weight_interval(window_s: int) -> tuple[str, int]:
    """Return the exchangeInfo (interval, intervalNum) of a weight window of `window_s` seconds."""
    if window_s % 86_400 == 0:
        return "DAY", window_s // 86_400
    if window_s % 60 == 0:
        return "MINUTE", window_s // 60
    return "SECOND", window_s


def used_weight_header(window_s: int) -> str:
    """Return the used-weight header name: `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)`."""
    interval, num = weight_interval(window_s)
    return f"X-MBX-USED-WEIGHT-{num}{interval[0]}"


def weight_exceeded_msg(limit: int, window_s: int = 60) -> str:
    """Return the -1003 message of a 429."""
    interval, num = weight_interval(window_s)
    return (
        f"Too much request weight used; current limit is {limit} request weight per "
        f"{num} {interval}. Please use WebSocket Streams for live updates to avoid polling the API."
    )


def banned_msg(until_ms: int) -> str:
    """Return the -1003 message of a 418."""
    return (
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use WebSocket Streams for live updates to avoid bans."
    )


GEO_BLOCK_MSG = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)


@dataclass(slots=True)
class BinanceStats:
    """Counters a test can assert on (for example "zero 429s during backfill")."""

    requests: int = 0
    http_429: int = 0
    http_418: int = 0
    http_451: int = 0
    ws_connections: int = 0
    ws_frames: int = 0
    final_frames: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a JSON-ready dict."""
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class BinanceVenueState:
    """The mutable per-venue state shared by the REST and WebSocket halves."""

    venue: Venue
    config: BinanceVenueConfig
    stats: BinanceStats = field(default_factory=BinanceStats)
    finals_sent: deque[tuple[str, int, int]] = field(
        default_factory=lambda: deque(maxlen=FINALS_KEPT)
    )
    """The latest closing frames sent: (stream, bar open time, wall clock in epoch us)."""
