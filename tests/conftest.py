"""End-to-end fixtures: the simulator in-process, worker processes, seeded symbols, event recorders.

Workers are real `python -m livermore_worker` processes whose environment points at the session's
private Redis (`redis_settings`), the session's test database (`pg_settings`) and the simulator.
Waiting is on lifecycle events, responses and status with deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from sqlalchemy import delete
from sqlmodel import col

from livermore_cache import channels
from livermore_cache.pubsub import Subscription
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings, RedisSettings
from livermore_schema.status import LifecycleEvent
from livermore_schema.tables import ExchangeSymbol

from .browser import binance_sim, page  # noqa: F401  (fixtures shared by the browser tests)

SIM_SPEED = 60.0
"""One simulated minute per real second: 1m bars close every second."""
COINBASE, BINANCE = 1, 2
SYMBOLS: dict[int, tuple[str, ...]] = {
    COINBASE: ("BTC-USD", "ETH-USD"),
    BINANCE: ("BTCUSDT", "ETHUSDT"),
}

M = TypeVar("M", bound=BaseModel)


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    """A simulator at `SIM_SPEED` listing BTC, ETH and SOL on every venue."""
    async with running_sim(seed=11, speed=SIM_SPEED, symbols=["BTC", "ETH", "SOL"]) as running:
        yield running


@pytest.fixture
async def seeded_symbols(
    pg_settings: DatabaseSettings,
) -> AsyncIterator[dict[int, tuple[str, ...]]]:
    """Tier 1 rows (volume ranks 1..n) for Coinbase and Binance, removed afterwards."""
    engine = create_async_engine(pg_settings)
    sessions = async_session_factory(engine)
    async with sessions() as session:
        await session.exec(delete(ExchangeSymbol))
        for exchange_id, symbols in SYMBOLS.items():
            for rank, symbol in enumerate(symbols, start=1):
                base = symbol.split("-")[0].removesuffix("USDT")
                quote = "USDT" if symbol.endswith("USDT") else "USD"
                session.add(
                    ExchangeSymbol(
                        exchange_id=exchange_id,
                        symbol=symbol,
                        base_currency=base,
                        quote_currency=quote,
                        volume_rank=rank,
                        is_active=True,
                    )
                )
        await session.commit()
    try:
        yield SYMBOLS
    finally:
        async with sessions() as session:
            await session.exec(
                delete(ExchangeSymbol).where(col(ExchangeSymbol.exchange_id).in_(list(SYMBOLS)))
            )
            await session.commit()
        await engine.dispose()


def worker_env(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, sim_env: dict[str, str] | None
) -> dict[str, str]:
    """The environment of a worker process pointing at the test stores and the simulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVERMORE_")}
    env.update(
        {
            "LIVERMORE_REDIS_HOST": redis_settings.host,
            "LIVERMORE_REDIS_PORT": str(redis_settings.port),
            "LIVERMORE_REDIS_DB": str(redis_settings.db),
            "LIVERMORE_REDIS_CLUSTER": str(redis_settings.cluster).lower(),
            "LIVERMORE_REDIS_CLUSTER_NODES": redis_settings.cluster_nodes,
            "LIVERMORE_DATABASE_HOST": pg_settings.host,
            "LIVERMORE_DATABASE_PORT": str(pg_settings.port),
            "LIVERMORE_DATABASE_USER": pg_settings.user,
            "LIVERMORE_DATABASE_NAME": pg_settings.name,
            "LIVERMORE_HEARTBEAT_INTERVAL_S": "1",
            "LIVERMORE_BACKFILL_CANDLES": "60",
            "LIVERMORE_EXCHANGE_CLOCK_RATE": str(SIM_SPEED),
            "LIVERMORE_LOG_JSON": "true",
            "LIVERMORE_LOG_LEVEL": "INFO",
        }
    )
    env.update({k: v for k, v in (sim_env or {}).items() if k != "LIVERMORE_DISCORD_WEBHOOK_URL"})
    return env


@dataclass
class WorkerProcess:
    """A running `livermore-worker` process and its log file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def terminate(self, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    async def wait_exit(self, within_s: float) -> int:
        """Return the exit code once the process ended (polling an external process)."""
        deadline = time.monotonic() + within_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"worker still running after {within_s}s:\n{self.tail()}")
            await asyncio.sleep(0.05)
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        """Return the last lines of the worker's output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _spawner(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def spawn(
        exchange: str, *args: str, sim: RunningSim | None = None, **extra_env: str
    ) -> WorkerProcess:
        env = worker_env(redis_settings, pg_settings, sim.env if sim else None)
        env.update(extra_env)
        log_path = tmp_path / f"worker-{exchange}-{len(started)}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "livermore_worker", "--exchange", exchange, *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProcess(proc, log_path)
        started.append(worker)
        return worker

    try:
        yield spawn
    finally:
        for worker in started:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)


