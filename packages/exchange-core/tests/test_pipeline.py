from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from livermore_cache import channels, keys
from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.events import GapNotice
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings

T0 = 1_712_232_000_000
MIN = 60_000


def _bar(open_time: int, symbol: str = "BTC-USD", source: CandleSource = CandleSource.WS) -> Candle:
    price = 100.0 + (open_time - T0) / MIN
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol=symbol,
        timeframe=Timeframe.M1,
        open_time=open_time,
        close_time=open_time + MIN - 1,
        open=price,
        high=price + 1,
        low=price - 1,
        close=price,
        volume=1.0,
        closed=True,
        source=source,
    )


class ListRepairer:
    """Returns prepared REST bars for a range (what GapRepairer returns)."""

    def __init__(self, bars: Sequence[Candle]) -> None:
        self.bars = list(bars)
        self.calls: list[tuple[str, Timeframe, int, int]] = []

    async def repair(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> Sequence[Candle]:
        self.calls.append((symbol, timeframe, since_ms, until_ms))
        return [b for b in self.bars if since_ms <= b.open_time < until_ms]


class Seen(list[Candle]):
    """Follows the closed-bar stage: every bar it flushed, in order."""

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        self.extend(bars)


def _pipeline(
    redis: Any, repairer: Any, clock: ExchangeClock, **kw: Any
) -> tuple[CandlePipeline, list[Candle]]:
    seen = Seen()
    settings = CacheSettings()
    pipeline = CandlePipeline(
        exchange_id=1,
        exchange_name="coinbase",
        candles=CandleCache(redis, settings),
        tickers=TickerCache(redis, settings),
        publisher=Publisher(redis, settings),
        repairer=repairer,
        clock=clock,
        ticker_flush_s=0.01,
        rest_lag_ms=0,
        **kw,
    )
    pipeline.stage.followers.append(seen)
    return pipeline, seen


async def test_gap_repair_reaches_the_hook_in_order_before_later_live_bars(redis: Any) -> None:
    clock = ExchangeClock(T0)
    repairer = ListRepairer(
        [_bar(T0 + MIN, source=CandleSource.REST), _bar(T0 + 2 * MIN, source=CandleSource.REST)]
    )
    pipeline, seen = _pipeline(redis, repairer, clock)
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(_bar(T0))
    await pipeline.on_gap(
        GapNotice("BTC-USD", Timeframe.M1, None, T0 + 3 * MIN, T0 + 3 * MIN, "test")
    )
    await pipeline.on_candle(_bar(T0 + 3 * MIN))  # live, must wait for the repair
    await pipeline.on_candle(_bar(T0 + 3 * MIN))  # a duplicate
    await asyncio.wait_for(pipeline._queue.join(), 5)
    assert [c.open_time for c in seen] == [T0]  # the repair waits for exchange time
    clock.advance(T0 + 3 * MIN)
    await asyncio.wait_for(pipeline.drain(), 5)
    assert [c.open_time for c in seen] == [T0 + i * MIN for i in range(4)]
    assert repairer.calls == [("BTC-USD", Timeframe.M1, T0 + MIN, T0 + 3 * MIN)]
    await pipeline.on_candle(_bar(T0 + 2 * MIN))  # late copy of a repaired bar
    await asyncio.wait_for(pipeline.drain(), 5)
    assert pipeline.stats.duplicates == 1 and len(seen) == 4
    await pipeline.stop()
    await runner


async def test_close_is_published_once_after_the_write_with_the_closed_bar(redis: Any) -> None:
    clock = ExchangeClock(T0)
    pipeline, _ = _pipeline(redis, ListRepairer([]), clock, user_id=7)
    cache = CandleCache(redis, CacheSettings())
    received: list[tuple[str, Candle, bool]] = []
    pubsub = redis.pubsub()
    await pubsub.psubscribe("channel:*candle:close:*")
    await pubsub.get_message(timeout=1)

    async def listen(count: int) -> None:
        while len(received) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            candle = Candle.model_validate_json(message["data"])
            stored = await cache.between(
                1, candle.symbol, candle.timeframe, candle.open_time, candle.open_time
            )
            received.append((message["channel"], candle, bool(stored)))

    runner = asyncio.create_task(pipeline.run())
    listener = asyncio.create_task(listen(4))
    for i in range(2):
        await pipeline.on_candle(_bar(T0 + i * MIN))
        await pipeline.on_candle(_bar(T0 + i * MIN))
    await asyncio.wait_for(listener, 5)
    await asyncio.wait_for(pipeline.drain(), 5)
    await pipeline.stop()
    await runner
    await pubsub.aclose()
    tier1 = [
        r for r in received if r[0] == channels.candle_close_channel(1, "BTC-USD", Timeframe.M1)
    ]
    twin = [
        r
        for r in received
        if r[0] == channels.legacy_candle_close_channel(7, 1, "BTC-USD", Timeframe.M1)
    ]
    assert [r[1].open_time for r in tier1] == [T0, T0 + MIN]
    assert [r[1].open_time for r in twin] == [T0, T0 + MIN]
    assert all(r[1].closed and r[2] for r in received), "published before the write or unfinished"


async def test_tier2_symbols_write_user_keys_and_tickers_are_coalesced(redis: Any) -> None:
    clock = ExchangeClock(T0)
    pipeline, _ = _pipeline(redis, None, clock, tier2_users={"DOGE-USD": 42})
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(_bar(T0, symbol="DOGE-USD"))
    for price in (1.0, 2.0, 3.0):
        pipeline.on_ticker(
            Ticker(exchange_id=1, exchange="coinbase", symbol="BTC-USD", price=price, timestamp=T0)
        )
    await asyncio.wait_for(pipeline.drain(), 5)
    await pipeline.stop()
    await runner
    assert await redis.zcard(keys.user_candles_key(42, 1, "DOGE-USD", Timeframe.M1)) == 1
    assert await redis.zcard(keys.candles_key(1, "DOGE-USD", Timeframe.M1)) == 0
    assert await redis.ttl(keys.user_candles_key(42, 1, "DOGE-USD", Timeframe.M1)) > 0
    ticker = Ticker.model_validate_json(await redis.get(keys.ticker_key(1, "BTC-USD")))
    assert ticker.price == 3.0
    assert pipeline.ticker_coalescer.flushed <= 2


async def test_a_pipeline_stopped_before_its_task_first_runs_returns_and_flushes_its_ticker(
    redis: Any,
) -> None:
    """`stop()` right after `create_task(run())` (nothing awaited between: Python 3.12+'s
    `wait_for` on a finished coroutine does not yield) ends `run()`, coalescers included."""
    pipeline, _ = _pipeline(redis, None, ExchangeClock(T0))
    runner = asyncio.create_task(pipeline.run())
    pipeline.on_ticker(
        Ticker(exchange_id=1, exchange="coinbase", symbol="BTC-USD", price=7.0, timestamp=T0)
    )
    await pipeline.stop()
    assert not runner.done()  # it has not even started

    await asyncio.wait_for(runner, 10)

    ticker = Ticker.model_validate_json(await redis.get(keys.ticker_key(1, "BTC-USD")))
    assert ticker.price == 7.0
