"""A peer side by side: cryptofeed and a real `livermore-worker` on one simulated Binance stream.

Run: `uv run python bench/bench_peer.py [--symbols 200] [--speed 60] [--seconds 60]`.

One `livermore-sim` process (`--symbols` synthetic assets `AA1`..., no scenarios, `--speed`
sim seconds per real second) serves both consumers the same streams: every symbol's kline stream
of the six timeframes (partials every 2 simulated seconds, one closing frame per bar) plus its
`@miniTicker`. One after the other, on the same private redis-server:

1. **cryptofeed** (its release from PyPI, in the environment of `bench/peer/`, synced here with
   `uv sync --frozen --project bench/peer`): six Binance feeds pointed at the simulator's URLs,
   closed candles to its `CandlesRedis` backend, tickers to `TickerRedis`
   (`bench/peer/run_cryptofeed.py`);
2. **Livermore**: `python -m livermore_worker --exchange binance --autostart` on a throwaway
   database holding the symbols as Tier 1 rows: backfill, then the real adapter -> pipeline ->
   closed-bar stage (candle writes and publishes, MACD-V, alert evaluation and publishes) and the
   ticker coalescer. Its counters are read from its `/metrics`.

Each consumer is measured over the same `--seconds` window after `--warmup` seconds of streaming:
frames handled per second, CPU seconds of the consumer process per 1,000 frames (psutil), the
Redis server's CPU, and what the simulator offered in the window (its own frame counters, the
baseline: a consumer can handle no more than that). The load average is printed with each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil  # type: ignore[import-untyped]
from _common import free_port, private_redis, throwaway_database
from soak_worker import running_worker, seed_symbols, start_sim, store_env, wait_connected
from sqlalchemy import text

from livermore_exchange_sim.assets import Venue, venue_symbol
from livermore_schema.db import create_async_engine
from livermore_schema.settings import DatabaseSettings, RedisSettings

PEER = Path(__file__).resolve().parent / "peer"


@dataclass(frozen=True, slots=True)
class Sample:
    """Counters of one consumer at one moment."""

    at: float
    messages: int
    closed: int
    alerts: int
    cpu_s: float
    redis_cpu_s: float
    offered: tuple[int, int]


@dataclass(frozen=True, slots=True)
class Result:
    """One consumer's window."""

    name: str
    load: float
    first: Sample
    last: Sample

    def line(self) -> str:
        """Return the printable figures of the window."""
        seconds = self.last.at - self.first.at
        frames = self.last.messages - self.first.messages
        cpu = self.last.cpu_s - self.first.cpu_s
        redis = self.last.redis_cpu_s - self.first.redis_cpu_s
        offered = self.last.offered[0] - self.first.offered[0]
        finals = self.last.offered[1] - self.first.offered[1]
        return (
            f"{self.name:<10} load {self.load:5.2f} | {frames / seconds:9,.0f} msg/s "
            f"(sim offered {offered / seconds:9,.0f}/s) | {self.cpu_per_1k():6.3f} CPU-s per "
            f"1,000 msgs ({cpu:5.1f} s in {seconds:4.1f} s: {frames / cpu:7,.0f} msgs per "
            f"CPU-s) | Redis {redis * 1000 / frames:6.3f}"
            f" CPU-s per 1,000 | closed bars {self.last.closed - self.first.closed:6d} "
            f"(sim sent {finals}), "
            f"alerts {self.last.alerts - self.first.alerts}"
        )

    def rate(self) -> float:
        """Frames handled per second."""
        return (self.last.messages - self.first.messages) / (self.last.at - self.first.at)

    def cpu_per_1k(self) -> float:
        """CPU seconds of the consumer process per 1,000 frames."""
        frames = self.last.messages - self.first.messages
        return (self.last.cpu_s - self.first.cpu_s) * 1000 / max(1, frames)


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process so far."""
    times = process.cpu_times()
    return float(times.user + times.system)


async def offered(session: aiohttp.ClientSession, rest_url: str) -> tuple[int, int]:
    """Frames the simulator's Binance venue sent so far (all, closing frames)."""
    async with session.get(f"{rest_url}/_sim/stats") as response:
        stats = await response.json()
    return int(stats["ws_frames"]) + int(stats["final_frames"]), int(stats["final_frames"])


