"""End to end across hosts made of network namespaces: Redis on one, the active worker on a second,
the standby on a third, all on one bridge (PostgreSQL and the simulator are reached through the
bridge from the root namespace). The active worker's link is cut (its veth down) for 10 s and for
30 s: the standby takes over within 10 s, the status names the live holder, and the old worker,
once its link is back, writes nothing after its lease deadline (counted with MONITOR per connection
name) and ends as a standby. Needs root (`ip netns`); skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import channels
from livermore_cache.pubsub import Subscription
from livermore_cache.status import StatusStore
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ConnectionState
from livermore_schema.settings import DatabaseSettings, RedisSettings
from livermore_schema.status import LifecycleEvent

from .conftest import Recorder, WorkerProcess, worker_env
from .test_worker_e2e_fencing import CommandLog, data_writes, fenced_writes

BINANCE = 2
LEASE_TTL_S = 3.0
"""The test workers' lease TTL (heartbeat 1 s): their deadline is at most this after a cut."""


def _netns_usable() -> bool:
    if shutil.which("ip") is None or os.geteuid() != 0:
        return False
    name = f"lmprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True).returncode == 0
    if made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return made


pytestmark = pytest.mark.skipif(not _netns_usable(), reason="needs root and ip netns")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Hosts:
    """Three namespaces (redis, active, standby) on a bridge; `gateway` is its root-side address."""

    def __init__(self) -> None:
        self.tag = f"{os.getpid() % 10000}{random.Random().randrange(100)}"
        self.net = f"10.231.{random.Random().randrange(1, 250)}"
        self.gateway = f"{self.net}.254"
        self.addr = {"r": f"{self.net}.1", "a": f"{self.net}.2", "s": f"{self.net}.3"}
        self.bridge = f"lmbr{self.tag}"

    def ns(self, role: str) -> str:
        """The namespace name of `role` (r, a, s)."""
        return f"lm{self.tag}{role}"

    def veth(self, role: str) -> str:
        """The interface of `role` inside its namespace."""
        return f"lv{self.tag}{role}"

    def up(self) -> None:
        """Create the bridge and the three hosts."""
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for role, addr in self.addr.items():
            ns, inner, outer = self.ns(role), self.veth(role), f"lp{self.tag}{role}"
            _ip("netns", "add", ns)
            _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
            _ip("link", "set", outer, "master", self.bridge)
            _ip("link", "set", outer, "up")
            _ip("link", "set", inner, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def down(self) -> None:
        """Remove everything `up` created."""
        for role in self.addr:
            subprocess.run(["ip", "netns", "del", self.ns(role)], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)

    def cut(self, role: str, connected: bool) -> None:
        """Take `role`'s link down (or up again)."""
        _ip("-n", self.ns(role), "link", "set", self.veth(role), "up" if connected else "down")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    """Three network namespaces on a bridge, removed afterwards."""
    made = Hosts()
    try:
        try:
            made.up()
        except subprocess.CalledProcessError as err:  # e.g. inside a chroot without netns mounts
            pytest.skip(f"network namespaces unusable here: {err.stderr.decode().strip()}")
        yield made
    finally:
        made.down()


async def _forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def tcp_forwarder(listen: str, port: int, target_port: int) -> AsyncIterator[None]:
    """Forward `listen:port` to 127.0.0.1:`target_port` (PostgreSQL only listens on loopback)."""

    writers: list[asyncio.StreamWriter] = []
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            writers.append(up_writer)
            await asyncio.gather(_forward(reader, up_writer), _forward(up_reader, writer))
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(serve, listen, port)
    try:
        yield
    finally:
        server.close()
        # Connections still open (a process that outlived the test) are closed here, not left
        # to the garbage collector.
        for writer in writers:
            writer.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()


@pytest.fixture
def redis_host(hosts: Hosts) -> Iterator[RedisSettings]:
    """redis-server inside the redis namespace."""
    workdir = tempfile.mkdtemp(prefix="livermore-netns-")
    proc = subprocess.Popen(
        [
            *("ip", "netns", "exec", hosts.ns("r"), "redis-server"),
            *("--bind", hosts.addr["r"], "--port", "6379", "--protected-mode", "no"),
            *("--save", "", "--appendonly", "no", "--dir", workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-h", hosts.addr["r"], "ping"], capture_output=True, text=True
            ).stdout.strip()
            != "PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server in its namespace did not start")
            time.sleep(0.1)  # polling a process we just spawned
        yield RedisSettings(host=hosts.addr["r"], port=6379, retry_budget_s=0)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _spawn(
    hosts: Hosts, role: str, env: dict[str, str], log_path: Path, *args: str
) -> WorkerProcess:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", hosts.ns(role), sys.executable),
                *("-m", "livermore_worker", "--exchange", "binance", *args),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return WorkerProcess(proc, log_path)


async def test_cutting_the_active_hosts_link_fences_it_and_the_standby_takes_over(
    seeded_symbols: dict[int, tuple[str, ...]],
    hosts: Hosts,
    redis_host: RedisSettings,
    pg_settings: DatabaseSettings,
    tmp_path: Path,
    poll_until: Any,
) -> None:
    redis = Redis(host=redis_host.host, port=6379, decode_responses=True)
    statuses = StatusStore(redis)
    workers: list[WorkerProcess] = []
    figures: list[str] = []
    try:
        async with (
            running_sim(seed=17, speed=60.0, symbols=["BTC", "ETH"], host=hosts.gateway) as sim,
            tcp_forwarder(hosts.gateway, pg_settings.port, pg_settings.port),
            Subscription(
                redis, model=LifecycleEvent, patterns=[channels.lifecycle_pattern()]
            ) as events,
        ):
            lifecycle: Recorder[LifecycleEvent] = Recorder()

            async def pump() -> None:
                async for channel, item in events:
                    lifecycle.add(channel, item)

            pumping = asyncio.get_running_loop().create_task(pump())
            remote_pg = pg_settings.model_copy(update={"host": hosts.gateway})
            env = worker_env(redis_host, remote_pg, sim.env)
            active = _spawn(hosts, "a", env, tmp_path / "active.log", "--autostart")
            workers.append(active)
            await lifecycle.wait_for(
                lambda e: e.exchange_id == BINANCE and e.state is ConnectionState.CONNECTED,
                90,
                "active connected",
            )
            first = await statuses.read(BINANCE)
            assert first is not None
            standby = _spawn(hosts, "s", env, tmp_path / "standby.log")
            workers.append(standby)
            await lifecycle.wait_for(
                lambda e: e.exchange_id == BINANCE and (e.reason or "").startswith("standby"),
                60,
                "standby announced",
            )
            holder, stale_id = first, first.worker_id
            for cut_s in (10.0, 30.0):
                # the second round cuts whoever holds the lease after the first one
                role = "a" if holder.worker_id == first.worker_id else "s"
                monitor_client = redis.client()
                log = CommandLog(monitor_client)
                recording = asyncio.get_running_loop().create_task(log.run())
                await log.refresh_names()
                seen_before = len(lifecycle.items)
                hosts.cut(role, connected=False)
                cut_at, cut_wall = time.monotonic(), time.time()

                async def taken_over(old: str = holder.worker_id) -> Any:
                    status = await statuses.read(BINANCE)
                    ok = (
                        status is not None
                        and status.worker_id != old
                        and status.connection_state is ConnectionState.CONNECTED
                    )
                    return status if ok else None

                new = await poll_until(taken_over, 20, "the other worker serving")
                takeover_s = time.monotonic() - cut_at
                await log.refresh_names()
                await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))  # the cut
                hosts.cut(role, connected=True)
                await poll_until(
                    lambda old=holder.worker_id, n=seen_before: _stepped_down(lifecycle, old, n),
                    60,
                    "the cut-off worker stepping down",
                )
                status = await statuses.read(BINANCE)
                assert status is not None and status.worker_id == new.worker_id, status
                await log.refresh_names()
                recording.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await recording
                await monitor_client.aclose()
                stale_id = holder.worker_id
                late = data_writes(log.by(stale_id, cut_wall + LEASE_TTL_S), BINANCE)
                cut_off = workers[0] if role == "a" else workers[1]
                refused, rejected = fenced_writes(cut_off)
                figures.append(
                    f"cut {cut_s:.0f} s: takeover {takeover_s:.1f} s, "
                    f"{len(late)} writes from the cut-off worker after its deadline"
                    f" (refused by its fence {refused}, rejected by Redis {rejected})"
                )
                assert takeover_s <= 10, figures[-1]
                assert late == [], f"{figures[-1]}: {late[:5]}"
                holder = new
            pumping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pumping
            for worker in workers:
                assert worker.proc.poll() is None, worker.tail()
            print("; ".join(figures))
            # Stop the workers while the sim and the forwarder still serve them, so their
            # connections end from the far side and nothing is left open at shutdown.
            await _stop(workers)
    finally:
        await _stop(workers)
        await redis.aclose()


async def _stop(workers: list[WorkerProcess]) -> None:
    """SIGTERM every worker, wait up to 20 s each, then kill what is left."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        with contextlib.suppress(AssertionError):
            await worker.wait_exit(20)
        if worker.proc.poll() is None:
            worker.proc.kill()


async def _stepped_down(lifecycle: Recorder[LifecycleEvent], worker_id: str, after: int) -> bool:
    return any(
        e.worker_id == worker_id and (e.reason or "").startswith("standby")
        for _, e in lifecycle.items[after:]
    )
