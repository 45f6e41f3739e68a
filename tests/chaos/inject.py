"""Carries out each planned fault and records the simulated-time window it covered.

A window is `blind` when the worker could not see the venue's bars live (a dropped or stalled
socket until it is connected again, a killed worker until its standby serves); bars closing
inside one must reach the alert evaluator as `delayed`. Outages that only slow writes or REST
(a Redis restart, a REST outage around its drop, late trades) give fuzzy windows: either flag.
Durations defined in wall time (a REST outage beyond the retry budget, Redis down) are the
fault's length, not synchronisation; every wait on the system has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from redis.asyncio import Redis

from livermore_cache.status import StatusStore
from livermore_exchange_sim.faults import RestMode, WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.enums import ConnectionState, Timeframe, WorkerRole

from .checks import EXCHANGE_IDS, Window
from .listen import Listener
from .plan import Fault, Kind
from .procs import PersistentRedis, Worker, Workers

if TYPE_CHECKING:
    from .run import SoakConfig

RECONNECT_S = 45.0
"""How long a worker may take to be connected again after a fault."""


class Injector:
    """Applies faults to the simulator, the workers and Redis."""

    def __init__(
        self,
        config: SoakConfig,
        sim: RunningSim,
        redis: PersistentRedis,
        workers: Workers,
        listener: Listener,
        client: Redis,
        http: aiohttp.ClientSession,
    ) -> None:
        self.config, self.sim, self.redis = config, sim, redis
        self.workers, self.listener, self.client, self.http = workers, listener, client, http
        self.standby: Worker | None = None
        self.windows: list[Window] = []
        self.injected: Counter[str] = Counter()
        self.takeovers: list[float] = []
        self.problems: list[str] = []
        self.notes: list[str] = []
        self.timeline: list[str] = []

    async def inject(self, fault: Fault) -> None:
        """Carry out one fault, wait for the system to come back, record its window."""
        self.injected[fault.kind.value] += 1
        handler = {
            Kind.WS_DROP: self._drop,
            Kind.WS_CLOSE: self._drop,
            Kind.STALL: self._stall,
            Kind.REST_OUTAGE: self._rest_outage,
            Kind.LATE_TRADES: self._late_trades,
            Kind.KILL_ACTIVE: self._kill_active,
            Kind.REDIS_RESTART: self._redis_restart,
        }[fault.kind]
        start, began, windows = self._now(), time.monotonic(), len(self.windows)
        await handler(fault)
        params = " ".join(f"{k}={v:g}" for k, v in fault.params.items())
        spans = " ".join(
            f"{_kind(w)} {_hms(w.start_ms)}-{_hms(w.end_ms)}" for w in self.windows[windows:]
        )
        self.timeline.append(
            f"{_hms(start)} {fault.kind.value} {fault.venue.value} {params} "
            f"({time.monotonic() - began:.1f} s wall) {spans}"
        )

    def _now(self) -> int:
        return self.sim.clock.now_ms()

    async def _reconnected(self, venue: Venue, after: float, what: str) -> int:
        """Sim time of the venue's next `connected` event after monotonic `after`."""
        seen = await self.listener.wait_connected(EXCHANGE_IDS[venue], after, RECONNECT_S)
        if seen is None:
            self.problems.append(f"{venue.value}: not connected {RECONNECT_S:.0f}s after {what}")
            return self._now()
        return seen.sim_ms

    def _ws(self, fault: Fault) -> WsAction:
        if fault.kind is Kind.WS_CLOSE:
            return WsAction(WsActionKind.CLOSE, int(fault.params["code"]))
        return WsAction(WsActionKind.DROP)

    async def _drop(self, fault: Fault) -> None:
        start, mono = self._now(), time.monotonic()
        self.sim.faults.inject_ws(fault.venue, self._ws(fault))
        end = await self._reconnected(fault.venue, mono, fault.kind.value)
        self.windows.append(Window(fault.venue, start, end, blind=True))

    async def _stall(self, fault: Fault) -> None:
        start = self._now()
        self.sim.faults.stall(fault.venue, fault.params["sim_s"])
        await self.sim.clock.sleep_until(start + int(fault.params["sim_s"] * 1000))
        mono = time.monotonic()
        self.sim.faults.inject_ws(fault.venue, WsAction(WsActionKind.DROP))
        end = await self._reconnected(fault.venue, mono, "a stall")
        self.windows.append(Window(fault.venue, start, end, blind=True))

    async def _rest_outage(self, fault: Fault) -> None:
        start, began = self._now(), time.monotonic()
        self.sim.faults.set_rest(fault.venue, RestMode.UNAVAILABLE, count=None)
        await self.sim.clock.sleep_until(start + 60_000)
        dropped, mono = self._now(), time.monotonic()
        self.sim.faults.inject_ws(fault.venue, WsAction(WsActionKind.DROP))
        seen = await self.listener.wait_connected(EXCHANGE_IDS[fault.venue], mono, RECONNECT_S)
        back = seen.sim_ms if seen is not None else self._now()
        await asyncio.sleep(max(0.0, fault.params["wall_s"] - (time.monotonic() - began)))
        self.sim.faults.clear(fault.venue)
        self.windows.append(Window(fault.venue, dropped, back, blind=True))
        self.windows.append(Window(fault.venue, start, self._now(), blind=False))

    async def _late_trades(self, fault: Fault) -> None:
        start = self._now()
        lag = fault.params["lag_sim_s"]
        self.sim.faults.delay_trades(Venue.COINBASE, lag)
        # hold trades across at least one minute's close, then lose what is held with a drop
        await self.sim.clock.sleep_until(start + int((lag + 60) * 1000))
        mono = time.monotonic()
        self.sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.DROP))
        self.sim.faults.delay_trades(Venue.COINBASE, 0)  # the new connection is live again
        end = await self._reconnected(Venue.COINBASE, mono, "late trades")
        self.windows.append(Window(Venue.COINBASE, start, end, blind=False))
        # 1m bars built from the held trades stay wrong until the sweep re-reads them
        horizon = end + int(self.config.reconcile_horizon_sim_s * 1000)
        self.windows.append(Window(Venue.COINBASE, start - 60_000, horizon, False, Timeframe.M1))

    async def _stats(self, venue: Venue) -> dict[str, Any]:
        async with self.http.get(self.sim.rest_url(venue) + "/_sim/stats") as resp:
            body: dict[str, Any] = await resp.json()
            return body

    async def rest_stats(self) -> dict[str, dict[str, Any]]:
        """Each venue's REST counters (requests, 429s)."""
        return {venue.value: await self._stats(venue) for venue in self.config.names}

    async def _status(self, venue: Venue) -> Any:
        with contextlib.suppress(Exception):
            return await StatusStore(self.client).read(EXCHANGE_IDS[venue])
        return None

    def _worker_of(self, worker_id: str) -> Worker | None:
        pid = worker_id.split(":")[1]  # host:pid:suffix
        for worker in self.workers.started:
            if str(worker.proc.pid) == pid and worker.alive():
                return worker
        return None

    async def _kill_active(self, fault: Fault) -> None:
        venue, name = fault.venue, self.config.names[fault.venue]
        status = await self._status(venue)
        active = self._worker_of(status.worker_id) if status is not None else None
        if active is None:
            self.problems.append(f"{venue.value}: no live active worker to kill")
            return
        await self._ensure_standby(venue, name)
        start = self._now()
        stall_ms = int(fault.params["stall_sim_s"] * 1000)
        self.sim.faults.stall(venue, fault.params["stall_sim_s"])
        await self.sim.clock.sleep_until(start + stall_ms)
        before = (await self._stats(venue))["requests"]
        # every REST answer now hangs: the repair of the stalled stretch is in flight when killed
        self.sim.faults.set_rest(venue, RestMode.SLOW, count=None, delay_s=5.0)
        self.sim.faults.inject_ws(venue, WsAction(WsActionKind.DROP))
        deadline = time.monotonic() + 15
        while (await self._stats(venue))["requests"] <= before and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polling the simulator's counter for the repair request
        active.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        self.sim.faults.clear(venue)
        took, end = await self._takeover(venue, status.worker_id, killed)
        self.windows.append(Window(venue, start, end, blind=True))
        if took is not None:
            self.takeovers.append(took)
        self.standby = self.workers.spawn(name, autostart=False)

    async def _ensure_standby(self, venue: Venue, name: str) -> None:
        """Start a fresh standby when the last one died (as a supervisor would), and say so."""
        standby = self.standby
        if standby is not None and standby.alive():
            return
        if standby is not None:
            self.notes.append(
                f"{venue.value} standby {standby.log_path.name} had exited "
                f"({standby.proc.returncode}): {_last_line(standby)}; started another"
            )
        self.standby = self.workers.spawn(name, autostart=False)
        began = time.monotonic()
        while time.monotonic() - began < RECONNECT_S:  # until it announced itself as standby
            if any(
                s.mono > began and s.event.exchange_id == EXCHANGE_IDS[venue]
                for s in self.listener.lifecycle
            ):
                return
            await asyncio.sleep(0.1)  # polling what another process published
        self.problems.append(f"{venue.value}: the replacement standby never announced itself")

    async def _takeover(self, venue: Venue, old: str, killed: float) -> tuple[float | None, int]:
        """Wait until another worker serves `venue`: (seconds after the kill, sim time)."""
        while time.monotonic() - killed < RECONNECT_S:
            status = await self._status(venue)
            if (
                status is not None
                and status.worker_id != old
                and status.role is WorkerRole.ACTIVE
                and status.connection_state is ConnectionState.CONNECTED
            ):
                return time.monotonic() - killed, self._now()
            await asyncio.sleep(0.05)  # polling the status another process writes
        self.problems.append(f"{venue.value}: no takeover within {RECONNECT_S:.0f}s of kill -9")
        return None, self._now()

    async def _redis_restart(self, fault: Fault) -> None:
        start = self._now()
        self.redis.kill()
        await asyncio.sleep(fault.params["down_wall_s"])
        await self.redis.start()
        began = time.monotonic()
        for venue in self.config.names:
            while time.monotonic() - began < RECONNECT_S:
                status = await self._status(venue)
                fresh = status is not None and (
                    time.time() - status.last_heartbeat.timestamp() < 3.0
                )
                if fresh and status.connection_state is ConnectionState.CONNECTED:
                    break
                await asyncio.sleep(0.1)  # polling the heartbeat another process writes
            else:
                self.problems.append(f"{venue.value}: no fresh heartbeat after the Redis restart")
        self.windows.append(Window(None, start, self._now(), blind=False))


def _hms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def _kind(window: Window) -> str:
    if window.tainted is not None:
        return f"tainted {window.tainted.value}"
    return "blind" if window.blind else "fuzzy"


def _last_line(worker: Worker) -> str:
    lines = worker.tail(5).splitlines()
    return lines[-1][:200] if lines else "(no output)"