class PeerCounts:
    """The latest counter line the cryptofeed process printed."""

    def __init__(self) -> None:
        self.values = {"messages": 0, "candles": 0, "tickers": 0}

    async def follow(self, stream: asyncio.StreamReader) -> None:
        """Read counter lines until the process closes its stdout."""
        while line := await stream.readline():
            words = line.decode().split()
            self.values = {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}


@contextlib.asynccontextmanager
async def running_peer(
    sim_env: dict[str, str], redis: RedisSettings, symbols: list[str]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, PeerCounts]]:
    """Run bench/peer/run_cryptofeed.py in the peer environment; stop it afterwards."""
    python = PEER / ".venv" / "bin" / "python"
    args = ["--ws", sim_env["LIVERMORE_BINANCE_WS_URL"], "--rest"]
    args += [sim_env["LIVERMORE_BINANCE_REST_URL"], "--redis-port", str(redis.port)]
    proc = await asyncio.create_subprocess_exec(
        str(python), str(PEER / "run_cryptofeed.py"), *args, *symbols,
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    counts = PeerCounts()
    assert proc.stdout is not None
    reader = asyncio.get_running_loop().create_task(counts.follow(proc.stdout))
    try:
        yield proc, counts
    finally:
        proc.terminate()
        await proc.wait()
        await reader


async def measure(
    name: str, sample: Callable[[], Awaitable[Sample]], warmup: float, seconds: float
) -> Result:
    """Sample a consumer after `warmup` s of streaming, then again `seconds` later."""
    await asyncio.sleep(warmup)  # streaming at a steady rate before the window opens
    load = os.getloadavg()[0]
    first = await sample()
    await asyncio.sleep(seconds)  # the measured window
    result = Result(name, load, first, await sample())
    print(result.line(), flush=True)
    return result


async def wait_streaming(read: Callable[[], Awaitable[int]], within_s: float) -> None:
    """Poll a consumer's frame counter (another process) until frames flow."""
    deadline = time.monotonic() + within_s
    while await read() == 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"no frames after {within_s:.0f} s")
        await asyncio.sleep(0.2)  # polling another process


async def run_cryptofeed(args: argparse.Namespace, ctx: Context, bases: list[str]) -> Result:
    """Measure cryptofeed on the stream."""
    symbols = [f"{base}-USDT" for base in bases]
    async with running_peer(ctx.sim_env, ctx.redis, symbols) as (proc, counts):
        process = psutil.Process(proc.pid)

        async def sample() -> Sample:
            values = counts.values
            return Sample(
                time.monotonic(), values["messages"], values["candles"], 0,
                cpu_seconds(process), cpu_seconds(ctx.redis_process),
                await offered(ctx.http, ctx.rest_url),
            )  # fmt: skip

        async def frames() -> int:
            return counts.values["messages"]

        await wait_streaming(frames, 60)
        return await measure("cryptofeed", sample, args.warmup, args.seconds)


async def scrape(http: aiohttp.ClientSession, port: int) -> dict[str, int]:
    """Return the worker's Binance counters from its `/metrics`."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        body = await response.text()
    found = re.findall(r'^livermore_(\w+)_total\{exchange="binance"\} (\S+)$', body, re.M)
    return {name: int(float(value)) for name, value in found}


async def set_streams_per_connection(database: DatabaseSettings, streams: int) -> None:
    """Give the worker cryptofeed's connection layout (the simulator paces each connection)."""
    engine = create_async_engine(database)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE exchanges SET api_limits = coalesce(api_limits, '{}'::jsonb)"
                    " || jsonb_build_object('ws_streams_per_connection', CAST(:n AS int))"
                    " WHERE id = 2"
                ),
                {"n": streams},
            )
    finally:
        await engine.dispose()


