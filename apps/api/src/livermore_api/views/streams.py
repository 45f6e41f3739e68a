"""Live alerts from any set of exchanges: Server-Sent Events and a WebSocket.

Every stream is a listener on the process's one shared subscription (`ChannelFanout`), so no
number of clients can take Redis connections from the rest of the api. Each listener carries its
client's `exchanges`, `asset` and `mine` choice as its transform: `select_alert` is applied to
every alert (and confluence) heard; in `mine` mode the alert goes out with the caller's `local`
symbols. The listener is registered before the `ready` frame, so anything published after a
client has seen `ready` reaches it. A stream ends when the client leaves, falls behind
(`slow_client`), its token is revoked or its user deactivated (`revoked`), or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import WSMsgType, web

from livermore_api import keys
from livermore_api.errors import TooManyStreamsError
from livermore_api.models import StreamQuery
from livermore_api.routing import principal_of, query_of
from livermore_api.views.selection import alert_selection, exchange_ids_of
from livermore_cache.fanout import AlertListener, FanoutFullError, ListenerClosedError, Transform
from livermore_exchange_core.alerts.local import AlertSelection, select_alert
from livermore_schema.alerts import AlertEvent

_TICK_S = 1.0
_RETRY_AFTER_S = 5
_WS_CLOSE = {"revoked": 1008, "slow_client": 1013, "shutdown": 1001}


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


@contextlib.asynccontextmanager
async def following(
    request: web.Request, transform: Transform[AlertEvent]
) -> AsyncIterator[AlertListener[AlertEvent]]:
    """Register the caller's listener (429 past the caps); release it on exit."""
    fanout = request.app[keys.FANOUT]
    principal = principal_of(request)
    try:
        listener = fanout.listen(principal.user_id, transform, token_id=principal.token_id)
    except FanoutFullError as err:
        which = "your" if err.scope == "owner" else "the server's"
        raise TooManyStreamsError(
            f"{which} limit of {err.limit} open alert streams is reached; close one",
            details={"scope": err.scope, "limit": err.limit},
            headers={"Retry-After": str(_RETRY_AFTER_S)},
        ) from None
    task = asyncio.current_task()
    if task is not None:
        request.app[keys.STREAMS].add(task)
    try:
        yield listener
    finally:
        fanout.release(listener)


@contextlib.contextmanager
def series_slot(request: web.Request) -> Iterator[None]:
    """Hold one of the caller's chart-stream slots (429 past the per-user or total cap)."""
    api = request.app[keys.CONFIG].api
    counts = request.app[keys.SERIES_STREAMS]
    user_id = principal_of(request).user_id
    if counts.total() >= api.series_stream_max_total:
        scope, limit = "total", api.series_stream_max_total
    elif counts[user_id] >= api.series_stream_max_per_user:
        scope, limit = "owner", api.series_stream_max_per_user
    else:
        counts[user_id] += 1
        try:
            yield
        finally:
            counts[user_id] -= 1
        return
    raise TooManyStreamsError(
        f"the {'server' if scope == 'total' else 'per-user'} limit of {limit} open chart "
        "streams is reached; close one",
        details={"scope": scope, "limit": limit},
        headers={"Retry-After": str(_RETRY_AFTER_S)},
    )


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _serve_sse(
    request: web.Request, response: web.StreamResponse, listener: AlertListener[AlertEvent]
) -> None:
    ping_s = request.app[keys.CONFIG].stream_ping_s
    tick = min(_TICK_S, ping_s)
    idle = 0.0
    while not _gone(request):  # checked every tick: a slot is freed soon after a client leaves
        try:
            event = await listener.next(tick)
        except ListenerClosedError as err:
            closed = json.dumps({"reason": err.reason})
            await response.write(f"event: closed\ndata: {closed}\n\n".encode())
            return
        if event is None:
            idle += tick
            if idle >= ping_s:
                idle = 0.0
                await response.write(b": ping\n\n")
            continue
        frame = f"id: {event.id}\nevent: alert\ndata: {event.model_dump_json()}\n\n"
        await response.write(frame.encode())


async def stream_alerts_sse(request: web.Request) -> web.StreamResponse:
    """Serve alerts as `text/event-stream` until the client goes away or the stream ends."""
    selection, ready_info = await _selection(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    async with following(request, functools.partial(select_alert, selection=selection)) as lst:
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client left
            await response.write(f"event: ready\ndata: {json.dumps(ready_info)}\n\n".encode())
            await _serve_sse(request, response, lst)
    return response


@contextlib.asynccontextmanager
async def _reading(ws: web.WebSocketResponse) -> AsyncIterator[None]:
    """Read (and ignore) client frames, so close frames and pongs are processed."""

    async def drain() -> None:
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                return

    reader = asyncio.create_task(drain(), name="alert-ws-reader")
    try:
        yield
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


async def _serve_ws(ws: web.WebSocketResponse, listener: AlertListener[AlertEvent]) -> int:
    """Send alerts until the client leaves or the listener closes; return the close code."""
    while not ws.closed:
        try:
            event = await listener.next(_TICK_S)
        except ListenerClosedError as err:
            return _WS_CLOSE.get(err.reason, 1011)
        if event is not None:
            await ws.send_str(json.dumps({"type": "alert", "alert": event.model_dump(mode="json")}))
    return 1000


async def stream_alerts_ws(request: web.Request) -> web.StreamResponse:
    """Serve alerts on a WebSocket as `{"type": "alert", "alert": {...}}` frames."""
    selection, ready_info = await _selection(request)
    ws = web.WebSocketResponse(heartbeat=request.app[keys.CONFIG].stream_ping_s)
    async with following(request, functools.partial(select_alert, selection=selection)) as lst:
        await ws.prepare(request)
        code = 1000
        async with _reading(ws):
            with contextlib.suppress(ConnectionResetError):
                await ws.send_json({"type": "ready", **ready_info})
                code = await _serve_ws(ws, lst)
        await ws.close(code=code, message=(lst.closed or "").encode())
    return ws
