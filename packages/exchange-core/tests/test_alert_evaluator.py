from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher, alert_stream
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator, FanOutSink
from livermore_exchange_core.symbols import AssetMap, ListedSymbol
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import (
    AlertDirection,
    AlertType,
    Bias,
    CandleSource,
    Liquidity,
    Stage,
    Timeframe,
)
from livermore_schema.indicators import IndicatorValue, MacdVValues
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings

MIN = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * MIN)  # an hour boundary
SYMBOL = "BTC-USD"


def reading(
    macd_v: float | None,
    slot: int,
    *,
    histogram: float | None = 0.0,
    tf: Timeframe = Timeframe.M1,
    stage: Stage = Stage.RANGING,
    exchange_id: int = 1,
) -> IndicatorValue:
    return IndicatorValue(
        exchange_id=exchange_id,
        symbol=SYMBOL,
        timeframe=tf,
        open_time=T0 + slot * MIN,
        value=MacdVValues(
            macd_v=macd_v,
            signal=None if macd_v is None or histogram is None else macd_v - histogram,
            histogram=histogram,
            fast_ema=1.0,
            slow_ema=1.0,
            atr=1.0,
        ),
        stage=stage,
        liquidity=Liquidity.HIGH,
        gap_ratio=0.0,
        seeded=True,
        n_eff=100,
    )


class ListSink:
    def __init__(self) -> None:
        self.items: list[tuple[AlertEvent, Mapping[str, Any]]] = []

    async def submit(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        self.items.append((event, details))


class BrokenSink:
    async def submit(self, event: AlertEvent, details: Mapping[str, Any]) -> None:
        raise RuntimeError("database down")


@pytest.fixture
def settings() -> CacheSettings:
    return CacheSettings()


def make_evaluator(
    redis: Any, settings: CacheSettings, *, sink: Any = None, cooldown_s: float = 300.0
) -> AlertEvaluator:
    return AlertEvaluator(
        redis,
        IndicatorCache(redis, settings),
        TickerCache(redis, settings),
        CandleCache(redis, settings),
        Publisher(redis, settings),
        exchange_id=1,
        exchange_name="coinbase",
        cooldown_s=cooldown_s,
        sink=sink,
    )


@pytest.fixture
async def ticker(redis: Any, settings: CacheSettings) -> None:
    await TickerCache(redis, settings).write(
        Ticker(exchange_id=1, exchange="coinbase", symbol=SYMBOL, price=43210.5, timestamp=T0)
    )


@pytest.fixture
async def alerts(redis: Any) -> AsyncIterator[asyncio.Queue[AlertEvent]]:
    queue: asyncio.Queue[AlertEvent] = asyncio.Queue()
    async with alert_stream(redis, [1]) as sub:

        async def pump() -> None:
            async for _, event in sub:
                queue.put_nowait(event)

        task = asyncio.create_task(pump())
        yield queue
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def feed(evaluator: AlertEvaluator, values: list[float], start: int = 0) -> list[str]:
    labels: list[str] = []
    for offset, macd_v in enumerate(values):
        labels += [
            e.trigger_label for e in await evaluator.evaluate(reading(macd_v, start + offset))
        ]
    return labels


@pytest.mark.usefixtures("ticker")
async def test_a_crossing_publishes_an_event_with_every_field(
    redis: Any, settings: CacheSettings, alerts: asyncio.Queue[AlertEvent]
) -> None:
    indicators = IndicatorCache(redis, settings)
    await indicators.write(reading(-20.0, 0, tf=Timeframe.H1, stage=Stage.REBOUNDING))
    await indicators.write(reading(-170.0, 0, tf=Timeframe.D1, stage=Stage.OVERSOLD))
    sink = ListSink()
    evaluator = make_evaluator(redis, settings, sink=sink)
    assert await evaluator.evaluate(reading(-140.0, 0)) == []  # first value only initialises
    cur = reading(-160.0, 1, histogram=-5.0, stage=Stage.OVERSOLD)
    [event] = await evaluator.evaluate(cur)
    got = await asyncio.wait_for(alerts.get(), 5)
    assert got == event
    assert event.exchange_id == event.source_exchange_id == 1
    assert event.source_exchange_name == "coinbase"
    assert (event.symbol, event.timeframe, event.alert_type) == (
        SYMBOL,
        Timeframe.M1,
        AlertType.MACDV,
    )
    assert (event.trigger_label, event.trigger_value, event.signal_delta) == (
        "level_-150",
        -160.0,
        -5.0,
    )
    assert event.price == 43210.5
    assert event.triggered_at == datetime.fromtimestamp((T0 + 2 * MIN) / 1000, UTC)  # bar close
    assert [(c.timeframe, c.macd_v, c.stage) for c in event.timeframes] == [
        (Timeframe.M1, -160.0, Stage.OVERSOLD),
        (Timeframe.M5, None, Stage.UNKNOWN),
        (Timeframe.M15, None, Stage.UNKNOWN),
        (Timeframe.H1, -20.0, Stage.REBOUNDING),
        (Timeframe.H4, None, Stage.UNKNOWN),
        (Timeframe.D1, -170.0, Stage.OVERSOLD),
    ]
    assert event.bias is Bias.BULLISH  # 1 + 4 + 6, nothing bearish
    [(stored, details)] = sink.items
    assert stored == event
    assert (event.direction, event.delayed) == (AlertDirection.DOWN, False)
    assert details["level"] == -150 and details["direction"] == "down"
    assert details["delayed"] is False
    assert details["histogram"] == -5.0 and details["signal"] == -155.0
    assert details["bias"] == "bullish" and len(details["timeframes"]) == 6


async def test_price_falls_back_to_the_last_close_and_never_zero(
    redis: Any, settings: CacheSettings
) -> None:
    evaluator = make_evaluator(redis, settings)
    await feed(evaluator, [-140.0])
    assert await evaluator.evaluate(reading(-160.0, 1)) == []  # no ticker, no candle: no event
    candle = Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol=SYMBOL,
        timeframe=Timeframe.M1,
        open_time=T0 + 3 * MIN,
        close_time=T0 + 4 * MIN - 1,
        open=10.0,
        high=12.0,
        low=9.0,
        close=11.5,
        volume=1.0,
        closed=True,
        source=CandleSource.WS,
    )
    await CandleCache(redis, settings).write(candle)
    [event] = await evaluator.evaluate(reading(-210.0, 3))
    assert event.price == 11.5


