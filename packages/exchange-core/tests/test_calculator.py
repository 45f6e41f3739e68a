from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from livermore_cache.candles import CandleCache
from livermore_cache.channels import indicator_channel
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher, Subscription
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.indicators.macdv import macd_v_series
from livermore_schema.enums import CandleSource, IndicatorType, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

STEP = 300_000
SYMBOL = "SOL-USD"
TF = Timeframe.M5


def make_bars(count: int, *, seed: int = 3, start_slot: int = 1000) -> list[Candle]:
    rng = random.Random(seed)
    price, out = 20.0, []
    for i in range(count):
        price *= 1 + rng.uniform(-0.01, 0.0105)
        out.append(candle_at(start_slot + i, price, rng.uniform(0.001, 0.006)))
    return out


def candle_at(slot: int, price: float, half: float = 0.003, *, closed: bool = True) -> Candle:
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol=SYMBOL,
        timeframe=TF,
        open_time=slot * STEP,
        close_time=slot * STEP + STEP - 1,
        open=price,
        high=price * (1 + half),
        low=price * (1 - half),
        close=price,
        volume=2.0,
        closed=closed,
        source=CandleSource.WS,
    )


def same(value: IndicatorValue, history: list[Candle]) -> bool:
    expected = macd_v_series(history)[-1]
    got = value.value.macd_v
    assert expected.macd_v is not None and got is not None
    return value.open_time == expected.open_time and math.isclose(
        got, expected.macd_v, rel_tol=1e-9
    )


@pytest.fixture
def caches(redis: Any) -> tuple[CandleCache, IndicatorCache, Publisher]:
    settings = CacheSettings()
    return CandleCache(redis, settings), IndicatorCache(redis, settings), Publisher(redis, settings)


@pytest.fixture
def calculator(caches: tuple[CandleCache, IndicatorCache, Publisher]) -> IndicatorCalculator:
    return IndicatorCalculator(*caches, exchange_id=1)


@pytest.fixture
async def published(redis: Any) -> AsyncIterator[asyncio.Queue[IndicatorValue]]:
    queue: asyncio.Queue[IndicatorValue] = asyncio.Queue()
    channel = indicator_channel(1, SYMBOL, TF, IndicatorType.MACD_V)
    async with Subscription(redis, model=IndicatorValue, channels=[channel]) as sub:

        async def pump() -> None:
            async for _, value in sub:
                queue.put_nowait(value)

        task = asyncio.create_task(pump())
        yield queue
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_warmup_seeds_from_closed_cached_bars_and_writes_the_value(
    caches: tuple[CandleCache, IndicatorCache, Publisher], calculator: IndicatorCalculator
) -> None:
    candle_cache, indicator_cache, _ = caches
    bars = make_bars(80)
    await candle_cache.write_many(bars)
    await candle_cache.write(candle_at(1080, 25.0, closed=False))  # the bar still forming
    value = await calculator.warmup(SYMBOL, TF)
    assert value is not None and same(value, bars)
    assert value.seeded and value.n_eff == 80
    assert await indicator_cache.read(1, SYMBOL, TF) == value
    assert calculator.state(SYMBOL, TF) is not None


async def test_warmup_behind_stops_at_the_last_judged_bar_and_returns_the_bars_after_it(
    caches: tuple[CandleCache, IndicatorCache, Publisher], calculator: IndicatorCalculator
) -> None:
    bars = make_bars(80)
    await caches[0].write_many(bars)
    late = await calculator.warmup_behind(SYMBOL, TF, bars[59].open_time)
    assert late == bars[60:]
    state = calculator.state(SYMBOL, TF)
    assert state is not None and state.last is not None
    assert state.last.open_time == bars[59].open_time
    for judged in (None, bars[-1].open_time, bars[0].open_time - 300_000):  # nothing to catch up
        assert await calculator.warmup_behind(SYMBOL, TF, judged) == []
        state = calculator.state(SYMBOL, TF)
        assert state is not None and state.last is not None
        assert state.last.open_time == bars[-1].open_time


