"""End to end: fencing. The active worker is frozen (SIGSTOP) 15 s: the standby takes over within
10 s, and the old worker, on waking, sends no data write (counted by MONITOR on the server, per
connection name) and ends as a standby; the status always names the live holder.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache import channels, keys
from livermore_cache.status import StatusStore
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ConnectionState, WorkerRole

BINANCE = 2
FROZEN_S = 15.0
"""How long the active worker is stopped (the scenario, not a synchronisation)."""
READS = {"GET", "MGET", "EXISTS", "PTTL", "TTL", "ZRANGE", "ZRANGEBYSCORE", "ZCARD", "HGETALL"}
READS |= {"HMGET", "HKEYS", "XREADGROUP", "XRANGE", "XLEN", "SCAN", "PING", "CLIENT", "INFO"}
READS |= {"HELLO", "SELECT", "AUTH", "READONLY"}  # connection handshakes


class CommandLog:
    """Every command the server runs (MONITOR), with the name of the connection that sent it."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self.entries: list[tuple[float, str, list[str]]] = []
        self._names: dict[str, str] = {}

    async def refresh_names(self) -> None:
        """Learn which address belongs to which named connection (CLIENT LIST)."""
        for client in await self._redis.client_list():
            if client.get("name"):
                self._names[client["addr"]] = client["name"]

    def by(self, name_part: str, since: float) -> list[list[str]]:
        """Commands sent by connections whose name contains `name_part` at or after `since`."""
        return [
            args
            for at, addr, args in self.entries
            if at >= since and name_part in self._names.get(addr, "")
        ]

    async def run(self) -> None:
        """Record until cancelled."""
        async with self._redis.monitor() as monitor:
            while True:
                info = await monitor.next_command()
                if info["client_type"] != "tcp":
                    continue  # commands run inside scripts: their caller is already counted
                addr = f"{info['client_address']}:{info['client_port']}"
                self.entries.append((time.time(), addr, str(info["command"]).split(" ")))


def data_writes(commands: list[list[str]], exchange_id: int) -> list[list[str]]:
    """Commands that change data (the lease's own script and lifecycle events excepted)."""
    lease, lifecycle = keys.lease_key(exchange_id), channels.lifecycle_channel(exchange_id)
    found = []
    for args in commands:
        name = args[0].upper()
        if name in READS or lease in args or (name == "PUBLISH" and args[1] == lifecycle):
            continue
        if name in ("EVALSHA", "EVAL") and len(args) > 3 and args[3] == lease:
            continue
        found.append(args)
    return found


def fenced_writes(worker: Any) -> tuple[int, int]:
    """Writes the worker's fence refused and Redis rejected (its latest step-down log line)."""
    refused = rejected = 0
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if '"worker.stepped_down"' in line:
            entry = json.loads(line)
            refused, rejected = entry["writes_refused"], entry["writes_rejected"]
    return refused, rejected


async def test_a_frozen_worker_writes_nothing_after_its_lease_and_rejoins_as_standby(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    poll_until: Any,
) -> None:
    statuses = StatusStore(redis)
    async with running_sim(seed=9, speed=60.0, symbols=["BTC", "ETH"]) as sim:
        active = spawn_worker("binance", "--autostart", sim=sim)
        await lifecycle.wait_for(
            lambda e: e.exchange_id == BINANCE and e.state is ConnectionState.CONNECTED,
            60,
            "active connected",
        )
        first = await statuses.read(BINANCE)
        assert first is not None and first.role is WorkerRole.ACTIVE
        standby = spawn_worker("binance", sim=sim)
        await lifecycle.wait_for(
            lambda e: e.exchange_id == BINANCE and (e.reason or "").startswith("standby"),
            30,
            "standby announced",
        )
        monitor_client = redis.client()
        log = CommandLog(monitor_client)
        recording = asyncio.get_running_loop().create_task(log.run())
        try:
            await log.refresh_names()
            active.terminate(signal.SIGSTOP)
            frozen_at = time.monotonic()

            async def taken_over() -> Any:
                status = await statuses.read(BINANCE)
                ok = (
                    status is not None
                    and status.worker_id != first.worker_id
                    and status.connection_state is ConnectionState.CONNECTED
                )
                return status if ok else None

            new = await poll_until(taken_over, 15, "the standby serving")
            takeover_s = time.monotonic() - frozen_at
            await log.refresh_names()
            await asyncio.sleep(max(0.0, FROZEN_S - (time.monotonic() - frozen_at)))
            woke_at = time.time()
            active.terminate(signal.SIGCONT)
            await lifecycle.wait_for(
                lambda e: e.worker_id == first.worker_id and "lease lost" in (e.reason or ""),
                20,
                "the old worker stepping down",
            )

            async def beats_seen() -> Any:  # two more heartbeats of the new holder
                status = await statuses.read(BINANCE)
                assert status is not None and status.worker_id == new.worker_id, status
                return status.last_heartbeat.timestamp() > time.time() - 0.5 and status

            await poll_until(beats_seen, 10, "the new holder's heartbeat")
            await log.refresh_names()
        finally:
            recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recording
            await monitor_client.aclose()
        stale = log.by(first.worker_id, woke_at)
        writes = data_writes(stale, BINANCE)
        assert stale, "MONITOR saw nothing from the woken worker: the count proves nothing"
        assert writes == [], f"{len(writes)} writes from the stale worker: {writes[:5]}"
        assert takeover_s <= 10, f"takeover took {takeover_s:.1f}s"
        assert active.proc.poll() is None, active.tail()
        refused, rejected = fenced_writes(active)
        print(
            f"takeover {takeover_s:.1f} s; stale worker after waking: {len(stale)} commands,"
            f" {len(writes)} data writes; writes refused by its fence {refused}, rejected by"
            f" Redis (lease epoch) {rejected}"
        )
        for worker in (active, standby):
            worker.terminate()
        assert await active.wait_exit(20) == 0, active.tail()
        assert await standby.wait_exit(20) == 0, standby.tail()
