"""The chart page's data: a series' candles with MACD-V and its alerts, then its live closes.

MACD-V history is not cached (only the latest reading is), so it is recomputed here from the
cached candles with the batch reference, over up to `_WARMUP_BARS` more bars than are shown so
the first drawn values are already settled. The live stream subscribes to the series' candle-close
and MACD-V channels before it answers `ready`, like the alert streams.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel
from sqlmodel import col, select

from livermore_api import keys
from livermore_api.models import ChartQuery, SeriesStreamQuery, SymbolPath
from livermore_api.resources import ChartAlertOut, ChartOut, MacdVPointOut
from livermore_api.routing import json_response, path_of, principal_of, query_of
from livermore_api.views.common import redis_of, resolve_exchange, session
from livermore_api.views.streams import series_slot
from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.client import RedisClient
from livermore_cache.pubsub import Subscription
from livermore_exchange_core import macd_v_series
from livermore_schema.enums import IndicatorType, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle
from livermore_schema.tables import AlertHistory
from livermore_schema.timeframes import duration_ms

_WARMUP_BARS = 200
_MAX_CACHED = 1000
_QUEUE_SIZE = 100


def _bar_open_time(alert: AlertHistory, timeframe: Timeframe) -> int:
    """The bar an alert fired on: from its details, else the bar that closed at triggered_at."""
    stored = (alert.details or {}).get("bar_open_time")
    if isinstance(stored, int):
        return stored
    return int(alert.triggered_at.timestamp() * 1000) - duration_ms(timeframe)


async def _alerts(
    request: web.Request, exchange_id: int, symbol: str, timeframe: Timeframe, since_ms: int
) -> list[ChartAlertOut]:
    since = datetime.fromtimestamp(since_ms / 1000, UTC)
    async with session(request) as db:
        rows = await db.exec(
            select(AlertHistory)
            .where(
                col(AlertHistory.exchange_id) == exchange_id,
                col(AlertHistory.symbol) == symbol,
                col(AlertHistory.timeframe) == timeframe.value,
                col(AlertHistory.triggered_at) >= since,
            )
            .order_by(col(AlertHistory.triggered_at))
        )
        return [
            ChartAlertOut(
                uid=alert.uid,
                bar_open_time=_bar_open_time(alert, timeframe),
                trigger_label=alert.trigger_label,
                trigger_value=alert.trigger_value,
                price=alert.price,
                triggered_at=alert.triggered_at,
            )
            for alert in rows.all()
        ]


async def get_chart(request: web.Request) -> web.StreamResponse:
    """Return the newest `limit` candles of a series, MACD-V at each, and its stored alerts."""
    path = path_of(request, SymbolPath)
    query = query_of(request, ChartQuery)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
    assert exchange.id is not None
    cache = CandleCache(redis_of(request), request.app[keys.CONFIG].cache)
    history = await cache.recent(
        exchange.id,
        path.symbol,
        query.timeframe,
        min(query.limit + _WARMUP_BARS, _MAX_CACHED),
        user_id=principal_of(request).user_id,
    )
    candles = [c for c in history if c.closed][-query.limit :]
    shown = {c.open_time for c in candles}
    points = [p for p in macd_v_series([c for c in history if c.closed]) if p.open_time in shown]
    since_ms = candles[0].open_time if candles else 0
    out = ChartOut(
        exchange_id=exchange.id,
        exchange=exchange.name,
        symbol=path.symbol,
        timeframe=query.timeframe.value,
        candles=candles,
        macdv=[
            MacdVPointOut(
                open_time=p.open_time, macd_v=p.macd_v, signal=p.signal, histogram=p.histogram
            )
            for p in points
        ],
        alerts=await _alerts(request, exchange.id, path.symbol, query.timeframe, since_ms),
    )
    return json_response(out)


async def _pump(
    sub: Subscription[Candle] | Subscription[IndicatorValue],
    event: str,
    queue: asyncio.Queue[tuple[str, BaseModel]],
) -> None:
    async for _, item in sub:
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait((event, item))  # a client this far behind misses bars, not the server


@contextlib.asynccontextmanager
async def _following(
    redis: RedisClient, exchange_id: int, symbol: str, timeframe: Timeframe
) -> AsyncIterator[asyncio.Queue[tuple[str, BaseModel]]]:
    """Subscribe to the series' closes and MACD-V, then yield a queue both feed."""
    queue: asyncio.Queue[tuple[str, BaseModel]] = asyncio.Queue(maxsize=_QUEUE_SIZE)
    closes = Subscription(
        redis,
        model=Candle,
        channels=[channels.candle_close_channel(exchange_id, symbol, timeframe)],
    )
    readings = Subscription(
        redis,
        model=IndicatorValue,
        channels=[channels.indicator_channel(exchange_id, symbol, timeframe, IndicatorType.MACD_V)],
    )
    async with closes, readings, asyncio.TaskGroup() as tasks:
        pumps = [
            tasks.create_task(_pump(closes, "candle", queue)),
            tasks.create_task(_pump(readings, "indicator", queue)),
        ]
        try:
            yield queue
        finally:
            for pump in pumps:
                pump.cancel()


async def stream_series(request: web.Request) -> web.StreamResponse:
    """Serve a series' closed candles and MACD-V readings as Server-Sent Events."""
    path = path_of(request, SymbolPath)
    query = query_of(request, SeriesStreamQuery)
    async with session(request) as db:
        exchange = await resolve_exchange(db, path.exchange)
    assert exchange.id is not None
    task = asyncio.current_task()
    if task is not None:
        request.app[keys.STREAMS].add(task)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    with series_slot(request):
        return await _serve(request, response, exchange.id, path.symbol, query.timeframe)


async def _serve(
    request: web.Request,
    response: web.StreamResponse,
    exchange_id: int,
    symbol: str,
    timeframe: Timeframe,
) -> web.StreamResponse:
    ping_s = request.app[keys.CONFIG].stream_ping_s
    async with _following(redis_of(request), exchange_id, symbol, timeframe) as queue:
        await response.prepare(request)
        try:
            await response.write(b"event: ready\ndata: {}\n\n")
            while True:
                try:
                    kind, item = await asyncio.wait_for(queue.get(), ping_s)
                except TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                await response.write(f"event: {kind}\ndata: {item.model_dump_json()}\n\n".encode())
        except ConnectionResetError:
            pass  # the client left
    return response
