"""Coinbase Advanced Trade market-data WebSocket (path "/" of the venue).

One channel per subscribe message; a `subscriptions` ack after each (un)subscribe. Streams
tick once per simulated second (never faster than `ws_min_tick_s` real seconds; a tick then
covers several simulated seconds): `heartbeats` (counter +1 per tick), `candles` (5m: a
snapshot of the last `coinbase_snapshot_candles` buckets newest first, then one update per
product per tick; when a bucket closes its final values are sent before the next bucket's),
`ticker`, `ticker_batch`, `market_trades` (every trade as simulated time passes it, or late while
the fault API delays trades), `level2`
(answered on `l2_data`: a snapshot of a 10-level book around the ticker, then per tick only the
levels that changed, absolute quantities, "0" for a level that left the book) and `status`.
`sequence_num` counts per connection across channels.
The connection is closed (1008) when no subscribe arrives within the configured timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import WSMsgType, web

from livermore_exchange_sim import coinbase_wire as wire
from livermore_exchange_sim.config import SimConfig
from livermore_exchange_sim.faults import FaultController, FaultInbox, WsActionKind
from livermore_exchange_sim.market import Market, Venue

CHANNELS = frozenset(
    {"heartbeats", "candles", "ticker", "ticker_batch", "market_trades", "level2", "status"}
)
AUTH_CHANNELS = frozenset({"user", "futures_balance_summary"})
_WIRE_CHANNEL = {"level2": "l2_data"}
_BOOK_DEPTH = 10


@dataclass(eq=False)
class _Connection:
    ws: web.WebSocketResponse
    request: web.Request
    inbox: FaultInbox
    opened_ms: int
    subs: dict[str, set[str]] = field(default_factory=dict)
    sequence: int = 0
    heartbeat: int = 0
    omit_client_id: bool = False
    candle_start: dict[str, int] = field(default_factory=dict)
    trades_sent_to: dict[str, int] = field(default_factory=dict)
    book_sent: dict[str, dict[tuple[str, str], str]] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)


class CoinbaseWs:
    """Serves the WebSocket and owns its live connections."""

    def __init__(self, market: Market, faults: FaultController, config: SimConfig) -> None:
        self._market = market
        self._faults = faults
        self._config = config
        self._live: set[_Connection] = set()

    async def subscriptions(self, request: web.Request) -> web.Response:
        """`GET /_sim/subscriptions`: each live connection's channels and products."""
        live = [
            {channel: sorted(products) for channel, products in conn.subs.items()}
            for conn in self._live
        ]
        return web.json_response({"connections": live})

    async def close_all(self, app: web.Application) -> None:
        """Close every live connection with 1001 (server going away)."""
        for conn in list(self._live):
            await conn.ws.close(code=1001, message=b"server shutdown")

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Run one WebSocket connection until it closes."""
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        clock = self._market.clock
        conn = _Connection(ws, request, self._faults.attach(Venue.COINBASE), clock.now_ms())
        self._live.add(conn)
        try:
            async with asyncio.TaskGroup() as tasks:
                pump = tasks.create_task(self._pump(conn))
                await self._read(conn)
                pump.cancel()
        finally:
            self._live.discard(conn)
            self._faults.detach(conn.inbox)
        return ws

    # ------------------------------------------------------------------ client frames
    async def _read(self, conn: _Connection) -> None:
        timeout = self._config.coinbase_subscribe_timeout_s
        reader = aiter(conn.ws)
        while not conn.ws.closed:
            try:
                async with asyncio.timeout(None if conn.subscribed.is_set() else timeout):
                    msg = await anext(reader)
            except TimeoutError:
                await conn.ws.close(code=1008, message=b"no subscribe within 5s")
                return
            except StopAsyncIteration:
                return
            if msg.type is WSMsgType.TEXT:
                try:
                    await self._on_text(conn, msg.data)
                except ConnectionResetError:
                    return
            elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                return

    async def _on_text(self, conn: _Connection, text: str) -> None:
        try:
            body = json.loads(text)
            kind, channel = body["type"], body["channel"]
            products = [str(p) for p in body.get("product_ids", [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            await self._raw(conn, {"type": "error", "message": "malformed subscribe message"})
            return
        if kind not in ("subscribe", "unsubscribe"):
            await self._raw(conn, {"type": "error", "message": f"unknown type {kind!r}"})
            return
        problem = self._problem(channel, products, body.get("jwt"))
        if problem is not None:
            await self._raw(conn, problem)
            return
        if kind == "unsubscribe":
            if not products:
                conn.subs.pop(channel, None)
            else:
                conn.subs.get(channel, set()).difference_update(products)
            await self._ack(conn)
            return
        conn.subscribed.set()
        conn.subs.setdefault(channel, set()).update(products)
        await self._ack(conn)
        await self._snapshot(conn, channel, products)

    def _problem(self, channel: str, products: list[str], token: object) -> dict[str, str] | None:
        if channel in AUTH_CHANNELS:
            auth = self._config.coinbase_auth
            if auth is None or not isinstance(token, str):
                return {"type": "error", "message": "authentication failure"}
            try:
                jwt.decode(token, auth.public_key_pem, algorithms=["ES256", "EdDSA"], leeway=5)
            except jwt.PyJWTError:
                return {"type": "error", "message": "authentication failure"}
            return None
        if channel not in CHANNELS:
            return _failed(f"channel {channel} is not a valid channel")
        unknown = [p for p in products if self._market.product(Venue.COINBASE, p) is None]
        if unknown:
            return _failed(f"{', '.join(unknown)} is not a valid product")
        return None

    # ------------------------------------------------------------------ server frames
    async def _raw(self, conn: _Connection, body: dict[str, Any]) -> None:
        async with conn.lock:
            await conn.ws.send_str(json.dumps(body))

    async def _send(self, conn: _Connection, channel: str, events: list[Any], now: int) -> None:
        async with conn.lock:
            frame: dict[str, Any] = {"channel": channel, "client_id": ""}
            if conn.omit_client_id:
                conn.omit_client_id = False
                del frame["client_id"]
            frame |= {"timestamp": wire.rfc3339_ns(now), "sequence_num": conn.sequence}
            frame["events"] = events
            conn.sequence += 1
            await conn.ws.send_str(json.dumps(frame))

    async def _ack(self, conn: _Connection) -> None:
        subs = {channel: sorted(ids) for channel, ids in conn.subs.items()}
        now = self._market.clock.now_ms()
        await self._send(conn, "subscriptions", [{"subscriptions": subs}], now)

    async def _snapshot(self, conn: _Connection, channel: str, products: list[str]) -> None:
        now = self._market.clock.now_ms()
        events = self._events(conn, channel, products, now, snapshot=True)
        if events:
            await self._send(conn, _WIRE_CHANNEL.get(channel, channel), events, now)

    async def _pump(self, conn: _Connection) -> None:
        clock = self._market.clock
        tick = max(self._config.ws_min_tick_s, clock.wall_seconds(1000))
        while not conn.ws.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await conn.inbox.wake.wait()
            try:
                await self._tick(conn, clock.now_ms())
            except ConnectionResetError:
                return

    async def _tick(self, conn: _Connection, now: int) -> None:
        if await self._apply_faults(conn):
            return
        if self._faults.is_stalled(Venue.COINBASE, now) or conn.ws.closed:
            return
        for channel, products in list(conn.subs.items()):
            events = self._events(conn, channel, sorted(products), now, snapshot=False)
            if events:
                await self._send(conn, _WIRE_CHANNEL.get(channel, channel), events, now)

    async def _apply_faults(self, conn: _Connection) -> bool:
        """Apply pending fault actions; return True when the connection is gone."""
        while (action := conn.inbox.pop()) is not None:
            if action.kind is WsActionKind.CLOSE:
                await conn.ws.close(code=action.code, message=b"fault injected")
                return True
            if action.kind is WsActionKind.DROP:
                if conn.request.transport is not None:
                    conn.request.transport.abort()
                return True
            if action.kind is WsActionKind.SKIP_SEQUENCE:
                conn.sequence += 1
            elif action.kind is WsActionKind.SKIP_HEARTBEAT:
                conn.heartbeat += 1
            elif action.kind is WsActionKind.OMIT_CLIENT_ID:
                conn.omit_client_id = True
            elif action.kind is WsActionKind.MALFORMED:
                async with conn.lock:
                    await conn.ws.send_str('{"channel":"candles","events":[{"type":')
        return False

    # ------------------------------------------------------------------ channel events
    def _events(
        self, conn: _Connection, channel: str, products: list[str], now: int, *, snapshot: bool
    ) -> list[Any]:
        kind = "snapshot" if snapshot else "update"
        if channel == "heartbeats":
            if snapshot:
                return []
            conn.heartbeat += 1
            current = wire.heartbeat_time(now, now - conn.opened_ms)
            return [{"current_time": current, "heartbeat_counter": conn.heartbeat}]
        if channel == "candles":
            candles = self._candles(conn, products, now, snapshot=snapshot)
            return [{"type": kind, "candles": candles}] if candles else []
        if channel in ("ticker", "ticker_batch"):
            tickers = [self._ticker(p, now, channel == "ticker_batch") for p in products]
            return [{"type": kind, "tickers": tickers}] if tickers else []
        if channel == "market_trades":
            trades = self._trades(conn, products, now, snapshot=snapshot)
            return [{"type": kind, "trades": trades}] if trades else []
        if channel == "level2":
            books = [self._book(conn, p, now, snapshot=snapshot) for p in products]
            return [b for b in books if b["updates"]]
        if channel == "status" and snapshot:
            return [{"type": "snapshot", "products": [self._status(p) for p in products]}]
        return []

    def _candles(
        self, conn: _Connection, products: list[str], now: int, *, snapshot: bool
    ) -> list[dict[str, str]]:
        market, out = self._market, []
        step = wire.WS_CANDLE_MS
        for product_id in products:
            decimals = self._decimals(product_id)
            live = market.partial_bar(Venue.COINBASE, product_id, step, now)
            if snapshot:
                count = self._config.coinbase_snapshot_candles
                closed = market.closed_bars(
                    Venue.COINBASE, product_id, step, live.open_time - count * step, now
                )
                bars = ([live] if live.trades else []) + closed[::-1]
                out += [wire.candle(b, decimals, product_id) for b in bars[:count]]
                conn.candle_start[product_id] = live.open_time
                continue
            previous = conn.candle_start.get(product_id)
            if previous is not None and previous < live.open_time:
                final = market.bar(Venue.COINBASE, product_id, step, previous)
                if final.trades:
                    out.append(wire.candle(final, decimals, product_id))
            conn.candle_start[product_id] = live.open_time
            if live.trades:
                out.append(wire.candle(live, decimals, product_id))
        return out

    def _ticker(self, product_id: str, now: int, batch: bool) -> dict[str, str]:
        snap = self._market.ticker(Venue.COINBASE, product_id, now)
        return wire.ticker(snap, self._decimals(product_id), batch=batch)

    def _trades(
        self, conn: _Connection, products: list[str], now: int, *, snapshot: bool
    ) -> list[dict[str, str]]:
        out = []
        # A lagging feed (a fault) sends only trades older than the lag; a snapshot never waits.
        upto = now if snapshot else now - self._faults.trade_delay_ms(Venue.COINBASE, now)
        for product_id in products:
            since = conn.trades_sent_to.get(product_id)
            if snapshot or since is None:
                since = now - 60_000
            if upto <= since:
                continue
            trades = self._market.trades(Venue.COINBASE, product_id, since, upto)
            conn.trades_sent_to[product_id] = upto
            decimals = self._decimals(product_id)
            recent = trades[-50:] if snapshot else trades
            out += [wire.trade(t, product_id, decimals) for t in reversed(recent)]
        return out

    def _book(
        self, conn: _Connection, product_id: str, now: int, *, snapshot: bool
    ) -> dict[str, Any]:
        snap = self._market.ticker(Venue.COINBASE, product_id, now)
        levels = wire.book_levels(snap, self._decimals(product_id), _BOOK_DEPTH)
        book = {(side, price): qty for side, price, qty in levels}
        sent = {} if snapshot else conn.book_sent.get(product_id, {})
        conn.book_sent[product_id] = book
        # Updates carry absolute quantities of changed levels; "0" removes a level.
        changes = [(side, price, "0") for side, price in sorted(sent.keys() - book.keys())]
        changes += [(s, p, q) for s, p, q in levels if sent.get((s, p)) != q]
        stamp = wire.rfc3339_ns(now)
        updates = [
            {"side": side, "event_time": stamp, "price_level": price, "new_quantity": qty}
            for side, price, qty in changes
        ]
        kind = "snapshot" if snapshot else "update"
        return {"type": kind, "product_id": product_id, "updates": updates}

    def _status(self, product_id: str) -> dict[str, str]:
        item = self._market.product(Venue.COINBASE, product_id)
        base = item.base if item else product_id.split("-")[0]
        tick = wire.fmt(10.0 ** -(item.price_decimals if item else 2), 8)
        return {
            "product_type": "SPOT",
            "id": product_id,
            "base_currency": base,
            "quote_currency": "USD",
            "base_increment": "0.00000001",
            "quote_increment": tick,
            "display_name": product_id,
            "status": "online",
            "status_message": "",
            "min_market_funds": "1",
        }

    def _decimals(self, product_id: str) -> int:
        asset = self._market.asset_of(Venue.COINBASE, product_id)
        return asset.price_decimals if asset else 2


def _failed(reason: str) -> dict[str, str]:
    return {"type": "error", "message": "Failed to subscribe", "reason": reason}
