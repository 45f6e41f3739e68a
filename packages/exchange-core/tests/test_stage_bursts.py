"""The closed-bar stage a burst at a time: mixed sources keep per-series order, claims stay once."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.events import GapNotice
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.stage import BurstFailed, ClosedBarStage
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from .test_alert_evaluator import make_evaluator, reading
from .test_alert_pipeline import FEED_FROM, FEED_TO, M5, NOW, expected_labels, sim_candles
from .test_pipeline import MIN, T0, ListRepairer

HOUR = 60 * MIN


def _bar(symbol: str, tf: Timeframe, slot: int, source: CandleSource, close: float = 0.0) -> Candle:
    step = duration_ms(tf)
    price = close or 100.0 + slot + (7.0 if symbol == "ETH-USD" else 0.0)
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol=symbol,
        timeframe=tf,
        open_time=T0 + slot * step,
        close_time=T0 + (slot + 1) * step - 1,
        open=price,
        high=price + 1,
        low=price - 1,
        close=price,
        volume=1.0,
        closed=True,
        source=source,
    )


class Bursts:
    """Follows the stage: the bars of each flush."""

    def __init__(self) -> None:
        self.flushed: list[list[Candle]] = []

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        self.flushed.append(list(bars))


Path = tuple[CandlePipeline, ClosedBarStage, CandleCache, Bursts, IndicatorCalculator]


async def _warm_path(redis: Any) -> Path:
    settings = CacheSettings()
    candles = CandleCache(redis, settings)
    publisher = Publisher(redis, settings)
    calculator = IndicatorCalculator(
        candles, IndicatorCache(redis, settings), publisher, exchange_id=1
    )
    for symbol, tf in (("BTC-USD", Timeframe.M1), ("ETH-USD", Timeframe.M1)):
        await candles.write_many([_bar(symbol, tf, s, CandleSource.REST) for s in range(-60, 0)])
        await calculator.warmup(symbol, tf)
    followed = Bursts()
    stage = ClosedBarStage(
        candles=candles, publisher=publisher, calculator=calculator, followers=[followed]
    )
    repairer = ListRepairer([_bar("BTC-USD", Timeframe.M1, s, CandleSource.REST) for s in (1, 2)])
    pipeline = CandlePipeline(
        exchange_id=1,
        exchange_name="coinbase",
        candles=candles,
        tickers=TickerCache(redis, settings),
        publisher=publisher,
        repairer=repairer,
        clock=ExchangeClock(T0 + 10 * HOUR),
        stage=stage,
        rest_lag_ms=0,
    )
    return pipeline, stage, candles, followed, calculator


async def test_a_mixed_burst_keeps_each_series_in_order_and_publishes_after_writing(
    redis: Any,
) -> None:
    pipeline, stage, candles, followed, _ = await _warm_path(redis)
    received: list[tuple[str, str, int, bool]] = []  # kind, series, open time, stored by then
    pubsub = redis.pubsub()
    await pubsub.psubscribe("channel:*candle:close:*", "channel:indicator:*")
    for _ in range(2):
        assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    # Everything is queued before the pipeline runs, so it arrives as one burst: live bars of
    # two series, a gap repaired over REST in between, and boundary REST bars (catch-up first).
    live = ("BTC-USD", Timeframe.M1)
    await pipeline.on_candle(_bar(*live, 0, CandleSource.WS))
    await pipeline.on_gap(GapNotice(*live, None, T0 + 3 * MIN, T0 + 3 * MIN, "test"))
    await pipeline.on_candle(_bar(*live, 3, CandleSource.WS))  # waits for the repair
    for slot in range(5):
        await pipeline.on_candle(_bar("ETH-USD", Timeframe.M1, slot, CandleSource.WS))
    for slot in (8, 9):  # what the boundary service hands on after a missed boundary
        await pipeline.on_candle(_bar("BTC-USD", Timeframe.H1, slot, CandleSource.REST))
    await pipeline.on_candle(_bar("ETH-USD", Timeframe.M1, 3, CandleSource.WS))  # duplicate

    marker = channels.candle_close_channel(1, "END-USD", Timeframe.M1)

    async def listen() -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            if message["channel"] == marker:
                return
            kind = "close" if ":candle:close:" in message["channel"] else "indicator"
            model = Candle if kind == "close" else IndicatorValue
            item: Any = model.model_validate_json(message["data"])
            stored = await candles.between(
                1, item.symbol, item.timeframe, item.open_time, item.open_time
            )
            series = f"{item.symbol} {item.timeframe.value}"
            received.append((kind, series, item.open_time, bool(stored)))

    listener = asyncio.create_task(listen())
    runner = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(pipeline.drain(), 5)
    await redis.publish(marker, "end")  # arrives after everything published before it
    await asyncio.wait_for(listener, 10)
    await pipeline.stop()
    await runner
    await pubsub.aclose()
    assert all(stored for *_, stored in received), "published before its bar was written"
    for series, slots in {
        "BTC-USD 1m": [0, 1, 2, 3],
        "ETH-USD 1m": [0, 1, 2, 3, 4],
        "BTC-USD 1h": [8, 9],
    }.items():
        _assert_in_order(received, series, slots)
    # live and boundary REST bars went out in one flush; the repaired bars in the next, with
    # the live bar that waited for them
    first, second = followed.flushed
    assert [(c.symbol, c.timeframe, c.source) for c in first] == [
        ("BTC-USD", Timeframe.M1, CandleSource.WS),
        *[("ETH-USD", Timeframe.M1, CandleSource.WS)] * 5,
        *[("BTC-USD", Timeframe.H1, CandleSource.REST)] * 2,
    ]
    assert [(c.open_time, c.source) for c in second] == [
        (T0 + MIN, CandleSource.REST),
        (T0 + 2 * MIN, CandleSource.REST),
        (T0 + 3 * MIN, CandleSource.WS),
    ]
    assert pipeline.stats.duplicates == 1 and stage.stats.bars == 11


def _assert_in_order(
    received: list[tuple[str, str, int, bool]], series: str, slots: list[int]
) -> None:
    """Closes of `series` in slot order; on a rated (1m) series each close then its value."""
    step = HOUR if series.endswith("1h") else MIN
    closes = [t for k, s, t, _ in received if k == "close" and s == series]
    assert closes == [T0 + slot * step for slot in slots], series
    if series.endswith("1m"):
        mine = [(k, t) for k, s, t, _ in received if s == series]
        assert mine == [(k, t) for t in closes for k in ("close", "indicator")], series


async def test_a_revision_in_a_burst_ends_it_and_keeps_the_series_order(redis: Any) -> None:
    pipeline, stage, candles, followed, calculator = await _warm_path(redis)
    eth = ("ETH-USD", Timeframe.M1)
    await pipeline.on_candle(_bar(*eth, 0, CandleSource.WS))
    await pipeline.on_candle(_bar(*eth, 1, CandleSource.WS))
    await pipeline.on_candle_revised(_bar(*eth, 0, CandleSource.WS, close=150.0))
    await pipeline.on_candle(_bar(*eth, 2, CandleSource.WS))
    runner = asyncio.create_task(pipeline.run())
    await asyncio.wait_for(pipeline.drain(), 5)
    await pipeline.stop()
    await runner
    assert [[(c.open_time - T0) // MIN for c in bars] for bars in followed.flushed] == [
        [0, 1],
        [0],  # the revision, after the bars before it and before the ones after it
        [2],
    ]
    [stored] = await candles.between(1, *eth, T0, T0)
    assert stored.close == 150.0
    assert pipeline.stats.revised == 1 and stage.stats.revisions == 1
    state = calculator.state(*eth)
    assert state is not None and state.last is not None and state.last.open_time == T0 + 2 * MIN


@pytest.fixture
async def ticker(redis: Any) -> None:
    await TickerCache(redis, CacheSettings()).write(
        Ticker(exchange_id=1, exchange="coinbase", symbol="BTC-USD", price=43210.5, timestamp=T0)
    )


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


@pytest.mark.usefixtures("ticker")
async def test_batched_claims_racing_a_single_evaluator_fire_each_crossing_once(
    redis: Any,
) -> None:
    settings = CacheSettings()
    a = make_evaluator(redis, settings, cooldown_s=0)
    b = make_evaluator(redis, settings, cooldown_s=0)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN)
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    values = [reading(-160.0 if slot % 2 else -140.0, slot) for slot in range(21)]
    other = [reading(v.value.macd_v, i, tf=Timeframe.M5) for i, v in enumerate(values)]
    first = await a.evaluate_many([(values[0], None), (other[0], None)])
    assert first == 0  # the first value of a series only initialises it
    for slot in range(1, 21, 4):  # bursts of 4 bars of two series, b racing on one series
        burst = [(v, None) for pair in zip(values[slot : slot + 4], other[slot : slot + 4],
                                             strict=True) for v in pair]  # fmt: skip
        fired, raced = await asyncio.gather(
            a.evaluate_many(burst), _evaluate_each(b, values[slot : slot + 4])
        )
        assert fired + raced == 4  # each fall through -150 fires once, by one evaluator
    published = await _alerts_until_marker(redis, pubsub)
    await pubsub.aclose()
    keys_seen = [(e.timeframe, e.triggered_at) for e in published]
    assert len(keys_seen) == len(set(keys_seen)) == 20
    m5 = [e.triggered_at for e in published if e.timeframe is Timeframe.M5]
    assert m5 == sorted(m5)  # per series in bar order


async def _evaluate_each(evaluator: AlertEvaluator, values: Sequence[IndicatorValue]) -> int:
    fired = 0
    for value in values:
        fired += len(await evaluator.evaluate(value))
    return fired


async def test_a_burst_through_the_stage_alerts_each_crossing_once(redis: Any) -> None:
    """A scripted fall fed as one burst: claims ride the write flush, each label fires once."""
    scenario = macdv_excursion("ETH", NOW - 60 * M5, direction=-1)
    settings = CacheSettings()
    candles, indicators = CandleCache(redis, settings), IndicatorCache(redis, settings)
    publisher = Publisher(redis, settings)
    async with running_sim(seed=11, speed=1.0, start_ms=NOW, scenarios=[scenario]) as sim:
        history = sim_candles(sim.truth(Venue.COINBASE, "ETH-USD", M5, NOW - 200 * M5, FEED_TO))
    warm = [c for c in history if c.open_time < FEED_FROM]
    fed = [c for c in history if c.open_time >= FEED_FROM]
    expected = expected_labels(history, fed)
    assert expected == ["level_-150", "level_-200", "level_-250"]
    calculator = IndicatorCalculator(candles, indicators, publisher, exchange_id=1)
    evaluator = AlertEvaluator(
        redis, indicators, TickerCache(redis, settings), candles, publisher,
        exchange_id=1, exchange_name="coinbase",
    )  # fmt: skip
    await candles.write_many(warm)
    await calculator.warmup("ETH-USD", Timeframe.M5)
    stage = ClosedBarStage(
        candles=candles, publisher=publisher, calculator=calculator, evaluator=evaluator
    )
    pubsub = redis.pubsub()
    await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN)
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    await stage.process(fed)  # the whole fall at once, as a reconnect's repair delivers it
    await stage.process(fed)  # the same bars again: every claim is already taken
    published = await _alerts_until_marker(redis, pubsub)
    await pubsub.aclose()
    assert [e.trigger_label for e in published] == expected
    assert [e.triggered_at for e in published] == sorted(e.triggered_at for e in published)
    assert stage.stats.bursts == 2 and stage.stats.alerts == len(expected)
    # each replayed (past) bar rebuilt the series and re-published its unchanged latest value,
    # which the evaluator judges no more
    assert stage.stats.values == 2 * len(fed) and stage.stats.seeded == len(fed)


async def test_a_burst_in_parts_keeps_every_series_in_one_part_and_in_order(redis: Any) -> None:
    settings = CacheSettings()
    candles, publisher = CandleCache(redis, settings), Publisher(redis, settings)
    followed = Bursts()
    stage = ClosedBarStage(candles=candles, publisher=publisher, followers=[followed], part_size=4)
    symbols = [f"S{n}-USD" for n in range(6)]
    bars = [_bar(s, Timeframe.M1, slot, CandleSource.WS) for slot in range(3) for s in symbols]
    pubsub = redis.pubsub()
    await pubsub.psubscribe("channel:*candle:close:*")
    assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    await stage.process(bars)  # 18 bars: 5 parts of about 4, sent while the next is prepared
    marker = channels.candle_close_channel(1, "END-USD", Timeframe.M1)
    await redis.publish(marker, "end")
    closes: list[Candle] = []
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        if message is None:
            continue
        if message["channel"] == marker:
            break
        closes.append(Candle.model_validate_json(message["data"]))
    await pubsub.aclose()
    assert len(followed.flushed) > 1 and sum(len(p) for p in followed.flushed) == len(bars)
    for symbol in symbols:
        assert [c.open_time for c in closes if c.symbol == symbol] == [
            T0 + s * MIN for s in (0, 1, 2)
        ]
        holding = [p for p in followed.flushed if any(c.symbol == symbol for c in p)]
        assert len(holding) == 1, symbol  # a series never spans two parts
        stored = await candles.between(1, symbol, Timeframe.M1, T0, T0 + 2 * MIN)
        assert [c.open_time for c in stored] == [T0, T0 + MIN, T0 + 2 * MIN]


class GcSeen(Bursts):
    """Notes whether the cyclic collector was on while each flush was told."""

    def __init__(self) -> None:
        super().__init__()
        self.collecting: list[bool] = []

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        super().on_closed_bars(bars)
        self.collecting.append(gc.isenabled())


async def test_the_collector_pauses_for_a_burst_in_parts_only(redis: Any) -> None:
    settings = CacheSettings()
    candles, publisher = CandleCache(redis, settings), Publisher(redis, settings)
    seen = GcSeen()
    stage = ClosedBarStage(candles=candles, publisher=publisher, followers=[seen], part_size=4)
    assert gc.isenabled()
    await stage.process([_bar("ONE-USD", Timeframe.M1, 0, CandleSource.WS)])  # a steady bar
    bars = [_bar(f"S{n}-USD", Timeframe.M1, 0, CandleSource.WS) for n in range(12)]
    await stage.process(bars)  # three parts
    assert seen.collecting == [True, False, False, False] and gc.isenabled()
    with socket.socket() as probe:  # a port nothing listens on: every part's flush fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = Redis(host="127.0.0.1", port=port)
    failing = ClosedBarStage(
        candles=CandleCache(dead, settings), publisher=Publisher(dead, settings), part_size=4
    )
    try:
        with pytest.raises(BurstFailed) as failed:
            await failing.process(bars)
    finally:
        await dead.aclose()
    assert len(failed.value.bars) == len(bars) and gc.isenabled()  # on again all the same
