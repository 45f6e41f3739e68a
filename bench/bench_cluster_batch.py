"""A boundary's closed bars through `WriteBatch` on a Redis Cluster: grouped per node vs one by one.

Run: `uv run python bench/bench_cluster_batch.py [--bars 6000] [--rounds 3]`.
Starts a private 3-master cluster (no replicas) on free loopback ports, then, each round, flushes
one batch of `--bars` closed 5m bars (one `CANDLE_CLOSE` script each: write + close PUBLISH, as
the worker queues them at a boundary) plus one alert PUBLISH every 100 bars, through a worker's
fenced client (the guarded scripts). Timed in the same run: the batch as `flush` sends it (one
cluster pipeline per stretch between PUBLISHes, split per node by redis-py) and the baseline,
every command on its own (`flush` before per-node grouping).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import tempfile
import time

from bench_cache import make_candles

from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis
from livermore_cache.fence import LeaseFence
from livermore_cache.pubsub import Publisher
from livermore_schema.settings import CacheSettings, RedisSettings


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port < 55000 and port not in taken:
            try:
                with socket.socket() as bus:
                    bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port


def start_cluster() -> tuple[list[subprocess.Popen[bytes]], list[int], str]:
    binary = shutil.which("redis-server")
    if binary is None or shutil.which("redis-cli") is None:
        raise SystemExit("redis-server and redis-cli are needed")
    workdir = tempfile.mkdtemp(prefix="livermore-bench-cluster-")
    ports: list[int] = []
    for _ in range(3):
        ports.append(_free_port(set(ports)))
    procs = []
    for port in ports:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", f"{workdir}/nodes-{port}.conf", "--save", ""]
        args += ["--appendonly", "no", "--dir", workdir]
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
    return procs, ports, workdir


def _cluster_ok(port: int) -> bool:
    out = subprocess.run(
        ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True
    ).stdout
    return "cluster_state:ok" in out


def form(ports: list[int]) -> None:
    """Wait for the nodes, create the cluster, wait until every node says it is ok."""
    deadline = time.monotonic() + 30
    while not all(_ping(port) for port in ports):
        if time.monotonic() > deadline:
            raise SystemExit("the cluster nodes did not start")
        time.sleep(0.05)  # polling processes we just spawned
    nodes = [f"127.0.0.1:{port}" for port in ports]
    subprocess.run(["redis-cli", "--cluster", "create", *nodes, "--cluster-yes"], check=True,
                   capture_output=True)  # fmt: skip
    while not all(_cluster_ok(port) for port in ports):
        if time.monotonic() > deadline:
            raise SystemExit("the cluster did not form")
        time.sleep(0.1)


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def one_by_one(batch: WriteBatch) -> None:
    """Send what `batch` queued one command at a time (the baseline: `flush` before grouping)."""
    commands, batch._commands = batch._commands, []
    for script, args in commands:
        await batch._one(script, args)


async def bench(ports: list[int], bars: int, rounds: int) -> None:
    settings = RedisSettings(host="127.0.0.1", port=ports[0], cluster=True, secret=None)
    fence = LeaseFence(hold_s=5, scope="1")
    fence.extend(time.monotonic(), 3600, 0, epoch=1)
    redis = connect_redis(settings, fence=fence)
    cache, publisher = CandleCache(redis, CacheSettings()), Publisher(redis, CacheSettings())
    candles = make_candles(bars, bars)
    print(f"{bars} closed bars (CANDLE_CLOSE, guarded) + {bars // 100} PUBLISH, 3 masters")
    for round_ in range(rounds):
        timings = {}
        for label in ("one by one", "grouped per node"):
            await redis.flushall(target_nodes="primaries")  # type: ignore[call-arg]
            batch = cache.batch()
            for n, candle in enumerate(candles):
                cache.add_write(batch, candle, announce=publisher.close_channels(candle))
                if n % 100 == 99:
                    batch.add("PUBLISH", "bench:alerts", str(n))
            start = time.perf_counter()
            await (one_by_one(batch) if label == "one by one" else batch.flush())
            timings[label] = time.perf_counter() - start
        base, grouped = timings["one by one"], timings["grouped per node"]
        print(
            f"round {round_ + 1}: one by one {base * 1000:7.0f} ms, grouped per node"
            f" {grouped * 1000:7.0f} ms ({base / grouped:.1f}x)"
        )
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    procs, ports, workdir = start_cluster()
    try:
        form(ports)
        asyncio.run(bench(ports, args.bars, args.rounds))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
