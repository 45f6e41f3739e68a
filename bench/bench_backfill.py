"""Startup backfill against the simulator: zero 429s and time vs the rate-limit optimum (SPEC 13).

Run: `uv run python bench/bench_backfill.py [--pages 1] [--window-s 6]`.

The simulator lists 17 products per venue, so request volume is scaled with `--pages` (pages per
series: 12 gives 17 x 6 x 12 = 1224 requests, the volume of a 200-symbol x 6-timeframe backfill).

* Coinbase: published 10 req/s; optimum = (requests - 1) / 10 s.
* Binance at its published 6000 weight/min: a 200-symbol backfill (~2,450 weight) fits inside one
  window, so the limit never binds and the optimum is network-bound; reported as such.
* Binance with the limit binding: the sim's weight window is shortened to `--window-s` and its
  limit lowered; our limiter is told the same time scale. Optimum for a rolling window of L:
  floor((W - 1) / L) windows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import aiohttp
from _common import private_redis

import livermore_exchange_sim.binance_limits as sim_limits
from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis
from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.backfill import StartupBackfill
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.ratelimit import SpacingLimiter, WeightWindowLimiter, WindowRule
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName
from livermore_schema.settings import CacheSettings, RedisSettings

SPEED = 60.0
START_MS = 1_767_225_600_000 + 3_600_000


async def _stats(sim: RunningSim) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.rest_url(Venue.BINANCE)}/_sim/stats") as response,
    ):
        stats: dict[str, Any] = await response.json()
        return stats


async def _configure(sim: RunningSim, **fields: Any) -> None:
    async with aiohttp.ClientSession() as session:
        await session.post(f"{sim.rest_url(Venue.BINANCE)}/_sim/config", json=fields)


async def _coinbase(redis_settings: RedisSettings, pages: int) -> None:
    async with running_sim(seed=1, speed=SPEED, start_ms=START_MS) as sim:
        redis = connect_redis(redis_settings)
        await redis.flushdb()
        config = default_exchange_config(
            ExchangeName.COINBASE, 1, rest_url=sim.rest_url(Venue.COINBASE)
        )
        limiter = SpacingLimiter(10.0)
        client = CoinbaseRestClient(config, limiter=limiter, clock_rate=SPEED)
        symbols = [p.symbol for p in sim.market.products(Venue.COINBASE)]
        backfill = StartupBackfill(
            client,
            CandleCache(redis, CacheSettings()),
            exchange_id=1,
            exchange_name="coinbase",
            candles_per_series=300 * pages,
        )
        report = await backfill.run(symbols, RUNTIME_TIMEFRAMES)
        requests = client.requests
        optimum = (requests - 1) / 10.0
        print(
            f"coinbase: {len(symbols)} symbols x 6 tf, {requests} requests, "
            f"{report.elapsed_s:.2f}s vs optimum {optimum:.2f}s "
            f"({report.elapsed_s / optimum:.3f}x), failures {len(report.failures)}, "
            f"throttled (429/401) answers {limiter.pauses}"
        )
        await client.aclose()
        await redis.aclose()


async def _binance(
    redis_settings: RedisSettings, pages: int, window_s: float | None, limit: int
) -> None:
    if window_s is not None:
        sim_limits.WINDOW_S = window_s
    async with running_sim(seed=1, speed=SPEED, start_ms=START_MS) as sim:
        redis = connect_redis(redis_settings)
        await redis.flushdb()
        await _configure(sim, weight_limit=limit)
        scale = 60.0 / (window_s or 60.0)
        config = default_exchange_config(
            ExchangeName.BINANCE, 2, rest_url=sim.rest_url(Venue.BINANCE)
        )
        limiter = WeightWindowLimiter([WindowRule(6000, 60.0)], time_scale=scale)
        client = BinanceRestClient(config, limiter=limiter, clock_rate=SPEED)
        symbols = [p.symbol for p in sim.market.products(Venue.BINANCE)]
        backfill = StartupBackfill(
            client,
            CandleCache(redis, CacheSettings()),
            exchange_id=2,
            exchange_name="binance",
            candles_per_series=1000 * pages,
        )
        started = time.monotonic()
        report = await backfill.run(symbols, RUNTIME_TIMEFRAMES)
        elapsed = time.monotonic() - started
        stats = await _stats(sim)
        weight = limiter.weight_granted
        window = window_s or 60.0
        optimum = ((int(weight) - 1) // limit) * window
        label = f"window {window:g}s, limit {limit}"
        ratio = f"{elapsed / optimum:.3f}x" if optimum else "limit not binding"
        print(
            f"binance ({label}): {len(symbols)} symbols x 6 tf, {client.requests} requests, "
            f"weight {weight:g}, {elapsed:.2f}s vs optimum {optimum:.2f}s ({ratio}), "
            f"429s {stats['http_429']}, 418s {stats['http_418']}, failures {len(report.failures)}"
        )
        await client.aclose()
        await redis.aclose()


def main() -> None:
    """Run the three scenarios and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=1, help="pages per series (12 = 200 symbols)")
    parser.add_argument("--window-s", type=float, default=6.0, help="shortened Binance window")
    args = parser.parse_args()
    with private_redis() as redis:
        asyncio.run(_coinbase(redis.settings, args.pages))
        asyncio.run(_binance(redis.settings, args.pages, None, 6000))
        asyncio.run(_binance(redis.settings, args.pages, args.window_s, 100))


if __name__ == "__main__":
    main()
