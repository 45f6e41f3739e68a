"""End to end: the store gone for longer than the retry budget. The worker neither exits nor keeps
streaming blind: it steps down to standby, and when Redis answers again it takes the lease back and
serves again (a fresh, empty Redis: it starts over with a full backfill).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from livermore_cache.client import connect_redis
from livermore_cache.status import StatusStore
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ConnectionState, WorkerRole
from livermore_schema.settings import RedisSettings

BINANCE = 2
OUTAGE_S = 8.0
"""How long Redis stays down: beyond the 3 s budget and the lease TTL (the scenario)."""


class Server:
    """A redis-server of this test only, which the test kills and starts again on the same port."""

    def __init__(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.workdir = tempfile.mkdtemp(prefix="livermore-outage-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (again) on the same port, empty."""
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)  # polling a process we just spawned
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def outage_redis() -> Iterator[Server]:
    """A private redis-server for one test; killed and its directory removed afterwards."""
    server = Server()
    server.start()
    try:
        yield server
    finally:
        server.kill()
        shutil.rmtree(server.workdir, ignore_errors=True)


def _events(log_text: str) -> list[dict[str, Any]]:
    found = []
    for line in log_text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


async def test_a_store_outage_beyond_the_budget_steps_down_and_comes_back(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    outage_redis: Server,
    poll_until: Any,
) -> None:
    settings = RedisSettings(port=outage_redis.port, retry_budget_s=0)
    client = connect_redis(settings)
    statuses = StatusStore(client)

    async def serving(worker_id: str | None) -> Any:
        try:
            status = await statuses.read(BINANCE)
        except Exception:  # the store is down: not serving
            return None
        ok = (
            status is not None
            and status.connection_state is ConnectionState.CONNECTED
            and status.role is WorkerRole.ACTIVE
            and (worker_id is None or status.worker_id == worker_id)
        )
        return status if ok else None

    try:
        async with running_sim(seed=13, speed=60.0, symbols=["BTC", "ETH"]) as sim:
            worker = spawn_worker(
                "binance",
                "--autostart",
                sim=sim,
                LIVERMORE_REDIS_PORT=str(outage_redis.port),
                LIVERMORE_REDIS_RETRY_BUDGET_S="3",
            )
            first = await poll_until(lambda: serving(None), 60, "serving")
            outage_redis.kill()
            down_at = time.monotonic()

            async def stepped_down() -> bool:
                events = _events(worker.log_path.read_text(errors="replace"))
                return any(e.get("event") == "worker.stepped_down" for e in events)

            await poll_until(stepped_down, 30, "the worker stepping down")
            stepped_s = time.monotonic() - down_at
            assert worker.proc.poll() is None, worker.tail()
            await poll_until(  # the outage lasts OUTAGE_S whatever the worker does meanwhile
                lambda: _after(down_at + OUTAGE_S), OUTAGE_S + 1, "the end of the outage"
            )
            outage_redis.start()
            back = await poll_until(lambda: serving(first.worker_id), 60, "serving again")
            assert worker.proc.poll() is None, worker.tail()
            assert back.worker_id == first.worker_id
            events = _events(worker.log_path.read_text(errors="replace"))
            assert not [e for e in events if e.get("level") == "critical"]
            print(f"stepped down {stepped_s:.1f} s into the outage; serving again after restart")
            worker.terminate()
            assert await worker.wait_exit(20) == 0, worker.tail()
    finally:
        await client.aclose()


async def _after(moment: float) -> bool:
    return time.monotonic() >= moment