@pytest.mark.usefixtures("ticker")
async def test_cooldown_is_measured_in_exchange_time(redis: Any, settings: CacheSettings) -> None:
    evaluator = make_evaluator(redis, settings)
    # slot 1 fires level_-150; slots 3 and 5 fall through it again inside 5 minutes of bar time
    labels = await feed(evaluator, [-140.0, -160.0, -140.0, -160.0, -140.0, -160.0])
    assert labels == ["level_-150"]
    assert await feed(evaluator, [-140.0, -160.0], start=6) == ["level_-150"]  # 6 min after
    # another label has its own cooldown
    assert await feed(evaluator, [-210.0], start=8) == ["level_-200"]


@pytest.mark.usefixtures("ticker")
async def test_a_restart_mid_cooldown_does_not_refire(redis: Any, settings: CacheSettings) -> None:
    first = make_evaluator(redis, settings)
    assert await feed(first, [-140.0, -160.0]) == ["level_-150"]
    restarted = make_evaluator(redis, settings)
    assert await restarted.evaluate(reading(-160.0, 1)) == []  # the same value again
    assert await feed(restarted, [-140.0, -160.0], start=2) == []  # inside the cooldown
    assert await feed(restarted, [-140.0, -160.0], start=5) == ["level_-150"]  # 5 min after


@pytest.mark.usefixtures("ticker")
async def test_two_evaluators_racing_on_the_same_value_fire_once(
    redis: Any, settings: CacheSettings, alerts: asyncio.Queue[AlertEvent]
) -> None:
    a = make_evaluator(redis, settings, cooldown_s=0)
    b = make_evaluator(redis, settings, cooldown_s=0)
    await a.evaluate(reading(-140.0, 0))
    for slot in range(1, 21):
        value = reading(-160.0 if slot % 2 else -140.0, slot)
        results = await asyncio.gather(a.evaluate(value), b.evaluate(value), a.evaluate(value))
        assert sum(len(r) for r in results) == slot % 2  # each fall through -150 fires once
    published = [await asyncio.wait_for(alerts.get(), 5) for _ in range(10)]
    assert [e.triggered_at for e in published] == sorted(e.triggered_at for e in published)
    assert alerts.empty()


