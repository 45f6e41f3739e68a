"""Memory soak of one real `livermore-worker` process streaming from the simulator (SPEC 13).

Run: `uv run python bench/soak_worker.py [--minutes 3] [--every 10] [--symbols 17] [--speed 60]
[--exchange coinbase|binance|binance_us]`; the SPEC's soak is `--minutes 30`.

Everything is private to the run: a redis-server on a free port, a throwaway PostgreSQL database
(created, `livermore-db upgrade`d through `LIVERMORE_DATABASE_NAME`, dropped at the end), a
`livermore-sim` process at `--speed` (sim seconds per real second) listing `--symbols` assets,
which seeds them as the exchange's Tier 1 rows. Then `livermore-worker --exchange X --autostart`
runs (backfill, warm-up, stream, indicators, alerts) and the RSS of the worker and of the
simulator (the baseline: a process serving the same stream) is sampled every `--every` seconds.
Prints every sample, first/last RSS and the least-squares slope (MiB/min) over the second half.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
from _common import private_redis, slope_per_minute, throwaway_database
from sqlmodel import delete

from livermore_cache import channels
from livermore_cache.client import connect_redis
from livermore_cache.status import StatusStore
from livermore_exchange_sim.assets import ASSETS, Venue, quote_of, venue_symbol
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import ConnectionState
from livermore_schema.settings import DatabaseSettings, RedisSettings
from livermore_schema.tables import ExchangeSymbol

EXCHANGE_IDS = {Venue.COINBASE: 1, Venue.BINANCE: 2, Venue.BINANCE_US: 3}
Counts = dict[str, int]


def store_env(redis: RedisSettings, database: DatabaseSettings) -> dict[str, str]:
    """The environment of a child process: private Redis and database, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env |= {
        "LIVERMORE_REDIS_HOST": redis.host,
        "LIVERMORE_REDIS_PORT": str(redis.port),
        "LIVERMORE_DATABASE_HOST": database.host,
        "LIVERMORE_DATABASE_PORT": str(database.port),
        "LIVERMORE_DATABASE_USER": database.user,
        "LIVERMORE_DATABASE_NAME": database.name,
    }
    return env


async def start_sim(
    bases: list[str], speed: float, *options: str
) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """Start `livermore-sim` on a free port; return it and the env overrides it printed."""
    args = ["-m", "livermore_exchange_sim.cli", "--port", "0", "--speed", str(speed), *options]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, "--symbols", *bases, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    env: dict[str, str] = {}
    async with asyncio.timeout(30):
        while "LIVERMORE_DISCORD_WEBHOOK_URL" not in env:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise SystemExit("livermore-sim exited before printing its URLs")
            name, _, value = line.strip().partition("=")
            env[name] = value
    return proc, env


async def seed_symbols(database: DatabaseSettings, venue: Venue, bases: list[str]) -> list[str]:
    """Make `bases` the exchange's active Tier 1 symbols (volume ranks 1..n)."""
    engine = create_async_engine(database)
    exchange_id = EXCHANGE_IDS[venue]
    symbols = [venue_symbol(venue, base) for base in bases]
    try:
        async with async_session_factory(engine)() as session:
            await session.exec(delete(ExchangeSymbol))
            for rank, (base, symbol) in enumerate(zip(bases, symbols, strict=True), start=1):
                session.add(
                    ExchangeSymbol(
                        exchange_id=exchange_id,
                        symbol=symbol,
                        base_currency=base,
                        quote_currency=quote_of(venue),
                        volume_rank=rank,
                        is_active=True,
                    )
                )
            await session.commit()
    finally:
        await engine.dispose()
    return symbols


async def count_messages(settings: RedisSettings, counts: Counts) -> None:
    """Count candle closes and alerts the worker publishes (proof that it is working)."""
    redis = connect_redis(settings)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(channels.candle_close_pattern(), channels.ALL_ALERTS_PATTERN)
    try:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None:
                continue
            kind = "alerts" if message["pattern"] == channels.ALL_ALERTS_PATTERN else "closes"
            counts[kind] += 1
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await redis.aclose()


async def wait_connected(
    settings: RedisSettings, exchange_id: int, worker: asyncio.subprocess.Process, within_s: float
) -> float:
    """Poll the worker's status (an external process) until `connected`; return seconds taken."""
    redis = connect_redis(settings)
    began = time.monotonic()
    try:
        while True:
            status = await StatusStore(redis).read(exchange_id)
            if status is not None and status.connection_state is ConnectionState.CONNECTED:
                return time.monotonic() - began
            if status is not None and status.connection_state is ConnectionState.ERROR:
                raise SystemExit(f"worker start failed: {status.error}")
            if worker.returncode is not None:
                raise SystemExit(f"worker exited with {worker.returncode} before connecting")
            if time.monotonic() - began > within_s:
                raise SystemExit(f"worker not connected after {within_s:.0f} s: {status}")
            await asyncio.sleep(0.2)  # polling another process's state
    finally:
        await redis.aclose()


