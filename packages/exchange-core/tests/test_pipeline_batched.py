"""The closed-bar stage: one flush carries the bars and their indicators, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import ClosedBarStage
from livermore_schema.enums import IndicatorType
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

from .test_calculator import SYMBOL, TF, make_bars


class Path:
    """Pipeline -> closed-bar stage -> calculator, as the worker wires it."""

    def __init__(self, redis: Any, *, fail_first: bool = False) -> None:
        settings = CacheSettings()
        self.candles = CandleCache(redis, settings)
        self.indicators = IndicatorCache(redis, settings)
        publisher = Publisher(redis, settings)
        self.calculator = IndicatorCalculator(
            self.candles, self.indicators, publisher, exchange_id=1
        )
        self.values: list[int | None] = []
        self._fail_first = fail_first
        self.stage = ClosedBarStage(
            candles=self.candles, publisher=publisher, calculator=self.calculator, followers=[self]
        )
        self.pipeline = CandlePipeline(
            exchange_id=1,
            exchange_name="coinbase",
            candles=self.candles,
            tickers=TickerCache(redis, settings),
            publisher=publisher,
            repairer=None,
            clock=ExchangeClock(),
            stage=self.stage,
        )

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        if self._fail_first:
            self._fail_first = False
            raise RuntimeError("a follower broke")
        state = self.calculator.state(SYMBOL, TF)
        self.values.append(state.last.open_time if state and state.last else None)


async def test_each_message_finds_its_write_already_stored(redis: Any) -> None:
    bars = make_bars(60)
    path = Path(redis)
    await path.candles.write_many(bars[:50])
    await path.calculator.warmup(SYMBOL, TF)
    close = channels.candle_close_channel(1, SYMBOL, TF)
    indicator = channels.indicator_channel(1, SYMBOL, TF, IndicatorType.MACD_V)
    seen: list[tuple[str, int, bool]] = []
    pubsub = redis.pubsub()
    await pubsub.subscribe(close, indicator)

    async def listen(count: int) -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            if message["channel"] == close:
                bar = Candle.model_validate_json(message["data"])
                stored = await path.candles.between(1, SYMBOL, TF, bar.open_time, bar.open_time)
                seen.append(("close", bar.open_time, stored == [bar]))
            else:
                value = IndicatorValue.model_validate_json(message["data"])
                found = await path.indicators.read(1, SYMBOL, TF)  # this value or a newer one
                ok = found is not None and found.open_time >= value.open_time
                seen.append(("indicator", value.open_time, ok))
            if len(seen) == count:
                return

    listener = asyncio.create_task(listen(20))
    runner = asyncio.create_task(path.pipeline.run())
    for bar in bars[50:]:
        await path.pipeline.on_candle(bar)
    await asyncio.wait_for(listener, 10)
    await asyncio.wait_for(path.pipeline.drain(), 5)
    await path.pipeline.stop()
    await runner
    await pubsub.aclose()
    expected = [(kind, b.open_time, True) for b in bars[50:] for kind in ("close", "indicator")]
    assert seen == expected, "a message went out before its write"
    assert path.stage.stats.values == 10
    assert path.values[-1] == bars[-1].open_time
    assert path.pipeline.stats.delivered == 10


async def test_a_cold_series_and_a_failing_follower_still_leave_bars_written_and_announced(
    redis: Any,
) -> None:
    bars = make_bars(3)
    path = Path(redis, fail_first=True)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channels.candle_close_channel(1, SYMBOL, TF))
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "subscribe"
    runner = asyncio.create_task(path.pipeline.run())
    for bar in bars:
        await path.pipeline.on_candle(bar)
    await asyncio.wait_for(path.pipeline.drain(), 5)
    await path.pipeline.stop()
    await runner
    announced: list[int] = []
    while len(announced) < 3:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
        assert message is not None
        announced.append(Candle.model_validate_json(message["data"]).open_time)
    await pubsub.aclose()
    assert announced == [b.open_time for b in bars]
    assert await path.candles.recent(1, SYMBOL, TF, 10) == bars
    # the cold series was seeded from the cache, which already held its bars, then advanced
    assert path.stage.stats.seeded >= 1 and path.stage.stats.values == 3
    state = path.calculator.state(SYMBOL, TF)
    assert state is not None and state.last is not None
    assert state.last.open_time == bars[-1].open_time