@pytest.mark.usefixtures("ticker")
async def test_one_reversal_per_excursion_rearmed_by_a_crossing(
    redis: Any, settings: CacheSettings
) -> None:
    evaluator = make_evaluator(redis, settings, cooldown_s=0)
    await evaluator.evaluate(reading(-205.0, 0))
    turn = [e.trigger_label for e in await evaluator.evaluate(reading(-210.0, 1, histogram=20.0))]
    assert turn == ["reversal_oversold"]
    assert await evaluator.evaluate(reading(-209.0, 2, histogram=25.0)) == []  # same excursion
    state = await redis.hgetall(keys.alert_state_key(1, SYMBOL, Timeframe.M1))
    assert state["armed"] == "0" and float(state["prev"]) == -209.0
    labels = [e.trigger_label for e in await evaluator.evaluate(reading(-190.0, 3, histogram=25.0))]
    assert labels == []  # rising out through -200 is no crossing, so it re-arms nothing
    labels = [e.trigger_label for e in await evaluator.evaluate(reading(-260.0, 4, histogram=5.0))]
    assert labels == ["level_-250"]  # falling deeper in re-arms
    labels = [e.trigger_label for e in await evaluator.evaluate(reading(-265.0, 5, histogram=25.0))]
    assert labels == ["reversal_oversold"]


@pytest.mark.usefixtures("ticker")
async def test_a_reversal_held_back_by_cooldown_stays_armed(
    redis: Any, settings: CacheSettings
) -> None:
    evaluator = make_evaluator(redis, settings)
    await evaluator.evaluate(reading(-205.0, 0))
    assert len(await evaluator.evaluate(reading(-210.0, 1, histogram=20.0))) == 1
    await evaluator.evaluate(reading(-260.0, 2))  # level_-250 down: re-armed
    assert await evaluator.evaluate(reading(-265.0, 3, histogram=20.0)) == []  # cooldown
    state = await redis.hgetall(keys.alert_state_key(1, SYMBOL, Timeframe.M1))
    assert state["armed"] == "1"
    labels = [e.trigger_label for e in await evaluator.evaluate(reading(-266.0, 6, histogram=20.0))]
    assert labels == ["reversal_oversold"]


@pytest.mark.usefixtures("ticker")
async def test_stale_undefined_and_foreign_values_are_ignored(
    redis: Any, settings: CacheSettings
) -> None:
    evaluator = make_evaluator(redis, settings, cooldown_s=0)
    await feed(evaluator, [-140.0], start=5)
    assert await evaluator.evaluate(reading(-300.0, 4)) == []  # older bar
    assert await evaluator.evaluate(reading(None, 6)) == []
    assert await evaluator.evaluate(reading(-300.0, 6, exchange_id=2)) == []
    assert await feed(evaluator, [-301.0], start=6) == ["level_-300"]  # prev is still -140


@pytest.mark.usefixtures("ticker")
async def test_a_failing_sink_never_stops_the_publish(
    redis: Any, settings: CacheSettings, alerts: asyncio.Queue[AlertEvent]
) -> None:
    good = ListSink()
    evaluator = make_evaluator(redis, settings, sink=FanOutSink(BrokenSink(), good))
    await feed(evaluator, [-140.0])
    [event] = await evaluator.evaluate(reading(-160.0, 1))
    assert await asyncio.wait_for(alerts.get(), 5) == event
    assert [e for e, _ in good.items] == [event]
    direct = make_evaluator(redis, settings, sink=BrokenSink())
    [again] = await direct.evaluate(reading(-260.0, 2))
    assert await asyncio.wait_for(alerts.get(), 5) == again


async def _hgetall_calls(redis: Any) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_hgetall", {}).get("calls", 0))


@pytest.mark.usefixtures("ticker")
async def test_a_warm_evaluator_claims_without_reading_the_state(
    redis: Any, settings: CacheSettings
) -> None:
    evaluator = make_evaluator(redis, settings, cooldown_s=0)
    await evaluator.evaluate(reading(-140.0, 0))  # the first bar reads the (empty) state
    await redis.config_resetstat()
    labels = await feed(evaluator, [-160.0, -140.0, -160.0, -155.0], start=1)
    assert labels == ["level_-150", "level_-150"]
    assert await _hgetall_calls(redis) == 0
    state = await redis.hgetall(keys.alert_state_key(1, SYMBOL, Timeframe.M1))
    assert state == {
        "open_time": str(T0 + 4 * MIN),
        "prev": "-155.0",
        "armed": "1",
        "before": "-160.0",
    }


