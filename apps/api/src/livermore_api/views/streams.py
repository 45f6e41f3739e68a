"""Live alerts from any set of exchanges: Server-Sent Events and a WebSocket.

Both subscribe before answering and then send a `ready` frame, so anything published after a
client has seen `ready` reaches it. A task reads the subscription into a queue; the sender
waits on the queue with a timeout to send keep-alives (never cancelling a Redis read midway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import WSMsgType, web

from livermore_api import keys
from livermore_api.models import StreamQuery
from livermore_api.routing import query_of
from livermore_api.views.common import redis_of, resolve_exchange, session
from livermore_cache.pubsub import Subscription, alert_stream
from livermore_schema.alerts import AlertEvent

_QUEUE_SIZE = 1000


async def _exchange_ids(request: web.Request) -> list[int] | None:
    raw = query_of(request, StreamQuery).exchanges
    if raw is None:
        return None
    refs = [part.strip() for part in raw.split(",") if part.strip()]
    ids: list[int] = []
    async with session(request) as db:
        for ref in dict.fromkeys(refs):
            exchange = await resolve_exchange(db, ref)
            assert exchange.id is not None
            ids.append(exchange.id)
    return ids or None


async def _pump(sub: Subscription[AlertEvent], queue: asyncio.Queue[AlertEvent]) -> None:
    async for _, event in sub:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(event)  # a client this far behind loses alerts, not the server


@contextlib.asynccontextmanager
async def _following(
    request: web.Request, exchange_ids: list[int] | None
) -> AsyncIterator[asyncio.Queue[AlertEvent]]:
    """Subscribe, then yield a queue of alerts fed by a task owned by this context."""
    task = asyncio.current_task()
    if task is not None:
        request.app[keys.STREAMS].add(task)
    queue: asyncio.Queue[AlertEvent] = asyncio.Queue(maxsize=_QUEUE_SIZE)
    async with alert_stream(redis_of(request), exchange_ids) as sub:
        pump = asyncio.create_task(_pump(sub, queue), name="alert-stream-pump")
        try:
            yield queue
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump


async def _next(queue: asyncio.Queue[AlertEvent], ping_s: float) -> AlertEvent | None:
    try:
        return await asyncio.wait_for(queue.get(), ping_s)
    except TimeoutError:
        return None


async def stream_alerts_sse(request: web.Request) -> web.StreamResponse:
    """Serve alerts as `text/event-stream` until the client goes away."""
    exchange_ids = await _exchange_ids(request)
    ping_s = request.app[keys.CONFIG].stream_ping_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    async with _following(request, exchange_ids) as queue:
        await response.prepare(request)
        ready = json.dumps({"exchanges": exchange_ids})
        try:
            await response.write(f"event: ready\ndata: {ready}\n\n".encode())
            while True:
                event = await _next(queue, ping_s)
                if event is None:
                    await response.write(b": ping\n\n")
                    continue
                frame = f"id: {event.id}\nevent: alert\ndata: {event.model_dump_json()}\n\n"
                await response.write(frame.encode())
        except ConnectionResetError:
            pass  # the client left
    return response


async def _drain(ws: web.WebSocketResponse) -> None:
    async for msg in ws:
        if msg.type is WSMsgType.ERROR:
            return


async def stream_alerts_ws(request: web.Request) -> web.StreamResponse:
    """Serve alerts on a WebSocket as `{"type": "alert", "alert": {...}}` frames."""
    exchange_ids = await _exchange_ids(request)
    ws = web.WebSocketResponse(heartbeat=request.app[keys.CONFIG].stream_ping_s)
    async with _following(request, exchange_ids) as queue:
        await ws.prepare(request)
        reader = asyncio.create_task(_drain(ws), name="alert-ws-reader")
        try:
            await ws.send_json({"type": "ready", "exchanges": exchange_ids})
            while not reader.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                event = getter.result()
                await ws.send_str(
                    json.dumps({"type": "alert", "alert": event.model_dump(mode="json")})
                )
        except ConnectionResetError:
            pass
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await ws.close()
    return ws
