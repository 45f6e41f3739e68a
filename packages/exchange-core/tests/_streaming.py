"""Shared wiring for the streaming tests: a real pipeline on real Redis behind a real adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core.base import RestClient
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.reconciliation import GapRepairer
from livermore_exchange_core.stage import CloseFollower
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings


def gap_repairer(redis: Any, rest: RestClient, exchange_id: int, exchange_name: str) -> GapRepairer:
    """The worker's repairer: fetches a gap's missing closed bars over REST and writes them."""
    cache = CandleCache(redis, CacheSettings())
    return GapRepairer(rest, cache, exchange_id=exchange_id, exchange_name=exchange_name)


@dataclass
class Wired:
    pipeline: CandlePipeline
    candles: CandleCache
    clock: ExchangeClock


@asynccontextmanager
async def wired_pipeline(
    redis: Any,
    *,
    exchange_id: int,
    exchange_name: str,
    repairer: Any,
    followers: Sequence[CloseFollower] = (),
    rest_lag_ms: int = 3_000,
    order_books: OrderBookCache | None = None,
    book_flush_s: float = 0.25,
) -> AsyncIterator[Wired]:
    settings = CacheSettings()
    candles = CandleCache(redis, settings)
    clock = ExchangeClock()
    pipeline = CandlePipeline(
        exchange_id=exchange_id,
        exchange_name=exchange_name,
        candles=candles,
        tickers=TickerCache(redis, settings),
        publisher=Publisher(redis, settings),
        repairer=repairer,
        clock=clock,
        ticker_flush_s=0.05,
        rest_lag_ms=rest_lag_ms,
        order_books=order_books,
        book_flush_s=book_flush_s,
    )
    pipeline.stage.followers.extend(followers)
    runner = asyncio.get_running_loop().create_task(pipeline.run())
    try:
        yield Wired(pipeline, candles, clock)
    finally:
        await pipeline.stop()
        await asyncio.wait_for(runner, 30)


def assert_matches_truth(cached: Sequence[Candle], truth: Sequence[Any], label: str) -> None:
    """Every cached bar is closed and equals the ground truth over the cached window."""
    assert cached, f"{label}: nothing cached"
    assert all(c.closed for c in cached), f"{label}: an unfinished bar is stored"
    got = [c.open_time for c in cached]
    assert len(got) == len(set(got)), f"{label}: duplicate open times"
    want = [b.open_time for b in truth]
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, f"{label}: missing {missing[:5]} extra {extra[:5]}"
    for c, b in zip(cached, truth, strict=True):
        values = (c.open, c.high, c.low, c.close, c.volume)
        expected = (b.open, b.high, b.low, b.close, b.volume)
        for v, e in zip(values, expected, strict=True):
            assert abs(v - e) <= 1e-9 * max(1.0, abs(e)), (
                f"{label} {c.open_time}: {values} != {expected}"
            )
