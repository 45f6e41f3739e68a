"""`BinanceAdapter`: native kline and miniTicker streams of Binance and Binance US.

Why our own socket (`livermore_exchange_core.websocket`) and not python-binance's
`BinanceSocketManager`: its `ReconnectingWebsocket` ends the stream for good when its 100-message
queue overflows (a burst at 50,000 msgs/s does that in 2 ms), hands connection errors to the
consumer as data dicts, never notices a stalled-but-open socket, gives up after 5 reconnects and,
on reconnect, restores only the streams in its URL, not those added with SUBSCRIBE. The
protocol itself is small (combined streams plus SUBSCRIBE frames), so one reconnecting socket
with a watchdog, a paced sender and a shared connection-attempt limiter serves both venues.
python-binance serves only the signed account call (`livermore_exchange_core.accounts`).

Streams: `<sym>@kline_<i>` for every subscribed (symbol, timeframe) and `<sym>@miniTicker` per
symbol, split over as many connections as the per-connection stream cap needs, SUBSCRIBE frames
paced under 5 messages/s per connection. A bar is closed when `k.x` is true. Each series' open
times must follow one another: a jump (a reconnect, a lost or malformed frame) becomes a
`GapNotice` before any later bar, and the first frame of a series asks the pipeline to close the
gap since the last bar it holds (a restart).

Order books: `subscribe_order_books` adds `<sym>@depth<book_depth>@100ms` partial book streams
(the top levels whole, ten times a second), placed and paced like every other stream. A payload
names neither its symbol nor a time, so the stream name gives the symbol and the exchange clock
stamps it; a `lastUpdateId` that does not advance is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import structlog

from livermore_exchange_core.adapters.binance.connections import KlineSeries, StreamConnection
from livermore_exchange_core.adapters.binance.messages import (
    KLINE_EVENT,
    MINI_TICKER_EVENT,
    SERVER_SHUTDOWN_EVENT,
    TIMEFRAME_INTERVALS,
    KlineMessage,
    MiniTickerMessage,
    PartialDepthMessage,
    combined_stream_url,
    depth_stream,
    kline_stream,
    mini_ticker_stream,
)
from livermore_exchange_core.adapters.binance.parsing import (
    parse_ws_kline,
    parse_ws_mini_ticker,
    parse_ws_partial_depth,
)
from livermore_exchange_core.base import ExchangeAdapter
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.config import ExchangeConfig
from livermore_exchange_core.errors import TransientNetworkError
from livermore_exchange_core.events import GapNotice, MarketDataSink, errored
from livermore_exchange_core.refusals import Refusals
from livermore_exchange_core.websocket import (
    ConnectionAttemptLimiter,
    ReconnectingWebSocket,
    SocketPolicy,
)
from livermore_schema.enums import Timeframe
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

DEFAULT_POLICY = SocketPolicy(stall_timeout_s=10.0, max_lifetime_s=23.5 * 3600)
"""Klines update every 2 s; a 24 h connection is replaced half an hour early."""


class BinanceAdapter(ExchangeAdapter):
    """Streams closed klines and mini tickers of one Binance-protocol venue; see module doc."""

    def __init__(
        self,
        config: ExchangeConfig,
        sink: MarketDataSink,
        *,
        policy: SocketPolicy = DEFAULT_POLICY,
        attempt_limiter: ConnectionAttemptLimiter | None = None,
        max_streams_per_connection: int | None = None,
        streams_per_message: int = 100,
        book_depth: int = 10,
        rng: random.Random | None = None,
        clock: ExchangeClock | None = None,
    ) -> None:
        self._config = config
        self._sink = sink
        self._policy = policy
        per_5min = config.limits.ws_connections_per_5min or 300
        self._limiter = attempt_limiter or ConnectionAttemptLimiter(int(per_5min * 0.8), 300.0)
        cap = max_streams_per_connection or config.limits.ws_streams_per_connection
        self._max_streams = cap or 1024
        self._per_message = streams_per_message
        self._rng = rng or random.Random()
        self._clock = clock or ExchangeClock()
        self._series: dict[tuple[str, str], KlineSeries] = {}
        self._tickers: set[str] = set()
        depth_stream("x", book_depth)  # fail at construction on an unsupported depth
        self._book_depth = book_depth
        self._depth_symbols: dict[str, str] = {}  # partial depth stream name -> symbol
        self._depth_ids: dict[str, int] = {}
        self._connections: list[StreamConnection] = []
        self._request_ids = itertools.count(1)
        self._running = False
        self._exchange = config.name.value
        self._refusals = Refusals(self._exchange)
        self._handlers: dict[str, Callable[[StreamConnection, Any], Awaitable[None]]] = {
            KLINE_EVENT: self._on_kline,
            MINI_TICKER_EVENT: self._on_mini_ticker,
            SERVER_SHUTDOWN_EVENT: self._on_server_shutdown,
        }
        self._log = log.bind(exchange=self._exchange)

    # ------------------------------------------------------------------ ExchangeAdapter

    @property
    def subscriptions(self) -> frozenset[tuple[str, Timeframe]]:
        """The (symbol, timeframe) series currently streamed."""
        return frozenset((s.symbol, s.timeframe) for s in self._series.values())

    @property
    def connection_count(self) -> int:
        """Return how many stream connections the subscriptions need."""
        return len(self._connections)

    @property
    def order_book_symbols(self) -> frozenset[str]:
        """The symbols whose partial depth streams are subscribed."""
        return frozenset(self._depth_symbols.values())

    @property
    def rejected(self) -> Mapping[str, str]:
        """Symbols whose SUBSCRIBE the venue answered with an error, with its message."""
        return self._refusals.rejected

    def exchange_time_ms(self) -> int:
        """Return the latest event time `E` seen."""
        return self._clock.now_ms()

    @property
    def clock(self) -> ExchangeClock:
        """The exchange clock, advanced by event times."""
        return self._clock

    async def connect(self) -> None:
        """Start every connection's socket (they subscribe their streams on open)."""
        self._running = True
        for conn in self._connections:
            self._start(conn)

    async def wait_ready(self) -> None:
        """Return once every connection with streams is open and its requests are answered."""
        for conn in list(self._connections):
            if conn.streams:
                await conn.ready.wait()

    async def close(self) -> None:
        """Close every connection."""
        self._running = False
        for conn in self._connections:
            await conn.socket.close()
        for conn in self._connections:
            if conn.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.task
                conn.task = None

    async def subscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Add kline streams for symbols x timeframes and a miniTicker per symbol."""
        wanted: list[str] = []
        frames = tuple(timeframes)
        for symbol in (s.upper() for s in symbols):
            self._refusals.forgive([symbol])
            for tf in frames:
                key = (symbol, TIMEFRAME_INTERVALS[tf])
                if key not in self._series:
                    self._series[key] = KlineSeries(symbol, tf, duration_ms(tf))
                    wanted.append(kline_stream(symbol, tf))
            if symbol not in self._tickers:
                self._tickers.add(symbol)
                wanted.append(mini_ticker_stream(symbol))
        await self._add_streams(wanted)

    async def _add_streams(self, wanted: list[str]) -> None:
        touched = self._place(wanted)
        for conn in touched:
            if self._running and conn.task is None:
                self._start(conn)
            elif conn.socket.is_open:
                with contextlib.suppress(TransientNetworkError):  # the next open resubscribes
                    await self._send_streams(conn, "SUBSCRIBE", sorted(conn.streams - conn.sent))

    async def unsubscribe(self, symbols: Iterable[str], timeframes: Iterable[Timeframe]) -> None:
        """Remove kline streams (and a symbol's miniTicker once it has no kline left)."""
        frames = tuple(timeframes)
        dropped: set[str] = set()
        for symbol in (s.upper() for s in symbols):
            for tf in frames:
                if self._series.pop((symbol, TIMEFRAME_INTERVALS[tf]), None) is not None:
                    dropped.add(kline_stream(symbol, tf))
            if symbol in self._tickers and not any(
                s.symbol == symbol for s in self._series.values()
            ):
                self._tickers.discard(symbol)
                dropped.add(mini_ticker_stream(symbol))
        await self._drop_streams(dropped)

    async def subscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Add a partial depth stream (`book_depth` levels, every 100 ms) per symbol."""
        wanted: list[str] = []
        for symbol in (s.upper() for s in symbols):
            stream = depth_stream(symbol, self._book_depth)
            if stream not in self._depth_symbols:
                self._depth_symbols[stream] = symbol
                wanted.append(stream)
        await self._add_streams(wanted)

    async def unsubscribe_order_books(self, symbols: Iterable[str]) -> None:
        """Remove the symbols' partial depth streams; their frames still in flight are dropped."""
        dropped: set[str] = set()
        for symbol in (s.upper() for s in symbols):
            stream = depth_stream(symbol, self._book_depth)
            if self._depth_symbols.pop(stream, None) is not None:
                self._depth_ids.pop(symbol, None)
                dropped.add(stream)
        await self._drop_streams(dropped)

    async def _drop_streams(self, dropped: set[str]) -> None:
        for conn in self._connections:
            gone = conn.streams & dropped
            conn.streams -= gone
            if gone and conn.socket.is_open:
                with contextlib.suppress(TransientNetworkError):
                    await self._send_streams(conn, "UNSUBSCRIBE", sorted(gone & conn.sent))
            conn.sent -= gone

    # ------------------------------------------------------------------ connections

    def _place(self, streams: list[str]) -> list[StreamConnection]:
        touched: list[StreamConnection] = []
        for stream in streams:
            conn = next((c for c in self._connections if len(c.streams) < self._max_streams), None)
            if conn is None:
                conn = self._new_connection()
            conn.streams.add(stream)
            if conn not in touched:
                touched.append(conn)
        return touched

    def _new_connection(self) -> StreamConnection:
        label = f"{self._exchange}#{len(self._connections)}"
        holder: list[StreamConnection] = []

        async def on_open() -> None:
            conn = holder[0]
            conn.sent = set()
            conn.unacked.clear()
            conn.ready.clear()
            await self._send_streams(conn, "SUBSCRIBE", sorted(conn.streams))
            conn.mark_ready()

        async def on_message(raw: str) -> None:
            await self._on_frame(holder[0], raw)

        socket = ReconnectingWebSocket(
            combined_stream_url(self._config.ws_url),
            label=label,
            policy=self._policy,
            attempt_limiter=self._limiter,
            on_open=on_open,
            on_message=on_message,
            on_lifecycle=self._sink.on_lifecycle,
            rng=self._rng,
            exchange=self._exchange,
        )
        conn = StreamConnection(socket)
        holder.append(conn)
        self._connections.append(conn)
        return conn

    def _start(self, conn: StreamConnection) -> None:
        if conn.task is None:
            conn.task = asyncio.get_running_loop().create_task(
                conn.socket.run(), name=f"ws:{conn.socket.label}"
            )

    async def _send_streams(self, conn: StreamConnection, method: str, streams: list[str]) -> None:
        for start in range(0, len(streams), self._per_message):
            chunk = streams[start : start + self._per_message]
            request_id = next(self._request_ids)
            request = {"method": method, "params": chunk, "id": request_id}
            conn.unacked[request_id] = chunk if method == "SUBSCRIBE" else []
            conn.ready.clear()
            await conn.socket.send(json.dumps(request))
            if method == "SUBSCRIBE":
                conn.sent.update(chunk)

    # ------------------------------------------------------------------ frames

    async def _on_frame(self, conn: StreamConnection, raw: str) -> None:
        frame: dict[str, Any] = json.loads(raw)
        data = frame.get("data")
        if data is None:
            await self._on_control(conn, frame)
            return
        handler = self._handlers.get(data.get("e"))
        if handler is not None:
            await handler(conn, data)
        elif "lastUpdateId" in data:  # partial book depth carries no event type
            self._on_depth(frame.get("stream", ""), data)

    async def _on_control(self, conn: StreamConnection, frame: dict[str, Any]) -> None:
        error = frame["error"] if isinstance(frame.get("error"), dict) else None
        error = frame if error is None and frame.get("code") is not None else error
        streams = conn.unacked.pop(frame.get("id"), [])  # type: ignore[arg-type]  # answered
        reason = "" if error is None else f"{error.get('code')}: {error.get('msg')}"
        if error is not None and streams:
            await self._refused(conn, streams, reason)
        elif error is not None:
            self._log.error("binance.control_error", socket=conn.socket.label, reason=reason)
            await self._sink.on_lifecycle(errored(reason, conn.socket.label))
        elif frame.get("e") in self._handlers:  # a raw (non-combined) event
            await self._handlers[frame["e"]](conn, frame)
        conn.mark_ready()

    async def _refused(self, conn: StreamConnection, streams: list[str], reason: str) -> None:
        """A SUBSCRIBE was refused whole: isolate the unknown symbol(s) (`Refusals`)."""
        conn.sent.difference_update(streams)
        symbol_of = {stream: stream.split("@", 1)[0].upper() for stream in streams}
        retries = self._refusals.narrow(list(symbol_of.values()), reason)
        for symbol in {s for s in symbol_of.values() if s in self._refusals.rejected}:
            self._series = {k: v for k, v in self._series.items() if k[0] != symbol}
            self._tickers.discard(symbol)
            self._depth_symbols = {n: s for n, s in self._depth_symbols.items() if s != symbol}
            conn.streams.difference_update(n for n, s in symbol_of.items() if s == symbol)
        for retry in retries:
            live = [n for n, s in symbol_of.items() if s in retry and n in conn.streams]
            with contextlib.suppress(TransientNetworkError):  # the next open resubscribes
                await self._send_streams(conn, "SUBSCRIBE", live)

    async def _on_kline(self, conn: StreamConnection, data: KlineMessage) -> None:
        self._clock.advance(data["E"])
        k = data["k"]
        series = self._series.get((k["s"], k["i"]))
        if series is None:
            return
        opened = k["t"]
        expected = series.next_open
        if expected is None or opened > expected:
            await self._sink.on_gap(
                GapNotice(
                    series.symbol,
                    series.timeframe,
                    since_ms=expected,
                    until_ms=opened,
                    ready_at_ms=opened,
                    reason="series start" if expected is None else "bars missing from stream",
                    contiguous=True,
                )
            )
            series.next_open = opened
        elif opened < expected:
            return  # a bar we already closed
        if k["x"]:
            series.next_open = opened + series.step_ms
            await self._sink.on_candle(
                parse_ws_kline(data, self._config.exchange_id, self._exchange)
            )

    async def _on_mini_ticker(self, conn: StreamConnection, data: MiniTickerMessage) -> None:
        self._clock.advance(data["E"])
        if data["s"] in self._tickers:
            self._sink.on_ticker(
                parse_ws_mini_ticker(data, self._config.exchange_id, self._exchange)
            )

    def _on_depth(self, stream: str, data: PartialDepthMessage) -> None:
        symbol = self._depth_symbols.get(stream)
        if symbol is None:
            return  # unsubscribed while the frame was in flight
        update_id = data["lastUpdateId"]
        if update_id <= self._depth_ids.get(symbol, -1):
            return
        self._depth_ids[symbol] = update_id
        top = parse_ws_partial_depth(data, symbol, self._config.exchange_id, self._clock.now_ms())
        if top is not None:
            self._sink.on_order_book(top)

    async def _on_server_shutdown(self, conn: StreamConnection, data: dict[str, Any]) -> None:
        self._log.info("binance.server_shutdown", socket=conn.socket.label)
        conn.socket.request_reconnect("serverShutdown")


__all__ = ["DEFAULT_POLICY", "BinanceAdapter"]
