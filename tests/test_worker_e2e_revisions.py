"""End to end: a Coinbase late-trade revision reaches the indicator and never doubles an alert.

The simulator batches 6 simulated seconds per WebSocket tick (heartbeats first), so a heartbeat
often passes a minute's end by more than the worker's 2 s trade grace before that minute's last
trades arrive: the worker closes the 1m bar on exchange time, then revises it with the late
trades (SPEC 4, Coinbase). A BTC excursion scripted once the worker streams makes alerts fire.
Everything is observed from outside the worker: the candle-close channel (a second close of the
same bar with other prices is a revision), the indicator key, the alert channel, the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Subscription
from livermore_exchange_core.indicators.macdv import latest_macd_v
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import StartupPhase, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

COINBASE = 1
MINUTE_MS = 60_000
Bar = tuple[str, int]


@pytest.fixture
async def closes(redis: Redis) -> AsyncIterator[dict[Bar, list[Candle]]]:
    """Every Coinbase 1m candle-close publish, by (symbol, open_time), in arrival order."""
    seen: dict[Bar, list[Candle]] = {}
    patterns = [channels.candle_close_pattern(COINBASE)]
    async with Subscription(redis, model=Candle, patterns=patterns) as sub:

        async def pump() -> None:
            async for _, candle in sub:
                if candle.timeframe is Timeframe.M1:
                    seen.setdefault((candle.symbol, candle.open_time), []).append(candle)

        task = asyncio.get_running_loop().create_task(pump())
        try:
            yield seen
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _prices(candle: Candle) -> tuple[float, float, float, float]:
    return (candle.open, candle.high, candle.low, candle.close)


def _repriced(closes: dict[Bar, list[Candle]]) -> list[Bar]:
    """The bars published again with other prices: revised after their on-time close."""
    return [bar for bar, sent in closes.items() if len({_prices(c) for c in sent}) > 1]


async def test_a_late_trade_revision_rebuilds_the_indicator_and_fires_no_alert_twice(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    alerts: Any,
    lifecycle: Any,
    closes: dict[Bar, list[Candle]],
    poll_until: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    async with running_sim(
        seed=21, speed=60.0, symbols=["BTC", "ETH"], start_ms=start_ms, ws_min_tick_s=0.1
    ) as sim:
        worker = spawn_worker("coinbase", "--autostart", sim=sim)
        await lifecycle.wait_for(
            lambda e: (
                e.exchange_id == COINBASE
                and e.progress is not None
                and e.progress.phase is StartupPhase.COMPLETE
            ),
            60,
            "streaming",
        )
        next_minute = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
        excursion = macdv_excursion("BTC", next_minute, timeframe_ms=MINUTE_MS)
        sim.market.scenarios = (*sim.market.scenarios, excursion)
        await alerts.wait_for(lambda a: a.symbol == "BTC-USD", 60, "a scripted BTC alert")
        revised = await poll_until(lambda: _now(_repriced(closes)), 60, "a repriced 1m bar")
        worker.terminate(signal.SIGTERM)  # drains the pipeline: cache and indicator settle
        assert await worker.wait_exit(20) == 0, worker.tail()
        truths = {
            (symbol, open_time): sim.truth(
                Venue.COINBASE, symbol, MINUTE_MS, open_time, open_time + MINUTE_MS
            )
            for symbol, open_time in revised
        }

    candles = CandleCache(redis, CacheSettings())
    indicators = IndicatorCache(redis, CacheSettings())
    for symbol, open_time in revised:
        cached = [
            c for c in await candles.between(COINBASE, symbol, Timeframe.M1, 0, 2**62) if c.closed
        ]
        [stored_bar] = [c for c in cached if c.open_time == open_time]
        first = closes[(symbol, open_time)][0]
        assert _prices(stored_bar) != _prices(first)  # the correction replaced the on-time close
        [want] = truths[(symbol, open_time)]
        assert _prices(stored_bar) == (want.open, want.high, want.low, want.close)

        stored = await indicators.read(COINBASE, symbol, Timeframe.M1)
        expected = latest_macd_v(cached)
        assert stored is not None and expected is not None
        assert stored.open_time == expected.open_time == cached[-1].open_time
        for got, want_value in [
            (stored.value.macd_v, expected.macd_v),
            (stored.value.signal, expected.signal),
            (stored.value.atr, expected.atr),
        ]:
            assert got is not None and want_value is not None
            assert math.isclose(got, want_value, rel_tol=1e-9), (symbol, got, want_value)

    seen = [
        (a.exchange_id, a.symbol, a.timeframe, a.trigger_label, a.triggered_at)
        for _, a in alerts.items
    ]
    assert seen and len(seen) == len(set(seen)), f"an alert fired twice: {seen}"
    for _, event in alerts.items:
        if event.trigger_label.startswith("level_"):
            rising = not event.trigger_label.startswith("level_-")
            assert event.direction.value == ("up" if rising else "down"), event


async def _now(value: Any) -> Any:
    return value
