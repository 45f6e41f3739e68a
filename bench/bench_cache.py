"""Candle cache write throughput: single writes vs `write_many`, against plain ZADD (SPEC 13).

Run: `uv run python bench/bench_cache.py [--candles 20000] [--symbols 50] [--batch 500]`.
Starts a private redis-server on a free port (never touches the configured Redis), then times,
in one run and on one connection pool:

* baseline: plain `ZADD` one at a time, and pipelined in batches (no rules, no trimming);
* `CandleCache.write` one at a time (Lua script via EVALSHA: replacement rules + trim);
* `CandleCache.write_many` in batches (one script call per series per batch, pipelined).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

STEP_MS = 300_000


def make_candles(count: int, symbols: int) -> list[Candle]:
    out = []
    for index in range(count):
        price = 100.0 + (index % 97) * 0.01
        open_time = (index // symbols) * STEP_MS
        out.append(
            Candle(
                exchange_id=1,
                exchange="coinbase",
                symbol=f"S{index % symbols}-USD",
                timeframe=Timeframe.M5,
                open_time=open_time,
                close_time=open_time + STEP_MS - 1,
                open=price,
                high=price + 0.5,
                low=price - 0.5,
                close=price,
                volume=3.0,
                closed=True,
                sequence=index,
                source=CandleSource.WS,
            )
        )
    return out


def start_redis() -> tuple[subprocess.Popen[bytes], int, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    workdir = tempfile.mkdtemp(prefix="livermore-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port, workdir


async def wait_ready(redis: Redis) -> None:
    async with asyncio.timeout(10):
        while True:
            try:
                await redis.ping()
                return
            except OSError:
                await asyncio.sleep(0.05)  # polling a process we just spawned


async def timed(
    redis: Redis, label: str, count: int, run: Callable[[], Awaitable[object]]
) -> float:
    await redis.flushdb()
    start = time.perf_counter()
    await run()
    rate = count / (time.perf_counter() - start)
    print(f"{label:<44} {rate:>12,.0f} candles/s")
    return rate


async def bench(count: int, symbols: int, batch: int) -> None:
    proc, port, workdir = start_redis()
    redis = Redis(port=port, decode_responses=True)
    try:
        await wait_ready(redis)
        candles = make_candles(count, symbols)
        cache = CandleCache(redis, CacheSettings())

        async def zadd_single() -> None:
            for c in candles:
                await redis.zadd(
                    keys.candles_key(1, c.symbol, c.timeframe), {c.storage_json(): c.open_time}
                )

        async def zadd_pipelined() -> None:
            for start in range(0, count, batch):
                pipe = redis.pipeline(transaction=False)
                for c in candles[start : start + batch]:
                    pipe.zadd(
                        keys.candles_key(1, c.symbol, c.timeframe), {c.storage_json(): c.open_time}
                    )
                await pipe.execute()

        async def cache_single() -> None:
            for c in candles:
                await cache.write(c)

        async def cache_many() -> None:
            for start in range(0, count, batch):
                await cache.write_many(candles[start : start + batch])

        print(f"{count} closed 5m candles over {symbols} series, batch {batch}, retention 1000")
        base_single = await timed(redis, "baseline ZADD, one at a time", count, zadd_single)
        base_pipe = await timed(redis, "baseline ZADD, pipelined", count, zadd_pipelined)
        single = await timed(redis, "CandleCache.write, one at a time", count, cache_single)
        many = await timed(redis, "CandleCache.write_many", count, cache_many)
        stored = sum(
            [
                await redis.zcard(keys.candles_key(1, f"S{i}-USD", Timeframe.M5))
                for i in range(symbols)
            ]
        )
        print(f"stored after write_many: {stored} (expected {min(count, symbols * 1000)})")
        print(f"write vs ZADD one at a time       : {single / base_single:6.2f}x")
        print(f"write_many vs ZADD pipelined      : {many / base_pipe:6.2f}x")
        print(f"write_many vs write one at a time : {many / single:6.2f}x")
    finally:
        await redis.aclose()
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=20_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(bench(args.candles, args.symbols, args.batch))


if __name__ == "__main__":
    main()
