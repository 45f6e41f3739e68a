"""Startup backfill against the simulator: zero 429s and time vs the rate-limit optimum (SPEC 13).

Run: `uv run python bench/bench_backfill.py [--symbols 200] [--limit 100] [--window-s 6]`.

Every run backfills `--symbols` real products (the simulator's 17 plus synthetic `AA1`...
listed with `extra_assets`) x the 6 runtime timeframes, 100 closed candles each (one page):

* Coinbase at its published 10 req/s: optimum = (requests - 1) / 10 s.
* Binance at its published 6000 weight per minute: 200 x 6 klines (weight 2) plus /time and
  exchangeInfo is ~2,421 weight, which fits inside one window, so the limit does not bind and
  there is no rate-limit optimum (the run is network/CPU bound); reported as such.
* Binance US at its published 1200 weight per minute: the same ~2,421 weight binds for real
  (optimum floor(2420 / 1200) = 2 windows = 120 s).
* Binance with the limit binding: the sim's REQUEST_WEIGHT rule is set to `--limit` per
  `--window-s` seconds (published in exchangeInfo and `X-MBX-USED-WEIGHT-<n>S`); our limiter
  starts from the default 6000/min and takes the rule from exchangeInfo, as in production.
  Optimum for a rolling window of L: floor((W - 1) / L) windows (the first L go at once).

429s are the simulator's own counters (`/_sim/stats`), not the client's view.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
from _common import private_redis

from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis
from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.backfill import StartupBackfill
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.ratelimit import SpacingLimiter, WeightWindowLimiter, WindowRule
from livermore_exchange_sim.assets import ASSETS
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import RUNTIME_TIMEFRAMES, ExchangeName
from livermore_schema.settings import CacheSettings, RedisSettings

SPEED = 60.0
START_MS = 1_767_225_600_000 + 3_600_000


async def _stats(sim: RunningSim, venue: Venue) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sim.rest_url(venue)}/_sim/stats") as response,
    ):
        stats: dict[str, Any] = await response.json()
        return stats


async def _configure(sim: RunningSim, venue: Venue, **fields: Any) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.rest_url(venue)}/_sim/config", json=fields) as response,
    ):
        if response.status != 200:
            raise SystemExit(f"sim config refused: {await response.text()}")


def _sim(symbols: int) -> Any:
    extra = max(0, symbols - len(ASSETS))
    return running_sim(seed=1, speed=SPEED, start_ms=START_MS, extra_assets=extra)


async def _coinbase(redis_settings: RedisSettings, count: int) -> None:
    async with _sim(count) as sim:
        redis = connect_redis(redis_settings)
        await redis.flushdb()
        config = default_exchange_config(
            ExchangeName.COINBASE, 1, rest_url=sim.rest_url(Venue.COINBASE)
        )
        client = CoinbaseRestClient(config, limiter=SpacingLimiter(10.0), clock_rate=SPEED)
        symbols = [p.symbol for p in sim.market.products(Venue.COINBASE)][:count]
        backfill = StartupBackfill(
            client, CandleCache(redis, CacheSettings()), exchange_id=1, exchange_name="coinbase"
        )
        report = await backfill.run(symbols, RUNTIME_TIMEFRAMES)
        stats = await _stats(sim, Venue.COINBASE)
        optimum = (client.requests - 1) / 10.0
        print(
            f"coinbase (10 req/s): {len(symbols)} symbols x 6 tf, {client.requests} requests, "
            f"{report.elapsed_s:.2f}s vs optimum {optimum:.2f}s "
            f"({report.elapsed_s / optimum:.3f}x), 429s {stats['http_429']}, "
            f"failures {len(report.failures)}",
            flush=True,
        )
        await client.aclose()
        await redis.aclose()


async def _binance(
    redis_settings: RedisSettings,
    count: int,
    limit: int | None,
    window_s: int,
    name: ExchangeName = ExchangeName.BINANCE,
) -> None:
    venue = Venue(name.value)
    async with _sim(count) as sim:
        redis = connect_redis(redis_settings)
        await redis.flushdb()
        if limit is not None:
            await _configure(sim, venue, weight_limit=limit, weight_window_s=window_s)
        config = default_exchange_config(name, 2, rest_url=sim.rest_url(venue))
        published = config.limits.rest_weight_per_minute or 6000
        limiter = WeightWindowLimiter([WindowRule(published, 60.0)])
        client = BinanceRestClient(config, limiter=limiter, clock_rate=SPEED)
        symbols = [p.symbol for p in sim.market.products(venue)][:count]
        backfill = StartupBackfill(
            client, CandleCache(redis, CacheSettings()), exchange_id=2, exchange_name=name.value
        )
        report = await backfill.run(symbols, RUNTIME_TIMEFRAMES)
        stats = await _stats(sim, venue)
        weight = int(limiter.weight_granted)
        rule = limiter.rules[0]
        label = f"{rule.limit:g} weight per {rule.window_s:g}s from exchangeInfo"
        if weight <= rule.limit:
            verdict = "limit not binding (fits one window): no rate-limit optimum"
        else:
            optimum = ((weight - 1) // int(rule.limit)) * rule.window_s
            verdict = f"optimum {optimum:.2f}s ({report.elapsed_s / optimum:.3f}x)"
        print(
            f"{name.value} ({label}): {len(symbols)} symbols x 6 tf, {client.requests} requests, "
            f"weight {weight}, {report.elapsed_s:.2f}s, {verdict}, 429s {stats['http_429']}, "
            f"418s {stats['http_418']}, failures {len(report.failures)}",
            flush=True,
        )
        await client.aclose()
        await redis.aclose()


def main() -> None:
    """Run the four scenarios and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=200, help="products to backfill")
    parser.add_argument("--limit", type=int, default=100, help="binding Binance weight limit")
    parser.add_argument("--window-s", type=int, default=6, help="binding Binance window (s)")
    parser.add_argument(
        "--only",
        choices=("coinbase", "binance", "binance_us", "binding"),
        help="run one scenario",
    )
    args = parser.parse_args()
    with private_redis() as redis:
        if args.only in (None, "coinbase"):
            asyncio.run(_coinbase(redis.settings, args.symbols))
        if args.only in (None, "binance"):
            asyncio.run(_binance(redis.settings, args.symbols, None, 60))
        if args.only in (None, "binance_us"):
            asyncio.run(_binance(redis.settings, args.symbols, None, 60, ExchangeName.BINANCE_US))
        if args.only in (None, "binding"):
            asyncio.run(_binance(redis.settings, args.symbols, args.limit, args.window_s))


if __name__ == "__main__":
    main()
