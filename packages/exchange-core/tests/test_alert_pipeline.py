"""Simulator candles -> MACD-V -> alerts -> channel, alert_history rows and webhook posts."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import uuid4

import aiohttp
from pydantic import SecretStr
from sqlmodel import col, select

from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher, alert_stream
from livermore_cache.tickers import TickerCache
from livermore_exchange_core.alerts.evaluator import AlertEvaluator, FanOutSink
from livermore_exchange_core.alerts.history import AlertHistoryWriter
from livermore_exchange_core.alerts.notify import DiscordNotifier
from livermore_exchange_core.alerts.rules import evaluate_rules
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.indicators.macdv import macd_v_series
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import AlertType, Bias, CandleSource, Stage, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.tables import AlertHistory

M5 = 300_000
NOW = 1_714_564_800_000  # 2024-05-01 12:00 UTC, the simulator's clock at start
FEED_FROM = NOW - 90 * M5  # after a noisy stretch, before the scripted fall starts
FEED_TO = NOW - 53 * M5  # just past the -250 crossing (open times are < FEED_TO)


def sim_candles(bars: list[Any]) -> list[Candle]:
    return [
        Candle(
            exchange_id=1,
            exchange="coinbase",
            symbol="ETH-USD",
            timeframe=Timeframe.M5,
            open_time=b.open_time,
            close_time=b.open_time + M5 - 1,
            open=b.open,
            high=b.high,
            low=b.low,
            close=b.close,
            volume=b.volume,
            closed=True,
            source=CandleSource.REST,
        )
        for b in bars
    ]


def expected_labels(history: list[Candle], fed: list[Candle]) -> list[str]:
    """The rules replayed on the batch reference: what the pipeline must publish, in order."""
    points = {p.open_time: p for p in macd_v_series(history)}
    prev: float | None = None
    armed, labels = True, []
    for candle in fed:
        point = points[candle.open_time]
        if point.macd_v is None:
            continue
        if prev is not None:
            outcome = evaluate_rules(prev, point.macd_v, point.histogram, armed=armed)
            armed = outcome.armed
            labels += [t.label for t in outcome.triggers]
        prev = point.macd_v
    return labels


async def collect(stream: Any, into: asyncio.Queue[AlertEvent]) -> None:
    async for _, event in stream:
        into.put_nowait(event)


async def test_a_scripted_crossing_yields_one_event_row_and_post_per_crossing(
    redis: Any, pg_settings: DatabaseSettings
) -> None:
    scenario = macdv_excursion("ETH", NOW - 60 * M5, direction=-1)
    settings = CacheSettings()
    candles, indicators = CandleCache(redis, settings), IndicatorCache(redis, settings)
    publisher = Publisher(redis, settings)
    engine = create_async_engine(pg_settings)
    sessions = async_session_factory(engine)
    received: asyncio.Queue[AlertEvent] = asyncio.Queue()
    async with (
        running_sim(seed=11, speed=1.0, start_ms=NOW, scenarios=[scenario]) as sim,
        aiohttp.ClientSession() as http,
        AlertHistoryWriter(sessions, redis, exchange_id=1) as writer,
        DiscordNotifier(http, SecretStr(sim.webhook_url), history=writer) as notifier,
        alert_stream(redis, [1]) as stream,
    ):
        history = sim_candles(sim.truth(Venue.COINBASE, "ETH-USD", M5, NOW - 200 * M5, FEED_TO))
        warm = [c for c in history if c.open_time < FEED_FROM]
        fed = [c for c in history if c.open_time >= FEED_FROM]
        expected = expected_labels(history, fed)
        assert expected == ["level_-150", "level_-200", "level_-250"]  # the scripted fall

        calculator = IndicatorCalculator(candles, indicators, publisher, exchange_id=1)
        evaluator = AlertEvaluator(
            redis, indicators, TickerCache(redis, settings), candles, publisher,
            exchange_id=1, exchange_name="coinbase", sink=FanOutSink(writer, notifier),
        )  # fmt: skip
        await candles.write_many(warm)
        await calculator.warmup("ETH-USD", Timeframe.M5)
        reader = asyncio.create_task(collect(stream, received))
        fired: list[AlertEvent] = []
        for candle in fed:  # the worker's order: cache write, indicator, alerts
            await candles.write(candle)
            value = await calculator.on_closed_candle(candle)
            assert value is not None
            fired += await evaluator.evaluate(value)
        posts = await sim.webhooks.wait_for("livermore", len(expected))
        await asyncio.wait_for(notifier.wait_idle(), 10)
        await asyncio.wait_for(writer.wait_idle(), 10)
        sentinel = fired[0].model_copy(update={"id": uuid4()})
        await publisher.publish_alert(sentinel)  # everything published before it arrives first
        published = []
        while (event := await asyncio.wait_for(received.get(), 5)) != sentinel:
            published.append(event)
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)

    assert [e.trigger_label for e in fired] == expected
    assert published == fired  # exactly one event per crossing on channel:alerts:1
    closes = {c.open_time + M5: c.close for c in fed}
    for event in fired:
        assert event.alert_type is AlertType.MACDV
        assert (event.exchange_id, event.source_exchange_id) == (1, 1)
        assert event.source_exchange_name == "coinbase"
        assert (event.symbol, event.timeframe) == ("ETH-USD", Timeframe.M5)
        assert event.trigger_value < -150 and event.signal_delta is not None
        assert event.price == closes[int(event.triggered_at.timestamp() * 1000)]  # last close
        [five] = [c for c in event.timeframes if c.timeframe is Timeframe.M5]
        assert five.macd_v == event.trigger_value and five.stage is Stage.OVERSOLD
        assert len(event.timeframes) == 6 and event.bias is Bias.BULLISH
    assert [p["embeds"][0]["title"] for p in posts] == [
        f"ETH-USD: MACD-V crossed below {label.split('_')[1]} (5m)" for label in expected
    ]
    async with sessions() as session:
        rows = (await session.exec(select(AlertHistory).where(AlertHistory.symbol == "ETH-USD")
                                   .order_by(col(AlertHistory.triggered_at)))).all()  # fmt: skip
    await engine.dispose()
    assert [r.uid for r in rows] == [e.id for e in fired]
    assert all(r.notification_sent for r in rows)
    assert [r.details["level"] for r in rows if r.details] == [-150, -200, -250]
