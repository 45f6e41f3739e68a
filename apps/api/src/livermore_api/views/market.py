"""Candles and indicators through the caches: exchange key, then the caller's, then legacy."""

from __future__ import annotations

from aiohttp import web

from livermore_api import keys
from livermore_api.errors import ValidationFailedError
from livermore_api.models import CandleQuery, IndicatorQuery, SymbolPath
from livermore_api.routing import json_response, path_of, principal_of, query_of
from livermore_api.views.common import redis_of, resolve_exchange, session
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_schema.enums import RUNTIME_TIMEFRAMES, IndicatorType


async def _exchange_id(request: web.Request, ref: str) -> int:
    async with session(request) as db:
        exchange = await resolve_exchange(db, ref)
    assert exchange.id is not None
    return exchange.id


async def get_candles(request: web.Request) -> web.StreamResponse:
    """Return the newest `limit` candles, or those opened in [start, end] (ms), oldest first."""
    path = path_of(request, SymbolPath)
    query = query_of(request, CandleQuery)
    if (query.start is None) != (query.end is None):
        raise ValidationFailedError("give both start and end, or neither")
    if query.start is not None and query.end is not None and query.start > query.end:
        raise ValidationFailedError("start is after end")
    exchange_id = await _exchange_id(request, path.exchange)
    cache = CandleCache(redis_of(request), request.app[keys.CONFIG].cache)
    user_id = principal_of(request).user_id
    if query.start is not None and query.end is not None:
        candles = await cache.between(
            exchange_id, path.symbol, query.timeframe, query.start, query.end, user_id=user_id
        )
        candles = candles[-query.limit :]
    else:
        candles = await cache.recent(
            exchange_id, path.symbol, query.timeframe, query.limit, user_id=user_id
        )
    return json_response(
        {
            "exchange_id": exchange_id,
            "symbol": path.symbol,
            "timeframe": query.timeframe.value,
            "items": [c.model_dump(mode="json") for c in candles],
        }
    )


async def get_indicators(request: web.Request) -> web.StreamResponse:
    """Return the MACD-V reading of one timeframe, or of every runtime timeframe (null: none)."""
    path = path_of(request, SymbolPath)
    query = query_of(request, IndicatorQuery)
    exchange_id = await _exchange_id(request, path.exchange)
    cache = IndicatorCache(redis_of(request), request.app[keys.CONFIG].cache)
    timeframes = [query.timeframe] if query.timeframe else list(RUNTIME_TIMEFRAMES)
    found = await cache.read_many(
        exchange_id,
        path.symbol,
        timeframes,
        IndicatorType.MACD_V,
        user_id=principal_of(request).user_id,
    )
    return json_response(
        {
            "exchange_id": exchange_id,
            "symbol": path.symbol,
            "type": IndicatorType.MACD_V.value,
            "timeframes": {
                tf.value: None if value is None else value.model_dump(mode="json")
                for tf, value in found.items()
            },
        }
    )