@pytest.fixture
def spawn_worker(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes; every one still alive at teardown is killed."""
    with _spawner(redis_settings, pg_settings, tmp_path) as spawn:
        yield spawn


@pytest.fixture
def spawn_cluster_worker(
    redis_cluster_settings: RedisSettings, pg_settings: DatabaseSettings, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes on the session's Redis Cluster; killed at teardown if alive."""
    with _spawner(redis_cluster_settings, pg_settings, tmp_path) as spawn:
        yield spawn


@dataclass
class ApiProcess:
    """A running `livermore-api` process serving on `base_url`, and its log file."""

    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    async def wait_ready(self, within_s: float) -> None:
        """Return once `/health` answers at all (polling an external process)."""
        import aiohttp

        deadline = time.monotonic() + within_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if self.proc.poll() is not None:
                    raise AssertionError(f"livermore-api exited:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.base_url}/health"):
                        return
                if time.monotonic() > deadline:
                    raise AssertionError(f"livermore-api not serving after {within_s}s")
                await asyncio.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        """Return the last lines of the api's output."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def spawn_api(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, tmp_path: Path
) -> Iterator[Callable[..., ApiProcess]]:
    """Start `livermore-api` processes on free ports; every one still alive at teardown is ended."""
    started: list[ApiProcess] = []

    def spawn(sim: RunningSim | None = None, **extra_env: str) -> ApiProcess:
        env = worker_env(redis_settings, pg_settings, sim.env if sim else None)
        env.update(extra_env)
        port = _free_port()
        log_path = tmp_path / f"api-{len(started)}.log"
        with log_path.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "livermore_api", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        api = ApiProcess(proc, f"http://127.0.0.1:{port}", log_path)
        started.append(api)
        return api

    yield spawn
    for api in started:
        if api.proc.poll() is None:
            api.proc.terminate()
            try:
                api.proc.wait(10)
            except subprocess.TimeoutExpired:
                api.proc.kill()
                api.proc.wait(10)


@dataclass
class Recorder(Generic[M]):
    """Collects every message of a subscription; `wait_for` returns the first match."""

    items: list[tuple[str, M]] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, channel: str, item: M) -> None:
        """Record one message."""
        self.items.append((channel, item))
        self._changed.set()

    async def wait_for(self, predicate: Callable[[M], bool], within_s: float, what: str = "") -> M:
        """Return the first recorded item matching `predicate`, waiting up to `within_s`."""
        try:
            async with asyncio.timeout(within_s):
                while True:
                    for _, item in self.items:
                        if predicate(item):
                            return item
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [repr(i)[:200] for _, i in self.items[-8:]]
            raise AssertionError(
                f"timed out waiting for {what or predicate}; last: {seen}"
            ) from None


async def _recording(
    redis: Redis | RedisCluster, model: type[M], *, patterns: Sequence[str]
) -> AsyncIterator[Recorder[M]]:
    """Subscribe (confirmed before returning) and record messages in the background."""
    recorder: Recorder[M] = Recorder()
    async with Subscription(redis, model=model, patterns=patterns) as sub:

        async def pump() -> None:
            async for channel, item in sub:
                recorder.add(channel, item)

        task = asyncio.get_running_loop().create_task(pump())
        try:
            yield recorder
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture
async def lifecycle(redis: Redis) -> AsyncIterator[Recorder[LifecycleEvent]]:
    """Every lifecycle event of every exchange."""
    async for recorder in _recording(
        redis, LifecycleEvent, patterns=[channels.lifecycle_pattern()]
    ):
        yield recorder


@pytest.fixture
async def cluster_lifecycle(redis_cluster: RedisCluster) -> AsyncIterator[Recorder[LifecycleEvent]]:
    """Every lifecycle event of every exchange, on the session's Redis Cluster."""
    async for recorder in _recording(
        redis_cluster, LifecycleEvent, patterns=[channels.lifecycle_pattern()]
    ):
        yield recorder


@pytest.fixture
async def cluster_alerts(redis_cluster: RedisCluster) -> AsyncIterator[Recorder[AlertEvent]]:
    """Every alert of every exchange, on the session's Redis Cluster."""
    async for recorder in _recording(
        redis_cluster, AlertEvent, patterns=[channels.ALL_ALERTS_PATTERN]
    ):
        yield recorder


@pytest.fixture
async def alerts(redis: Redis) -> AsyncIterator[Recorder[AlertEvent]]:
    """Every alert of every exchange (`channel:alerts:*`)."""
    async for recorder in _recording(redis, AlertEvent, patterns=[channels.ALL_ALERTS_PATTERN]):
        yield recorder


@pytest.fixture
def poll_until() -> Callable[[Callable[[], Any], float, str], Any]:
    """Poll a condition held outside this process (a worker's Redis writes) with a deadline."""
    return poll


async def poll(check: Callable[[], Any], within_s: float, what: str) -> Any:
    """Poll an async `check` until it returns a truthy value (for state outside this process)."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
