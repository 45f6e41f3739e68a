import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

import livermore_exchange_sim.binance_limits as sim_limits
from livermore_cache.candles import CandleCache
from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.backfill import BackfillProgress, StartupBackfill, plan_series
from livermore_exchange_core.ratelimit import SpacingLimiter, WeightWindowLimiter, WindowRule
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from ._rest_support import (
    RequestLog,
    binance_stats,
    configure_binance,
    recording_session,
    sim_config,
)

SPEED = 60.0


# One hour after a UTC midnight: the next 4h boundary is 3 wall minutes away at speed 60, so no
# 4h/1d bar closes during a test and a restart finds the cache fresh.
START_MS = 1_767_225_600_000 + 3_600_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=21, speed=SPEED, start_ms=START_MS) as running:
        yield running


def test_plan_trusts_complete_fresh_cache_and_fetches_only_the_tail() -> None:
    step = 60_000
    latest = 1_000 * step
    full = [latest - i * step for i in range(100)]
    assert plan_series(full, latest, 100, step) is None
    stale = [t - 3 * step for t in full]
    tail = plan_series(stale, latest, 100, step)
    assert tail is not None and (tail.start_ms, tail.end_ms) == (latest - 2 * step, latest + step)
    holes = [*full[::3], latest - 99 * step]  # Coinbase-style sparse but spanning 100 slots
    assert plan_series(holes, latest, 100, step) is None
    short = plan_series(full[:40], latest, 100, step)
    assert short is not None and (short.end_ms - short.start_ms) // step == 100
    assert plan_series([], latest, 100, step) == short
    ancient = [t - 500 * step for t in full]
    window = plan_series(ancient, latest, 100, step)
    assert window is not None and (window.end_ms - window.start_ms) // step == 100


async def test_coinbase_backfill_zero_429s_within_rate_and_restart_fetches_only_missing(
    sim: RunningSim, redis: Redis
) -> None:
    log = RequestLog()
    client = CoinbaseRestClient(
        sim_config(sim, ExchangeName.COINBASE),
        session=recording_session(log),
        limiter=SpacingLimiter(10.0),
        clock_rate=SPEED,
    )
    cache = CandleCache(redis, CacheSettings())
    symbols = [p.symbol for p in sim.market.products(Venue.COINBASE)]
    timeframes = [Timeframe.H4, Timeframe.D1]
    seen: list[BackfillProgress] = []
    backfill = StartupBackfill(
        client, cache, exchange_id=1, exchange_name="coinbase", progress=seen.append
    )
    try:
        report = await backfill.run(symbols, timeframes)
        first_requests = len(log.sent)
        again = await backfill.run(symbols, timeframes)
        after_restart = len(log.sent) - first_requests
        for symbol in symbols[:3]:
            await cache.delete_series(1, symbol, Timeframe.H4)
        repaired = await backfill.run(symbols, timeframes)
        repair_requests = len(log.sent) - first_requests - after_restart
    finally:
        assert client._session is not None
        await client._session.close()

    assert report.ok and report.fetched == len(symbols) * 2
    assert 429 not in log.statuses()
    optimum = (first_requests - 1) / 10.0  # one candle page per series + /time, at 10 req/s
    print(f"coinbase: {first_requests} requests, {report.elapsed_s:.2f}s, optimum {optimum:.2f}s")
    assert report.elapsed_s <= 1.2 * optimum
    # Highest timeframe first, progress with percent and ETA.
    order = [p.current.split()[1] for p in seen[: len(symbols) * 2]]
    first_day = [i for i, tf in enumerate(order) if tf == "1d"]
    first_4h = [i for i, tf in enumerate(order) if tf == "4h"]
    assert order[0] == "1d" and sum(first_day) / len(first_day) < sum(first_4h) / len(first_4h)
    assert seen[len(symbols) * 2 - 1].percent == 100.0 and seen[0].eta_s is not None
    # A restart trusts the complete, fresh cache (only /time), then refetches just what was lost.
    assert again.trusted == len(symbols) * 2 and after_restart == 1
    assert repaired.fetched == 3 and repair_requests == 1 + 3
    btc = await cache.recent(1, "BTC-USD", Timeframe.D1, 200)
    assert len(btc) >= 100 and all(c.closed for c in btc)
    truth = sim.truth(
        Venue.COINBASE,
        "BTC-USD",
        duration_ms(Timeframe.D1),
        btc[0].open_time,
        btc[-1].open_time + 1,
    )
    assert [b.close for b in truth] == [c.close for c in btc]


async def test_binance_backfill_bound_by_weight_causes_zero_429s_near_optimum(
    sim: RunningSim, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sim's weight window is shortened from 60 s to 3 s so the limit binds within seconds;
    # our limiter is told the same scale (exchangeInfo still says "per MINUTE").
    window_s, limit = 3.0, 60
    monkeypatch.setattr(sim_limits, "WINDOW_S", window_s)
    await configure_binance(sim, weight_limit=limit)
    log = RequestLog()
    client = BinanceRestClient(
        sim_config(sim, ExchangeName.BINANCE),
        session=recording_session(log),
        limiter=WeightWindowLimiter([WindowRule(6000, 60.0)], time_scale=60.0 / window_s),
        clock_rate=SPEED,
    )
    cache = CandleCache(redis, CacheSettings())
    symbols = [p.symbol for p in sim.market.products(Venue.BINANCE)]
    timeframes = [Timeframe.M15, Timeframe.H1, Timeframe.H4, Timeframe.D1]
    backfill = StartupBackfill(client, cache, exchange_id=2, exchange_name="binance")
    try:
        report = await asyncio.wait_for(backfill.run(symbols, timeframes), 40)
    finally:
        assert client._session is not None
        await client._session.close()
    stats = await binance_stats(sim)
    weight = 1 + 20 + 2 * len(symbols) * len(timeframes)  # time + exchangeInfo + klines
    # A rolling window of `limit` lets the first `limit` go at once, then `limit` per window.
    optimum = ((weight - 1) // limit) * window_s
    print(f"binance backfill: weight {weight}, {report.elapsed_s:.2f}s, optimum {optimum:.2f}s")
    assert report.ok and stats["http_429"] == 0 and stats["http_418"] == 0
    assert report.elapsed_s <= 1.2 * optimum + 0.3