async def test_warmup_of_an_empty_series_returns_none(calculator: IndicatorCalculator) -> None:
    assert await calculator.warmup(SYMBOL, TF) is None


async def test_each_closed_bar_is_written_and_published_once(
    caches: tuple[CandleCache, IndicatorCache, Publisher],
    calculator: IndicatorCalculator,
    published: asyncio.Queue[IndicatorValue],
) -> None:
    candle_cache, indicator_cache, _ = caches
    bars = make_bars(60)
    await candle_cache.write_many(bars[:40])
    await calculator.warmup(SYMBOL, TF)
    for index in range(40, 60):
        await candle_cache.write(bars[index])
        value = await calculator.on_closed_candle(bars[index])
        assert value is not None and same(value, bars[: index + 1])
        got = await asyncio.wait_for(published.get(), 5)
        assert got == value
        assert await indicator_cache.read(1, SYMBOL, TF) == value
    assert published.empty()


async def test_first_close_without_state_warms_up_and_publishes(
    caches: tuple[CandleCache, IndicatorCache, Publisher],
    calculator: IndicatorCalculator,
    published: asyncio.Queue[IndicatorValue],
) -> None:
    bars = make_bars(50)
    await caches[0].write_many(bars[:49])  # the newest close arrives before its cache write
    value = await calculator.on_closed_candle(bars[49])
    assert value is not None and same(value, bars)
    assert await asyncio.wait_for(published.get(), 5) == value


async def test_a_skipped_interval_is_filled_with_synthetic_bars(
    caches: tuple[CandleCache, IndicatorCache, Publisher], calculator: IndicatorCalculator
) -> None:
    bars = make_bars(45)
    await caches[0].write_many(bars)
    await calculator.warmup(SYMBOL, TF)
    late = candle_at(1045 + 3, 21.0)
    value = await calculator.on_closed_candle(late)
    assert value is not None and same(value, [*bars, late])
    assert value.gap_ratio == pytest.approx(3 / 49)


async def test_a_revised_past_bar_rebuilds_the_series_and_republishes_its_latest_value(
    caches: tuple[CandleCache, IndicatorCache, Publisher],
    calculator: IndicatorCalculator,
    published: asyncio.Queue[IndicatorValue],
) -> None:
    candle_cache, indicator_cache, _ = caches
    bars = make_bars(50)
    await candle_cache.write_many(bars)
    await calculator.warmup(SYMBOL, TF)
    revised = bars[30].model_copy(update={"close": bars[30].close * 1.05, "high": 1e6})
    await candle_cache.write(revised)
    history = [*bars[:30], revised, *bars[31:]]
    rebuilt = await calculator.on_closed_candle(revised)
    assert rebuilt is not None and same(rebuilt, history)  # the latest bar, corrected history
    assert rebuilt.open_time == bars[-1].open_time
    assert await asyncio.wait_for(published.get(), 5) == rebuilt
    stored = await indicator_cache.read(1, SYMBOL, TF)
    assert stored == rebuilt
    nxt = candle_at(1050, 22.0)
    await candle_cache.write(nxt)
    value = await calculator.on_closed_candle(nxt)
    assert value is not None and same(value, [*history, nxt])
    assert await asyncio.wait_for(published.get(), 5) == value


async def test_unfinished_and_foreign_bars_are_ignored(calculator: IndicatorCalculator) -> None:
    assert await calculator.on_closed_candle(candle_at(5, 10.0, closed=False)) is None
    foreign = candle_at(5, 10.0).model_copy(update={"exchange_id": 2})
    assert await calculator.on_closed_candle(foreign) is None
    assert calculator.state(SYMBOL, TF) is None


async def test_reset_forgets_the_series(
    caches: tuple[CandleCache, IndicatorCache, Publisher], calculator: IndicatorCalculator
) -> None:
    bars = make_bars(40)
    await caches[0].write_many(bars)
    await calculator.warmup(SYMBOL, TF)
    calculator.reset(SYMBOL, TF)
    assert calculator.state(SYMBOL, TF) is None
    calculator.reset(SYMBOL, TF)  # idempotent
    value = await calculator.on_closed_candle(bars[-1])
    assert value is not None and same(value, bars)
