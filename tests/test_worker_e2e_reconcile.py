"""End to end: a worker on a wrong clock rate keeps an exact cache, and heals damage.

A Coinbase worker streams from a simulator running 60x faster than real time while
`LIVERMORE_EXCHANGE_CLOCK_RATE` says 1 (the default: as if unset), 30 or 120, so its REST clock
must learn the venue's rate. Once it streams, bars in its cache are damaged from outside (one's
volume halved, one deleted, one stored unfinished); the reconciliation sweep must put them right
through the closed-bar path and count them on `/metrics`. After a clean stop every cached bar of
every timeframe equals the simulator's truth.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, StartupPhase, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from .conftest import WorkerProcess, _free_port, poll
from .test_worker_metrics_e2e import _scrape, _value

COINBASE = 1
MIN = 60_000


def _same(candle: Candle, bar: Any) -> bool:
    got = (candle.open, candle.high, candle.low, candle.close, candle.volume)
    want = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    return candle.closed and all(
        abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("clock_rate", ["1", "30", "120"], ids=["unset", "half", "double"])
async def test_a_worker_on_a_wrong_clock_rate_heals_damaged_bars_and_equals_the_truth(
    clock_rate: str,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., WorkerProcess],
    redis: Redis,
    lifecycle: Any,
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    cache = CandleCache(redis, CacheSettings())
    start_ms = int(time.time() * 1000) // MIN * MIN
    async with running_sim(seed=23, speed=60.0, symbols=["BTC", "ETH"], start_ms=start_ms) as sim:
        worker = spawn_worker(
            "coinbase",
            "--autostart",
            sim=sim,
            LIVERMORE_EXCHANGE_CLOCK_RATE=clock_rate,
            LIVERMORE_RECONCILE_INTERVAL_S="0.05",
            LIVERMORE_RECONCILE_SETTLE_S="60",
            LIVERMORE_WORKER_METRICS_PORT=str(port),
        )
        await lifecycle.wait_for(
            lambda e: (
                e.exchange_id == COINBASE
                and e.progress is not None
                and e.progress.phase is StartupPhase.COMPLETE
            ),
            60,
            "streaming",
        )
        streaming_at = sim.clock.now_ms()

        async def streamed() -> list[Candle]:
            bars = await cache.between(COINBASE, "BTC-USD", Timeframe.M1, streaming_at, 2**62)
            closed = [c for c in bars if c.closed]
            return closed if len(closed) >= 4 else []

        damaged = await _damage(redis, cache, await poll(streamed, 30, "four streamed 1m bars"))

        async def healed() -> bool:
            for open_time in damaged:
                stored = await cache.between(
                    COINBASE, "BTC-USD", Timeframe.M1, open_time, open_time
                )
                truth = sim.truth(Venue.COINBASE, "BTC-USD", MIN, open_time, open_time + 1)
                if len(stored) != 1 or not _same(stored[0], truth[0]):
                    return False
            return True

        await poll(healed, 30, "the damaged bars corrected")
        samples = await _scrape(url)
        worker.terminate(signal.SIGTERM)
        assert await worker.wait_exit(20) == 0, worker.tail()
        cached = {
            (symbol, tf): await cache.between(COINBASE, symbol, tf, 0, 2**62)
            for symbol in ("BTC-USD", "ETH-USD")
            for tf in RUNTIME_TIMEFRAMES
        }
        truth = {
            series: sim.truth(
                Venue.COINBASE, series[0], duration_ms(series[1]), bars[0].open_time,
                bars[-1].open_time + 1,
            )
            for series, bars in cached.items()
            if bars
        }  # fmt: skip

    assert _value(samples, "livermore_reconcile_corrections_total", exchange="coinbase") >= 3
    assert _value(samples, "livermore_reconciled_bars_total", exchange="coinbase") > 0
    for (symbol, timeframe), stored in cached.items():
        label = f"{symbol} {timeframe.value}"
        closed = [c for c in stored if c.closed]
        assert closed, label
        assert [c for c in stored if not c.closed] in ([], [stored[-1]]), f"{label}: unfinished"
        want = [b for b in truth[(symbol, timeframe)] if b.open_time <= closed[-1].open_time]
        assert [c.open_time for c in closed] == [b.open_time for b in want], f"{label}: bars"
        wrong = [c.open_time for c, b in zip(closed, want, strict=True) if not _same(c, b)]
        assert not wrong, f"{label}: values differ at {wrong}"


async def _damage(redis: Redis, cache: CandleCache, streamed: list[Candle]) -> list[int]:
    """Halve one streamed BTC 1m bar's volume, delete one, store one unfinished."""
    wrong, gone, opened = streamed[0], streamed[1], streamed[2]
    key = keys.candles_key(COINBASE, "BTC-USD", Timeframe.M1)
    for candle in (wrong, gone, opened):
        await redis.zremrangebyscore(key, candle.open_time, candle.open_time)
    await cache.write_many(
        [
            wrong.model_copy(update={"volume": wrong.volume / 2}),
            opened.model_copy(update={"closed": False}),
        ]
    )
    return [wrong.open_time, gone.open_time, opened.open_time]
