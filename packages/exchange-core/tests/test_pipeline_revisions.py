"""Revisions: a closed bar corrected by late data replaces the stored bar and is re-published."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.events import GapNotice
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.indicators.macdv import latest_macd_v
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import ClosedBarStage
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

from .test_pipeline import MIN, T0, ListRepairer, Seen, _bar, _pipeline


def _revised(bar: Candle, close: float) -> Candle:
    return bar.model_copy(update={"close": close, "high": max(bar.high, close), "volume": 9.0})


async def _published(pubsub: Any, count: int) -> list[Candle]:
    got: list[Candle] = []
    while len(got) < count:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is not None:
            got.append(Candle.model_validate_json(message["data"]))
    return got


async def test_revision_goes_through_the_stage_and_republishes_the_corrected_indicator(
    redis: Any,
) -> None:
    settings = CacheSettings()
    cache = CandleCache(redis, settings)
    indicators = IndicatorCache(redis, settings)
    publisher = Publisher(redis, settings)
    calculator = IndicatorCalculator(cache, indicators, publisher, exchange_id=1)
    history = [_bar(T0 - i * MIN) for i in range(60, 0, -1)]
    await cache.write_many(history)
    await calculator.warmup("BTC-USD", Timeframe.M1)
    seen = Seen()
    stage = ClosedBarStage(  # as a worker wires it
        candles=cache, publisher=publisher, calculator=calculator, followers=[seen]
    )
    pipeline = CandlePipeline(
        exchange_id=1,
        exchange_name="coinbase",
        candles=cache,
        tickers=TickerCache(redis, settings),
        publisher=publisher,
        repairer=None,
        clock=ExchangeClock(T0),
        stage=stage,
    )
    candle_sub, indicator_sub = redis.pubsub(), redis.pubsub()
    await candle_sub.subscribe(channels.candle_close_channel(1, "BTC-USD", Timeframe.M1))
    await indicator_sub.psubscribe("channel:indicator:*")
    runner = asyncio.create_task(pipeline.run())
    first = _bar(T0)
    await pipeline.on_candle(first)
    await pipeline.on_candle_revised(_revised(first, 150.0))
    await asyncio.wait_for(pipeline.drain(), 5)
    published = await asyncio.wait_for(_published(candle_sub, 2), 5)
    announced = await asyncio.wait_for(
        _published_until_marker(redis, indicator_sub, "channel:indicator:end"), 5
    )
    await pipeline.stop()
    await runner
    await candle_sub.aclose()
    await indicator_sub.aclose()
    assert [(c.open_time, c.close) for c in published] == [(T0, first.close), (T0, 150.0)]
    [stored] = await cache.between(1, "BTC-USD", Timeframe.M1, T0, T0)
    assert (stored.close, stored.volume, stored.closed) == (150.0, 9.0, True)
    assert [c.close for c in seen] == [first.close, 150.0]
    corrected = latest_macd_v([*history, stored])
    assert corrected is not None and corrected.macd_v is not None
    on_air = [IndicatorValue.model_validate_json(raw) for raw in announced]
    assert [v.open_time for v in on_air] == [T0, T0]  # the close, then its correction
    assert stage.stats.values == 2 and stage.stats.revisions == 1
    for value in (on_air[1], await indicators.read(1, "BTC-USD", Timeframe.M1)):
        assert value is not None and value.value.macd_v is not None
        assert math.isclose(value.value.macd_v, corrected.macd_v, rel_tol=1e-9)
    assert on_air[0].value.macd_v != on_air[1].value.macd_v
    assert pipeline.stats.revised == 1 and pipeline.stats.delivered == 1


async def _published_until_marker(redis: Any, pubsub: Any, marker: str) -> list[Any]:
    """Publish `marker` (it arrives after every earlier publish) and collect what came before."""
    await redis.publish(marker, "end")
    got: list[Any] = []
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is None:
            continue
        if message["channel"] == marker:
            return got
        got.append(message["data"])


async def test_revisions_behind_a_gate_replace_waiting_bars_and_follow_delivered_ones(
    redis: Any,
) -> None:
    clock = ExchangeClock(T0)
    repairer = ListRepairer([_bar(T0 + MIN, source=CandleSource.REST)])
    pipeline, seen = _pipeline(redis, repairer, clock)
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(_bar(T0))
    await pipeline.on_gap(
        GapNotice("BTC-USD", Timeframe.M1, None, T0 + 2 * MIN, T0 + 10 * MIN, "test")
    )
    waiting = _bar(T0 + 2 * MIN)
    await pipeline.on_candle(waiting)
    await pipeline.on_candle_revised(_revised(waiting, 222.0))  # its first copy is still waiting
    await pipeline.on_candle_revised(_revised(_bar(T0), 111.0))  # delivered before the gate
    await asyncio.wait_for(pipeline._queue.join(), 5)
    assert [c.open_time for c in seen] == [T0]
    clock.advance(T0 + 10 * MIN)
    await asyncio.wait_for(pipeline.drain(), 5)
    await pipeline.stop()
    await runner
    assert [(c.open_time, c.close) for c in seen] == [
        (T0, _bar(T0).close),
        (T0 + MIN, _bar(T0 + MIN).close),
        (T0 + 2 * MIN, 222.0),  # delivered once, corrected
        (T0 + 0, 111.0),  # the revision of the delivered bar, after the gate's bars
    ]
    cache = CandleCache(redis, CacheSettings())
    stored = await cache.between(1, "BTC-USD", Timeframe.M1, T0, T0 + 10 * MIN)
    assert [(c.open_time, c.close) for c in stored] == [
        (T0, 111.0),
        (T0 + MIN, _bar(T0 + MIN).close),
        (T0 + 2 * MIN, 222.0),
    ]
    assert pipeline.stats.delivered == 3 and pipeline.stats.revised == 1
