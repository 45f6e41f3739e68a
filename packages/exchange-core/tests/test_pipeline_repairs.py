"""Repairs never give up, are durable (a restart inherits them) and alert repaired bars delayed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livermore_cache import channels, keys
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.repairs import RepairStore
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.errors import ExchangeUnavailableError
from livermore_exchange_core.events import GapNotice
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import ClosedBarStage
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

from .test_alert_pipeline import FEED_FROM, FEED_TO, M5, NOW, expected_labels, sim_candles
from .test_pipeline import MIN, T0, _bar

FAST = BackoffPolicy(base_s=0.01, cap_s=0.05, jitter=0.0)
M1 = Timeframe.M1


@dataclass(frozen=True)
class Profile:
    """The timeframes a worker mode streams."""

    timeframes: tuple[Timeframe, ...]


class FlakyRepairer:
    """REST that fails until `restore()`; `down` is set once it has failed `fail_at_least` times."""

    def __init__(self, bars: Sequence[Candle], fail_at_least: int) -> None:
        self.bars = list(bars)
        self.up = False
        self.failures = 0
        self.down = asyncio.Event()
        self._needed = fail_at_least

    def restore(self) -> None:
        self.up = True

    async def repair(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> Sequence[Candle]:
        if not self.up:
            self.failures += 1
            if self.failures >= self._needed:
                self.down.set()
            raise ExchangeUnavailableError("REST is down", exchange="coinbase")
        return [
            b
            for b in self.bars
            if b.symbol == symbol
            and b.timeframe == timeframe
            and since_ms <= b.open_time < until_ms
        ]


def _pipeline(redis: Any, repairer: Any, stage: ClosedBarStage | None = None) -> CandlePipeline:
    settings = CacheSettings()
    return CandlePipeline(
        exchange_id=1,
        exchange_name="coinbase",
        candles=CandleCache(redis, settings),
        tickers=TickerCache(redis, settings),
        publisher=Publisher(redis, settings),
        repairer=repairer,
        clock=ExchangeClock(NOW),
        stage=stage,
        repair_backoff=FAST,
        repair_store=RepairStore(redis, 1),
        rest_lag_ms=0,
    )


async def _open_times(redis: Any, symbol: str = "BTC-USD") -> list[int]:
    bars = await CandleCache(redis, CacheSettings()).recent(1, symbol, M1, 100)
    return [b.open_time for b in bars]


async def test_a_repair_outlasting_its_retries_stays_pending_and_durable_until_rest_returns(
    redis: Any,
) -> None:
    rest = [_bar(T0 + i * MIN, source=CandleSource.REST) for i in range(1, 4)]
    repairer = FlakyRepairer(rest, fail_at_least=12)  # well past the first warning (6)
    pipeline = _pipeline(redis, repairer)
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(_bar(T0))
    await pipeline.on_gap(GapNotice("BTC-USD", M1, None, T0 + 4 * MIN, T0, "reconnect"))
    await pipeline.on_candle(_bar(T0 + 4 * MIN))  # live: waits behind the gate
    await asyncio.wait_for(repairer.down.wait(), 10)
    await asyncio.wait_for(pipeline._queue.join(), 5)
    assert pipeline.pending_repairs == 1 and pipeline.oldest_repair_age_s() is not None
    assert await _open_times(redis) == [T0], "the gate opened with a hole"
    [stored] = await RepairStore(redis, 1).load()
    assert (stored.symbol, stored.timeframe, stored.since_ms, stored.until_ms) == (
        "BTC-USD",
        M1,
        T0 + MIN,
        T0 + 4 * MIN,
    )
    assert await redis.hlen(keys.repairs_key(1)) == 1
    repairer.restore()
    await asyncio.wait_for(pipeline.drain(), 10)
    assert await _open_times(redis) == [T0 + i * MIN for i in range(5)]
    assert pipeline.pending_repairs == 0 and pipeline.oldest_repair_age_s() is None
    assert await redis.exists(keys.repairs_key(1)) == 0, "a finished repair stayed recorded"
    assert pipeline.stats.delivered == 5 and pipeline.stats.repair_failures >= 12
    await pipeline.stop()
    await runner


async def test_a_restarted_pipeline_inherits_a_pending_repair_and_completes_it(
    redis: Any,
) -> None:
    rest = [_bar(T0 + i * MIN, source=CandleSource.REST) for i in range(1, 4)]
    first = FlakyRepairer(rest, fail_at_least=2)
    old = _pipeline(redis, first)
    runner = asyncio.create_task(old.run())
    await old.on_candle(_bar(T0))
    await old.on_gap(GapNotice("BTC-USD", M1, None, T0 + 4 * MIN, T0, "reconnect"))
    await asyncio.wait_for(first.down.wait(), 10)
    await old.stop()  # a clean stop (or a crash) with the repair still pending
    await runner
    assert await _open_times(redis) == [T0]
    second = FlakyRepairer(rest, fail_at_least=1)
    second.restore()
    new = _pipeline(redis, second)
    runner = asyncio.create_task(new.run())
    judged = await new.repairs.adopt(["BTC-USD"], Profile((M1,)), {("BTC-USD", M1): None})
    assert judged == {("BTC-USD", M1): T0}  # its bars are judged from the repair's start on
    await new.resume()
    await new.on_candle(_bar(T0 + 4 * MIN))  # its first live bar waits for the inherited gap
    await asyncio.wait_for(new.drain(), 10)
    await new.stop()
    await runner
    assert await _open_times(redis) == [T0 + i * MIN for i in range(5)]
    assert await redis.exists(keys.repairs_key(1)) == 0


async def _alerts_until_marker(redis: Any, pubsub: Any) -> list[AlertEvent]:
    marker = channels.alerts_channel(999)
    await redis.publish(marker, "end")
    got: list[AlertEvent] = []
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is None:
            continue
        if message["channel"] == marker:
            return got
        got.append(AlertEvent.model_validate_json(message["data"]))


def _alerting_stage(redis: Any) -> ClosedBarStage:
    settings = CacheSettings()
    candles, indicators = CandleCache(redis, settings), IndicatorCache(redis, settings)
    publisher = Publisher(redis, settings)
    calculator = IndicatorCalculator(candles, indicators, publisher, exchange_id=1)
    evaluator = AlertEvaluator(
        redis, indicators, TickerCache(redis, settings), candles, publisher,
        exchange_id=1, exchange_name="coinbase",
    )  # fmt: skip
    return ClosedBarStage(
        candles=candles, publisher=publisher, calculator=calculator, evaluator=evaluator
    )


async def test_bars_repaired_after_a_rest_outage_alert_once_flagged_delayed(redis: Any) -> None:
    scenario = macdv_excursion("ETH", NOW - 60 * M5, direction=-1)
    async with running_sim(seed=11, speed=1.0, start_ms=NOW, scenarios=[scenario]) as sim:
        history = sim_candles(sim.truth(Venue.COINBASE, "ETH-USD", M5, NOW - 200 * M5, FEED_TO))
    warm = [c for c in history if c.open_time < FEED_FROM]
    gap = [c for c in history if c.open_time >= FEED_FROM]
    expected = expected_labels(history, gap)
    assert expected == ["level_-150", "level_-200", "level_-250"]
    stage = _alerting_stage(redis)
    await CandleCache(redis, CacheSettings()).write_many(warm[:-1])
    assert stage._calculator is not None
    await stage._calculator.warmup("ETH-USD", Timeframe.M5)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN)
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    repairer = FlakyRepairer(gap, fail_at_least=3)
    pipeline = _pipeline(redis, repairer, stage)
    pipeline.stage.evaluator = stage.evaluator
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(warm[-1])  # live: judged, initialises the alert state
    await pipeline.on_gap(
        GapNotice("ETH-USD", Timeframe.M5, None, FEED_TO, FEED_TO, "reconnect", contiguous=True)
    )
    await asyncio.wait_for(repairer.down.wait(), 10)
    await asyncio.wait_for(pipeline._queue.join(), 5)
    assert await _alerts_until_marker(redis, pubsub) == [], "alerts resumed on a hole"
    repairer.restore()
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    await runner
    # a second worker over the same bars (a takeover re-delivering them) publishes nothing again
    again = _alerting_stage(redis)
    await again.process(gap)
    published = await _alerts_until_marker(redis, pubsub)
    await pubsub.aclose()
    assert [e.trigger_label for e in published] == expected
    assert all(e.delayed for e in published)
    closes = {c.open_time + 5 * MIN: c for c in gap}
    assert all(int(e.triggered_at.timestamp() * 1000) in closes for e in published)


async def test_a_bar_the_venue_never_had_between_bars_it_has_does_not_freeze_the_series(
    redis: Any,
) -> None:
    rest = [_bar(T0 + i * MIN, source=CandleSource.REST) for i in (1, 3)]  # 2 never exists
    repairer = FlakyRepairer(rest, fail_at_least=1)
    repairer.restore()
    pipeline = _pipeline(redis, repairer)
    runner = asyncio.create_task(pipeline.run())
    await pipeline.on_candle(_bar(T0))
    await pipeline.on_gap(
        GapNotice("BTC-USD", M1, None, T0 + 4 * MIN, T0, "reconnect", contiguous=True)
    )
    await pipeline.on_candle(_bar(T0 + 4 * MIN))
    await asyncio.wait_for(pipeline.drain(), 10)
    await pipeline.stop()
    await runner
    assert await _open_times(redis) == [T0, T0 + MIN, T0 + 3 * MIN, T0 + 4 * MIN]
    assert pipeline.stats.repair_failures == 6  # asked that often before accepting the hole


async def test_a_restart_judges_the_bars_stored_after_the_last_judged_one_once_delayed(
    redis: Any,
) -> None:
    """The predecessor judged part of a fall live, then died; the backfill stored the rest."""
    scenario = macdv_excursion("ETH", NOW - 60 * M5, direction=-1)
    async with running_sim(seed=11, speed=1.0, start_ms=NOW, scenarios=[scenario]) as sim:
        history = sim_candles(sim.truth(Venue.COINBASE, "ETH-USD", M5, NOW - 200 * M5, FEED_TO))
    warm = [c for c in history if c.open_time < FEED_FROM]
    fed = [c for c in history if c.open_time >= FEED_FROM]
    expected = expected_labels(history, fed)
    assert expected == ["level_-150", "level_-200", "level_-250"]
    cache = CandleCache(redis, CacheSettings())
    await cache.write_many(warm)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN)
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    old = _alerting_stage(redis)
    assert old._calculator is not None
    await old._calculator.warmup("ETH-USD", Timeframe.M5)
    live, missed = fed[: len(fed) // 3], fed[len(fed) // 3 :]
    await old.process(live)  # judged live; then the worker dies
    await cache.write_many(missed)  # the successor's startup backfill
    for _ in range(2):  # a restart, then another one over the same bars (a takeover)
        new = _alerting_stage(redis)
        assert new._calculator is not None and new.evaluator is not None
        judged = await new.evaluator.judged([("ETH-USD", Timeframe.M5)])
        late = await new._calculator.warmup_behind("ETH-USD", Timeframe.M5, *judged.values())
        pipeline = _pipeline(redis, None, new)
        runner = asyncio.create_task(pipeline.run())
        await pipeline.catch_up(late)
        await asyncio.wait_for(pipeline.drain(), 10)
        await pipeline.stop()
        await runner
    published = await _alerts_until_marker(redis, pubsub)
    await pubsub.aclose()
    assert [e.trigger_label for e in published] == expected, "missed, or published twice"
    missed_closes = {c.open_time + 5 * MIN for c in missed}
    for event in published:
        assert event.delayed == (int(event.triggered_at.timestamp() * 1000) in missed_closes)
    assert any(e.delayed for e in published)