@pytest.mark.usefixtures("ticker")
async def test_a_state_moved_behind_the_evaluators_back_is_re_read_and_fires_once(
    redis: Any, settings: CacheSettings, alerts: asyncio.Queue[AlertEvent]
) -> None:
    a = make_evaluator(redis, settings, cooldown_s=0)
    b = make_evaluator(redis, settings, cooldown_s=0)
    assert await feed(a, [-140.0, -160.0]) == ["level_-150"]
    # b claims slot 2 (back above -150) while a still remembers slot 1 at -160
    assert await feed(b, [-140.0], start=2) == []
    await redis.config_resetstat()
    assert await a.evaluate(reading(-140.0, 2)) == []  # already claimed by b
    # from a's stale memory (-160 -> -160) nothing would fire; from Redis (-140 -> -160) it does
    assert [e.trigger_label for e in await a.evaluate(reading(-160.0, 3))] == ["level_-150"]
    assert await b.evaluate(reading(-160.0, 3)) == []
    assert await _hgetall_calls(redis) == 1  # only a's claim of slot 3 found the state moved
    published = [await asyncio.wait_for(alerts.get(), 5) for _ in range(2)]
    assert [int(e.triggered_at.timestamp() * 1000) for e in published] == [
        T0 + 2 * MIN,
        T0 + 4 * MIN,
    ]
    # a state lost behind its back (the hash deleted) is noticed too: the next bar only
    # initialises, where a's memory (-160 -> -210) would have fired level_-200
    await redis.delete(keys.alert_state_key(1, SYMBOL, Timeframe.M1))
    assert await a.evaluate(reading(-210.0, 4)) == []
    assert [e.trigger_label for e in await a.evaluate(reading(-260.0, 5))] == ["level_-250"]
    event = await asyncio.wait_for(alerts.get(), 5)
    assert int(event.triggered_at.timestamp() * 1000) == T0 + 6 * MIN
    assert alerts.empty()


@pytest.mark.usefixtures("ticker")
async def test_a_corrected_bar_is_judged_again_and_fires_only_what_is_new_flagged_delayed(
    redis: Any, settings: CacheSettings, alerts: asyncio.Queue[AlertEvent]
) -> None:
    evaluator = make_evaluator(redis, settings, cooldown_s=0)  # only the bar+label rule holds
    assert await feed(evaluator, [-140.0, -160.0]) == ["level_-150"]
    # late data corrects slot 1: -140 -> -215 also falls through -200 (the deepest is reported)
    [late] = await evaluator.evaluate(reading(-215.0, 1))
    assert (late.trigger_label, late.direction, late.delayed) == (
        "level_-200",
        AlertDirection.DOWN,
        True,
    )
    assert late.triggered_at == datetime.fromtimestamp((T0 + 2 * MIN) / 1000, UTC)  # its close
    assert await evaluator.evaluate(reading(-215.0, 1)) == []  # the same value: a re-delivery
    assert await evaluator.evaluate(reading(-165.0, 1)) == []  # level_-150 fired for this bar
    assert await evaluator.evaluate(reading(-215.0, 1)) == []  # and so did level_-200
    # the next bar is judged against the corrected value: -215 -> -230 crosses nothing,
    # where the first version (-160) would have fired level_-200
    assert await feed(evaluator, [-230.0], start=2) == []
    assert await evaluator.evaluate(reading(-400.5, 1)) == []  # an older bar is never re-judged
    published = [await asyncio.wait_for(alerts.get(), 5) for _ in range(2)]
    assert [(e.trigger_label, e.delayed) for e in published] == [
        ("level_-150", False),
        ("level_-200", True),
    ]
    assert alerts.empty()


@pytest.mark.usefixtures("ticker")
async def test_a_delayed_bar_says_so_in_its_event_and_its_details(
    redis: Any, settings: CacheSettings
) -> None:
    sink = ListSink()
    evaluator = make_evaluator(redis, settings, sink=sink)
    await evaluator.evaluate(reading(140.0, 0))
    [event] = await evaluator.evaluate(reading(205.0, 1), delayed=True)
    assert (event.trigger_label, event.direction, event.delayed) == (
        "level_200",
        AlertDirection.UP,
        True,
    )
    [(_, details)] = sink.items
    assert (details["direction"], details["delayed"]) == ("up", True)


@pytest.mark.usefixtures("ticker")
async def test_events_name_their_asset_and_quote_from_the_asset_map(
    redis: Any, settings: CacheSettings
) -> None:
    listed = [ListedSymbol(1, SYMBOL, "BTC", "USD", "bitcoin")]
    evaluator = AlertEvaluator(
        redis,
        IndicatorCache(redis, settings),
        TickerCache(redis, settings),
        CandleCache(redis, settings),
        Publisher(redis, settings),
        exchange_id=1,
        exchange_name="coinbase",
        assets=AssetMap(listed),
    )
    await evaluator.evaluate(reading(-140.0, 0))
    [event] = await evaluator.evaluate(reading(-160.0, 1))
    unmapped = make_evaluator(redis, settings)
    await unmapped.evaluate(reading(-140.0, 0, tf=Timeframe.M5))
    [bare] = await unmapped.evaluate(reading(-160.0, 1, tf=Timeframe.M5))

    assert (event.asset, event.quote) == ("bitcoin", "USD")
    assert (bare.asset, bare.quote) == (None, None)
