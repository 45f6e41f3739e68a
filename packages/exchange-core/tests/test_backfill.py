import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.backfill import BackfillProgress, StartupBackfill, plan_series
from livermore_exchange_core.ratelimit import SpacingLimiter, WeightWindowLimiter, WindowRule
from livermore_exchange_sim.assets import ASSETS
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.timeframes import duration_ms

from ._rest_support import (
    RequestLog,
    binance_stats,
    coinbase_stats,
    configure_binance,
    recording_session,
    sim_config,
)

SPEED = 60.0
DEFAULT_ASSETS = len(ASSETS)
BIG = 200
"""Symbols of the rate-limit proofs: the 17 default products plus 183 synthetic ones."""


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
    # The ratio to the optimum is a budget for bench/bench_backfill.py, not a timed test.
    print(f"coinbase: {first_requests} requests, {report.elapsed_s:.2f}s, optimum {optimum:.2f}s")
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


async def test_coinbase_200_symbol_backfill_zero_429s_at_the_published_rate(redis: Redis) -> None:
    # 200 real products x one timeframe at the published 10 req/s: ~20 s, the most CI affords
    # (x 6 timeframes is bench/bench_backfill.py --symbols 200).
    async with running_sim(
        seed=21, speed=SPEED, start_ms=START_MS, extra_assets=BIG - DEFAULT_ASSETS
    ) as sim:
        client = CoinbaseRestClient(
            sim_config(sim, ExchangeName.COINBASE),
            limiter=SpacingLimiter(10.0, window_limit=10),
            clock_rate=SPEED,
        )
        symbols = [p.symbol for p in sim.market.products(Venue.COINBASE)]
        backfill = StartupBackfill(
            client, CandleCache(redis, CacheSettings()), exchange_id=1, exchange_name="coinbase"
        )
        try:
            report = await asyncio.wait_for(backfill.run(symbols, [Timeframe.H1]), 40)
        finally:
            await client.aclose()
        stats = await coinbase_stats(sim)
        tail = await CandleCache(redis, CacheSettings()).recent(1, symbols[-1], Timeframe.H1, 200)
    optimum = (client.requests - 1) / 10.0  # /time + one page per series, 10 per second
    print(
        f"coinbase 200 x 1h: {client.requests} requests, {report.elapsed_s:.2f}s vs optimum "
        f"{optimum:.2f}s ({report.elapsed_s / optimum:.3f}x), 429s {stats['http_429']}"
    )
    assert len(symbols) == BIG and symbols[-1] == f"AA{BIG - DEFAULT_ASSETS}-USD"
    assert report.ok and report.fetched == BIG and client.requests == BIG + 1
    assert stats["http_429"] == 0 and stats["requests"] == client.requests
    assert len(tail) >= 100 and all(c.closed for c in tail)


async def test_binance_200_symbol_backfill_bound_by_weight_zero_429s(
    redis: Redis,
) -> None:
    # The sim's REQUEST_WEIGHT rule is made small (800 per 5 s, 160 weight/s) so the limit binds
    # within seconds, well below what one core pushes through sim + client here (~360/s); the
    # sim publishes it in exchangeInfo ("5 SECOND") and in X-MBX-USED-WEIGHT-5S, and our limiter
    # (starting from the default 6000 per minute) takes it from there, as in production.
    window_s, limit = 5, 800
    async with running_sim(
        seed=21, speed=SPEED, start_ms=START_MS, extra_assets=BIG - DEFAULT_ASSETS
    ) as sim:
        await configure_binance(sim, weight_limit=limit, weight_window_s=window_s)
        limiter = WeightWindowLimiter([WindowRule(6000, 60.0)])
        client = BinanceRestClient(
            sim_config(sim, ExchangeName.BINANCE), limiter=limiter, clock_rate=SPEED
        )
        symbols = [p.symbol for p in sim.market.products(Venue.BINANCE)]
        backfill = StartupBackfill(
            client, CandleCache(redis, CacheSettings()), exchange_id=2, exchange_name="binance"
        )
        try:
            report = await asyncio.wait_for(backfill.run(symbols, RUNTIME_TIMEFRAMES), 40)
        finally:
            await client.aclose()
        stats = await binance_stats(sim)
    weight = 1 + 20 + 2 * BIG * len(RUNTIME_TIMEFRAMES)  # /time + exchangeInfo + one page each
    # A rolling window of `limit` lets the first `limit` go at once, then `limit` per window.
    optimum = ((weight - 1) // limit) * window_s
    print(
        f"binance 200 x 6 tf, {limit} weight per {window_s}s: weight {weight}, "
        f"{report.elapsed_s:.2f}s vs optimum {optimum:.2f}s ({report.elapsed_s / optimum:.3f}x), "
        f"429s {stats['http_429']}, 418s {stats['http_418']}"
    )
    assert WindowRule(limit, window_s) in limiter.rules  # configured from exchangeInfo
    assert len(symbols) == BIG and report.ok and report.fetched == BIG * len(RUNTIME_TIMEFRAMES)
    assert limiter.weight_granted == weight and stats["requests"] == client.requests
    assert stats["http_429"] == 0 and stats["http_418"] == 0
    # The limit binds: no schedule that keeps it can finish sooner (load only makes it slower).
    assert report.elapsed_s >= 0.95 * optimum
