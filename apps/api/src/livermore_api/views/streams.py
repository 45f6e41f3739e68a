"""Live alerts from any set of exchanges: Server-Sent Events and a WebSocket.

Each client's `exchanges`, `asset` and `mine` choice is applied by `select_alert` to every
alert (and confluence) heard; in `mine` mode the alert goes out with the caller's `local` symbols.

Both subscribe before answering and then send a `ready` frame, so anything published after a
client has seen `ready` reaches it. A task reads the subscription into a queue; the sender
waits on the queue with a timeout to send keep-alives (never cancelling a Redis read midway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from livermore_api import keys
from livermore_api.models import StreamQuery
from livermore_api.routing import query_of
from livermore_api.views.common import redis_of
from livermore_api.views.selection import alert_selection, exchange_ids_of
from livermore_cache.pubsub import Subscription, alert_stream
from livermore_exchange_core.alerts.local import AlertSelection, select_alert
from livermore_schema.alerts import AlertEvent

_QUEUE_SIZE = 1000


async def _selection(request: web.Request) -> tuple[AlertSelection, dict[str, Any]]:
    """Return the caller's selection and what the `ready` frame reports of it."""
    query = query_of(request, StreamQuery)
    exchange_ids = await exchange_ids_of(request, query.exchanges)
    selection = await alert_selection(request, exchange_ids, query.asset, mine=query.mine)
    ready: dict[str, Any] = {"exchanges": exchange_ids}
    if selection.assets is not None:
        ready["assets"] = sorted(selection.assets)
    if selection.holdings is not None:
        ready["mine"] = sorted(selection.holdings)
    return selection, ready


async def _pump(
    sub: Subscription[AlertEvent], queue: asyncio.Queue[AlertEvent], selection: AlertSelection
) -> None:
    async for _, event in sub:
        chosen = select_alert(event, selection)
        if chosen is None:
            continue
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(chosen)  # a client this far behind loses alerts, not the server


@contextlib.asynccontextmanager
async def _following(
    request: web.Request, selection: AlertSelection
) -> AsyncIterator[asyncio.Queue[AlertEvent]]:
    """Subscribe, then yield a queue of alerts fed by a task owned by this context."""
    task = asyncio.current_task()
    if task is not None:
        request.app[keys.STREAMS].add(task)
    queue: asyncio.Queue[AlertEvent] = asyncio.Queue(maxsize=_QUEUE_SIZE)
    # Every channel (the confluence one too): a confluence passes if any of its venues is chosen.
    async with alert_stream(redis_of(request)) as sub:
        pump = asyncio.create_task(_pump(sub, queue, selection), name="alert-stream-pump")
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
    selection, ready_info = await _selection(request)
    ping_s = request.app[keys.CONFIG].stream_ping_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    async with _following(request, selection) as queue:
        await response.prepare(request)
        ready = json.dumps(ready_info)
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
    selection, ready_info = await _selection(request)
    ws = web.WebSocketResponse(heartbeat=request.app[keys.CONFIG].stream_ping_s)
    async with _following(request, selection) as queue:
        await ws.prepare(request)
        reader = asyncio.create_task(_drain(ws), name="alert-ws-reader")
        try:
            await ws.send_json({"type": "ready", **ready_info})
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
