"""Binance WebSocket streams on the simulator: raw `/ws/<stream>` and combined `/stream?streams=`.

Kline partials go out every `kline_update_ms` of simulated time and every bar that closes gets one
`"x": true` frame; partial book depth (`@depth<5|10|20>[@100ms|@1000ms]`) every 1000 or 100 ms
of simulated time. Pacing is in wall time (the clock's speed) with at most one tick per
`min_frame_gap_s`, and a tick that falls behind sends every final frame it owes.
Faults come from the shared `FaultController` inbox; Binance has no sequence numbers, so
SKIP_SEQUENCE here means "drop the next final kline frame" (the gap a repair must fill).
Reference: binance/binance-spot-api-docs web-socket-streams.md; exchange-protocols.md §B3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from livermore_exchange_sim.binance_control import StreamSet, handle_control
from livermore_exchange_sim.binance_market import stream_payload
from livermore_exchange_sim.binance_wire import (
    BinanceVenueState,
    StreamKind,
    StreamName,
    kline_event,
    parse_stream_name,
)
from livermore_exchange_sim.faults import FaultController, FaultInbox, WsActionKind
from livermore_exchange_sim.market import Market

log = structlog.get_logger(__name__)

_CLOSE_REASONS: dict[int, bytes] = {
    1000: b"Normal closure",
    1001: b"Going away",
    1008: b"Policy violation",
    1011: b"Internal error",
}


@dataclass(slots=True)
class _Cursor:
    """Where one subscribed stream stands: the bar last seen open, the next partial's due time."""

    stream: StreamName
    open_time: int
    next_update_ms: int