@contextlib.asynccontextmanager
async def running_worker(
    venue: Venue, env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `livermore-worker --exchange X --autostart`; SIGTERM it (clean stop) afterwards."""
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "livermore_worker", "--exchange", venue.value, "--autostart"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        print(f"worker exit code {proc.returncode} (0 = clean stop); log {log}")


def mib(process: psutil.Process) -> float:
    """RSS of a process in MiB."""
    return float(process.memory_info().rss) / 2**20


def summarize(name: str, samples: list[tuple[float, float]]) -> None:
    """Print first/last RSS and the slope over the second half of the samples."""
    half = samples[len(samples) // 2 :]
    slope = slope_per_minute(half)
    print(
        f"{name:<10} RSS first {samples[0][1]:7.1f} MiB, last {samples[-1][1]:7.1f} MiB, "
        f"max {max(v for _, v in samples):7.1f} MiB; slope over second half "
        f"({len(half)} samples) {slope:+.2f} MiB/min"
    )


async def sample(
    worker: psutil.Process, sim: psutil.Process, args: argparse.Namespace, counts: Counts
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Sample both RSS every `--every` seconds for `--minutes`; print each sample."""
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    columns = ("wall s", 7), ("sim min", 8), ("worker MiB", 11), ("sim MiB", 8), ("closes", 8)
    print(" ".join(f"{name:>{width}}" for name, width in columns), f"{'alerts':>7}")
    began = time.monotonic()
    while True:
        elapsed = time.monotonic() - began
        ours.append((elapsed, mib(worker)))
        theirs.append((elapsed, mib(sim)))
        print(
            f"{elapsed:7.0f} {elapsed * args.speed / 60:8.0f} {ours[-1][1]:11.1f} "
            f"{theirs[-1][1]:8.1f} {counts['closes']:8d} {counts['alerts']:7d}",
            flush=True,
        )
        if elapsed >= args.minutes * 60:
            return ours, theirs
        await asyncio.sleep(min(args.every, args.minutes * 60 - elapsed))  # sampling period


async def soak(args: argparse.Namespace, redis: RedisSettings, database: DatabaseSettings) -> None:
    """Start the sim and the worker, sample memory, stop both."""
    venue = Venue(args.exchange)
    bases = [asset.base for asset in ASSETS[: args.symbols]]
    env = store_env(redis, database)
    symbols = await seed_symbols(database, venue, bases)
    sim_proc, sim_env = await start_sim(bases, args.speed)
    counts: Counts = {"closes": 0, "alerts": 0}
    counter = asyncio.get_running_loop().create_task(count_messages(redis, counts))
    env |= {k: v for k, v in sim_env.items() if k != "LIVERMORE_DISCORD_WEBHOOK_URL"}
    env |= {
        "LIVERMORE_EXCHANGE_CLOCK_RATE": str(args.speed),
        "LIVERMORE_BACKFILL_CANDLES": str(args.backfill),
        "LIVERMORE_LOG_JSON": "true",
        "LIVERMORE_LOG_LEVEL": "INFO",
    }
    log = Path(tempfile.mkdtemp(prefix="livermore-soak-")) / f"worker-{venue.value}.log"
    try:
        async with running_worker(venue, env, log) as worker:
            took = await wait_connected(redis, EXCHANGE_IDS[venue], worker, args.start_timeout)
            print(
                f"{venue.value}: {len(symbols)} symbols x 6 timeframes, sim speed {args.speed}x;"
                f" worker connected after {took:.1f} s (backfill {args.backfill} bars/series)"
            )
            ours, theirs = await sample(
                psutil.Process(worker.pid), psutil.Process(sim_proc.pid), args, counts
            )
    finally:
        counter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await counter
        sim_proc.terminate()
        await sim_proc.wait()
    summarize("worker", ours)
    summarize("sim (base)", theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--symbols", type=int, default=len(ASSETS), help=f"<= {len(ASSETS)}")
    parser.add_argument("--speed", type=float, default=60.0, help="sim seconds per real second")
    parser.add_argument("--exchange", default="binance", choices=[v.value for v in Venue])
    parser.add_argument("--backfill", type=int, default=100, help="closed bars per series")
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args()
    if not 1 <= args.symbols <= len(ASSETS):
        parser.error(f"--symbols must be 1..{len(ASSETS)} (the simulator's universe)")
    with private_redis() as server, throwaway_database(DatabaseSettings()) as database:
        env = store_env(server.settings, database)
        upgrade = [sys.executable, "-m", "livermore_schema.cli", "upgrade"]
        subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
        asyncio.run(soak(args, server.settings, database))


if __name__ == "__main__":
    main()
