"""Helpers shared by bench/bench_close_to_alert.py and bench/soak_worker.py (not a benchmark).

A private redis-server on a free port (never the configured Redis), a throwaway PostgreSQL
database, percentiles and a memory slope.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from livermore_schema.settings import DatabaseSettings, RedisSettings


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class PrivateRedis:
    """A redis-server this benchmark started, and the settings pointing at it."""

    proc: subprocess.Popen[bytes]
    settings: RedisSettings


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    """Run a redis-server on a free loopback port (no persistence) for the block."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="livermore-bench-redis-")
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", workdir]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _redis_ready(port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("private redis-server did not start")
            time.sleep(0.05)  # polling a process we just spawned
        settings = RedisSettings(
            host="127.0.0.1", port=port, db=0, secret=None, tls=False, cluster=False
        )
        yield PrivateRedis(proc, settings)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def throwaway_database(server: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """Create an empty PostgreSQL database on `server` for the block, then drop it."""
    import psycopg

    name = f"livermore_bench_{uuid.uuid4().hex[:12]}"
    admin_url = server.url("postgres").render_as_string(hide_password=False)
    admin_dsn = admin_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.model_copy(update={"name": name})
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


def latency_line(label: str, values_ms: Sequence[float]) -> str:
    """Return `label: count p50 p90 p99 max` (milliseconds) as one printable line."""
    ordered = sorted(values_ms)
    if not ordered:
        return f"{label:<34} count 0"
    figures = "  ".join(
        f"{name} {percentile(ordered, q):7.3f}"
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    )
    return f"{label:<34} count {len(ordered):6d}  {figures}  max {ordered[-1]:7.3f} ms"


def slope_per_minute(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of `(seconds, value)` samples, in value per minute."""
    if len(samples) < 2:
        return float("nan")
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if var == 0:
        return float("nan")
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 60.0