@dataclass(eq=False, slots=True)
class BinanceStreamConnection:
    """One client connection: its socket, subscriptions, pacing and fault switches."""

    ws: web.WebSocketResponse
    request: web.Request
    streams: StreamSet
    opened_ms: int
    opened_wall: float
    inbox: FaultInbox
    cursors: dict[str, _Cursor] = field(default_factory=dict)
    incoming: deque[float] = field(default_factory=deque)
    stalled: bool = False
    final_skips: int = 0

    async def send(self, stream: str, payload: dict[str, Any]) -> None:
        """Send one data payload, wrapped when the connection is combined."""
        body = {"stream": stream, "data": payload} if self.streams.combined else payload
        if not self.stalled and not self.ws.closed:
            await self.ws.send_str(json.dumps(body, separators=(",", ":")))

    def drop(self) -> None:
        """Drop the TCP connection without a close frame."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class BinanceStreamHub:
    """Every live WebSocket connection of one venue, the routes that open them, and WS faults."""

    def __init__(self, market: Market, state: BinanceVenueState, faults: FaultController) -> None:
        self._market = market
        self._state = state
        self._faults = faults
        self.connections: set[BinanceStreamConnection] = set()

    def add_routes(self, app: web.Application) -> None:
        """Register `/ws`, `/ws/<stream>` and `/stream` on `app`."""
        app.router.add_get("/ws", self.raw)
        app.router.add_get("/ws/{streams:.+}", self.raw)
        app.router.add_get("/stream", self.combined)

    async def raw(self, request: web.Request) -> web.WebSocketResponse:
        """Serve a raw stream connection: payloads are sent unwrapped."""
        names = [n for n in request.match_info.get("streams", "").split("/") if n]
        return await self._serve(request, names, combined=False)

    async def combined(self, request: web.Request) -> web.WebSocketResponse:
        """Serve a combined stream connection: payloads are wrapped in {stream, data}."""
        names = [n for n in request.query.get("streams", "").split("/") if n]
        return await self._serve(request, names, combined=True)

    async def _serve(
        self, request: web.Request, names: list[str], combined: bool
    ) -> web.WebSocketResponse:
        config = self._state.config
        ws = web.WebSocketResponse(heartbeat=config.ping_interval_s, autoping=False)
        await ws.prepare(request)
        conn = BinanceStreamConnection(
            ws=ws,
            request=request,
            streams=StreamSet(max_streams=config.max_streams, combined=combined),
            opened_ms=self._market.clock.now_ms(),
            opened_wall=time.monotonic(),
            inbox=self._faults.attach(self._state.venue),
        )
        conn.streams.on_subscribe = lambda stream: self._track(conn, stream)
        valid = [n for n in names if parse_stream_name(n) is not None]
        if len(valid) > config.max_streams:
            self._faults.detach(conn.inbox)
            await ws.close(code=1008, message=b"Too many streams")
            return ws
        conn.streams.add(valid)
        venue = self._state.venue
        conn.streams.is_listed = lambda symbol: self._market.asset_of(venue, symbol) is not None
        self.connections.add(conn)
        self._state.stats.ws_connections += 1
        pump = asyncio.create_task(self._pump(conn))
        try:
            await self._read(conn)
        finally:
            self.connections.discard(conn)
            self._faults.detach(conn.inbox)
            pump.cancel()
            # a pump writing when the transport was aborted (a drop fault) has nothing to add
            with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                await pump
        return ws

    def _track(self, conn: BinanceStreamConnection, stream: StreamName) -> None:
        now = self._market.clock.now_ms()
        interval = stream.interval_ms if stream.kind is StreamKind.KLINE else 1
        conn.cursors[stream.name] = _Cursor(stream, now - now % interval, now)
        conn.inbox.wake.set()

    async def _read(self, conn: BinanceStreamConnection) -> None:
        async for message in conn.ws:
            if self._over_rate(conn):
                await conn.ws.close(code=1008, message=b"Too many requests")
                return
            if message.type is WSMsgType.PING:
                await conn.ws.pong(message.data)
            elif message.type is WSMsgType.TEXT and not conn.stalled:
                reply = handle_control(conn.streams, message.data)
                for name in set(conn.cursors) - conn.streams.streams.keys():
                    del conn.cursors[name]
                await conn.ws.send_str(json.dumps(reply, separators=(",", ":")))

    def _over_rate(self, conn: BinanceStreamConnection) -> bool:
        now = time.monotonic()
        conn.incoming.append(now)
        while conn.incoming and conn.incoming[0] <= now - 1.0:
            conn.incoming.popleft()
        return len(conn.incoming) > self._state.config.max_incoming_per_s

    async def _pump(self, conn: BinanceStreamConnection) -> None:
        clock = self._market.clock
        while not conn.ws.closed:
            now = clock.now_ms()
            conn.stalled = self._faults.is_stalled(self._state.venue, now)
            if await self._apply_faults(conn, now) or await self._expire(conn, now):
                return
            due = await self._emit(conn, now)
            delay = max(self._state.config.min_frame_gap_s, clock.wall_seconds(due - now))
            conn.inbox.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.inbox.wake.wait(), timeout=delay)

    async def _apply_faults(self, conn: BinanceStreamConnection, now: int) -> bool:
        """Apply pending fault actions; return True when the connection is gone."""
        while (action := conn.inbox.pop()) is not None:
            log.info("binance ws fault", venue=self._state.venue.value, action=action.kind.value)
            if action.kind is WsActionKind.CLOSE:
                await conn.ws.close(code=action.code, message=_CLOSE_REASONS.get(action.code, b""))
                return True
            if action.kind is WsActionKind.DROP:
                conn.drop()
                return True
            if action.kind is WsActionKind.MALFORMED:
                await conn.ws.send_str('{"e":"kline","E":')
            elif action.kind is WsActionKind.SERVER_SHUTDOWN:
                await conn.send("!serverShutdown", {"e": "serverShutdown", "E": now})
            elif action.kind is WsActionKind.SKIP_SEQUENCE:
                conn.final_skips += 1
        return False

    async def _expire(self, conn: BinanceStreamConnection, now: int) -> bool:
        config = self._state.config
        lifetime_wall = config.connection_lifetime_wall_s
        expired = now - conn.opened_ms >= config.connection_lifetime_ms or (
            lifetime_wall is not None and time.monotonic() - conn.opened_wall >= lifetime_wall
        )
        if expired:
            await conn.ws.close(code=1001, message=b"Connection lifetime exceeded")
        return expired

    async def _emit(self, conn: BinanceStreamConnection, now: int) -> int:
        """Send what is due at `now`; return the simulated time of the next due frame."""
        due = now + 60_000
        for cursor in list(conn.cursors.values()):
            if cursor.stream.kind is StreamKind.KLINE:
                await self._send_finals(conn, cursor, now)
                due = min(due, cursor.open_time + cursor.stream.interval_ms)
            if now >= cursor.next_update_ms:
                payload = stream_payload(self._market, self._state.venue, cursor.stream, now)
                await conn.send(cursor.stream.name, payload)
                self._state.stats.ws_frames += 1
                cursor.next_update_ms = now + self._update_ms(cursor.stream)
            due = min(due, cursor.next_update_ms)
        return due

    async def _send_finals(self, conn: BinanceStreamConnection, cursor: _Cursor, now: int) -> None:
        stream = cursor.stream
        interval = stream.interval_ms
        while cursor.open_time + interval <= now:
            bar = self._market.bar(self._state.venue, stream.symbol, interval, cursor.open_time)
            cursor.open_time += interval
            if conn.final_skips > 0:
                conn.final_skips -= 1
                log.info("skipped final kline", stream=stream.name, open_time=bar.open_time)
                continue
            event = kline_event(bar, stream.symbol, stream.interval or "", now, closed=True)
            await conn.send(stream.name, event)
            self._state.stats.final_frames += 1
            self._state.finals_sent.append((stream.name, bar.open_time, time.time_ns() // 1000))

    def _update_ms(self, stream: StreamName) -> int:
        config = self._state.config
        if stream.update_ms is not None:  # partial book depth names its own cadence
            return stream.update_ms
        return (
            config.kline_update_ms if stream.kind is StreamKind.KLINE else config.ticker_update_ms
        )