async def run_livermore(
    args: argparse.Namespace, ctx: Context, bases: list[str], database: DatabaseSettings
) -> Result:
    """Measure a real worker on the stream."""
    await seed_symbols(database, Venue.BINANCE, bases)
    await set_streams_per_connection(database, args.streams_per_connection)
    port = free_port()
    env = store_env(ctx.redis, database) | {
        k: v for k, v in ctx.sim_env.items() if k != "LIVERMORE_DISCORD_WEBHOOK_URL"
    }
    env |= {
        "LIVERMORE_EXCHANGE_CLOCK_RATE": str(args.speed),
        "LIVERMORE_BACKFILL_CANDLES": str(args.backfill),
        "LIVERMORE_TIER1_LIMIT": str(len(bases)),
        "LIVERMORE_LOG_JSON": "true",
        "LIVERMORE_LOG_LEVEL": "INFO",
        "LIVERMORE_WORKER_METRICS_PORT": str(port),
    }
    log = Path(tempfile.mkdtemp(prefix="livermore-peer-")) / "worker-binance.log"
    async with running_worker(Venue.BINANCE, env, log) as worker:
        took = await wait_connected(ctx.redis, 2, worker, args.start_timeout)
        print(f"livermore: worker connected after {took:.1f} s (backfill {args.backfill})")
        process = psutil.Process(worker.pid)

        async def sample() -> Sample:
            counters = await scrape(ctx.http, port)
            return Sample(
                time.monotonic(), counters.get("exchange_messages", 0),
                counters.get("closed_bars", 0), counters.get("alerts", 0),
                cpu_seconds(process), cpu_seconds(ctx.redis_process),
                await offered(ctx.http, ctx.rest_url),
            )  # fmt: skip

        async def frames() -> int:
            return (await scrape(ctx.http, port)).get("exchange_messages", 0)

        await wait_streaming(frames, 60)
        return await measure("livermore", sample, args.warmup, args.seconds)


@dataclass(slots=True)
class Context:
    """What both phases share."""

    redis: RedisSettings
    redis_process: psutil.Process
    sim_env: dict[str, str]
    rest_url: str
    http: aiohttp.ClientSession


async def bench(
    args: argparse.Namespace, redis: RedisSettings, redis_pid: int, database: DatabaseSettings
) -> None:
    """Start the simulator, measure both consumers, print the comparison."""
    bases = [f"AA{n}" for n in range(1, args.symbols + 1)]
    extra = ("--extra-assets", str(args.symbols), "--no-scenarios")
    sim, sim_env = await start_sim(bases, args.speed, *extra)
    streams = args.symbols * 7
    print(
        f"stream: {args.symbols} symbols ({venue_symbol(Venue.BINANCE, bases[0])}...) x "
        f"(6 kline streams + miniTicker) = {streams} streams, sim speed {args.speed:g}x; "
        f"window {args.seconds:g} s after {args.warmup:g} s of streaming"
    )
    try:
        async with aiohttp.ClientSession() as http:
            rest_url = sim_env["LIVERMORE_BINANCE_REST_URL"]
            ctx = Context(redis, psutil.Process(redis_pid), sim_env, rest_url, http)
            peer = await run_cryptofeed(args, ctx, bases)
            ours = await run_livermore(args, ctx, bases, database)
    finally:
        sim.terminate()
        await sim.wait()
    print(
        f"ratio livermore / cryptofeed: msg/s {ours.rate() / peer.rate():.2f}x, "
        f"CPU per 1,000 msgs {ours.cpu_per_1k() / peer.cpu_per_1k():.2f}x "
        f"({'livermore ahead' if ours.cpu_per_1k() < peer.cpu_per_1k() else 'cryptofeed ahead'}"
        " on CPU per message); livermore also computes MACD-V and evaluates alerts"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--speed", type=float, default=60.0, help="sim seconds per real second")
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=30.0, help="streaming before the window")
    parser.add_argument("--backfill", type=int, default=100, help="worker: bars per series")
    parser.add_argument(
        "--streams-per-connection", type=int, default=200, help="worker (cryptofeed: 200)"
    )
    parser.add_argument("--start-timeout", type=float, default=600.0)
    args = parser.parse_args()
    sync = ["uv", "sync", "--frozen", "--project", str(PEER)]
    subprocess.run(sync, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with private_redis() as server, throwaway_database(DatabaseSettings()) as database:
        env = store_env(server.settings, database)
        upgrade = [sys.executable, "-m", "livermore_schema.cli", "upgrade"]
        subprocess.run(upgrade, env=env, check=True, stdout=subprocess.DEVNULL)
        asyncio.run(bench(args, server.settings, server.proc.pid, database))


if __name__ == "__main__":
    main()
