"""The worker process: `asyncio.run` -> resources (`AsyncExitStack`) -> `TaskGroup` -> `Supervisor`.

The signal handlers only set the stop event. Every task belongs to the supervisor's TaskGroup:
heartbeat (status + lease renewal), standby wait, control listener (plus the bridge that queues
commands PUBLISHed on `livermore:commands:{ex}` on the listener's stream), takeover/autostart,
and the streaming session's pipeline. On stop: the listener stops taking commands (a command in
progress is cancelled and stays in the stream for the next worker), the session closes the
exchange connection and drains the pipeline, alert inserts are flushed (bounded; the outbox keeps
the rest), the status becomes `stopped` and the lease is released so a standby takes over at once.

A clean stop saves the running state as stopped (as the `stop` command does: mode and symbol set
kept for the next `start`), so the next plain start, or a standby taking the released lease,
stays idle (SPEC section 5); only a worker that died while started (kill -9, a crash, a lost
lease) leaves a started state behind for its successor to resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import structlog

from livermore_cache.commands import CommandInbox, PublishedCommandBridge
from livermore_schema.enums import ConnectionState, WorkerRole
from livermore_worker.commands import WorkerCommands
from livermore_worker.control import CommandFailed, ControlListener
from livermore_worker.lease import ExchangeLease
from livermore_worker.worker import Worker

log = structlog.get_logger(__name__)

LEASE_TTL_CAP_S = 6.0
"""A standby takes over at most this long (plus one poll) after the active worker dies."""
EXIT_LEASE_LOST = 3


def lease_ttl_s(heartbeat_interval_s: float) -> float:
    """Return the lease TTL: about three heartbeats, capped so takeover stays under 10 s."""
    return min(3 * heartbeat_interval_s, LEASE_TTL_CAP_S)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Make SIGTERM and SIGINT set `stop` (and nothing else)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _wait_any(within_s: float, *events: asyncio.Event) -> None:
    """Return when any event is set or after `within_s` seconds."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class Supervisor:
    """Runs one worker: standby until it holds the lease, then active until stopped."""

    def __init__(
        self,
        worker: Worker,
        lease: ExchangeLease,
        *,
        autostart: bool,
        command_poll_s: float,
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        self._w = worker
        self._lease = lease
        self._autostart = autostart
        self._poll_s = command_poll_s
        self._flush = flush
        self._stop = asyncio.Event()
        self.lease_lost = False
        interval = worker.services.worker_settings.heartbeat_interval_s
        self._beat_s = min(interval, lease_ttl_s(interval) / 3)

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until `stop` is set; return the process exit code."""
        self._stop = stop
        async with asyncio.TaskGroup() as group:
            self._w.group = group
            group.create_task(self._heartbeat(), name="heartbeat")
            if await self._wait_for_lease():
                inbox = CommandInbox(
                    self._w.services.redis,
                    self._w.services.exchange.exchange_id,
                    self._w.identity.worker_id,
                )
                listener = ControlListener(
                    inbox, WorkerCommands(self._w).handlers(), settle=self._w.settle_status
                )
                # Commands wait until activation holds op_lock: a command queued while the worker
                # was down then applies on top of the resumed state instead of being overwritten.
                locked = asyncio.Event()
                activation = group.create_task(self._activate(locked), name="activate")
                await locked.wait()
                control = group.create_task(listener.serve(stop, self._poll_s), name="control")
                bridge = PublishedCommandBridge(
                    self._w.services.redis, self._w.services.exchange.exchange_id
                )
                bridging = group.create_task(bridge.serve(stop, self._poll_s), name="bridge")
                await stop.wait()
                await control
                await bridging
                activation.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await activation
            await self._shutdown()
        return EXIT_LEASE_LOST if self.lease_lost else 0

    async def _wait_for_lease(self) -> bool:
        """Stay a hot standby until the lease is ours; False when stopped first."""
        if not await self._lease.acquire():
            holder = await self._lease.current_holder()
            await self._w.transition(ConnectionState.IDLE, f"standby: lease held by {holder}")
            while not await self._lease.acquire():
                await _wait_any(self._beat_s, self._stop)
                if self._stop.is_set():
                    return False
            log.info("worker.takeover", worker_id=self._w.identity.worker_id)
        self._w.role = WorkerRole.ACTIVE
        return True

    async def _activate(self, locked: asyncio.Event) -> None:
        """Resume the persisted running state, else autostart, else idle."""
        async with self._w.op_lock:
            locked.set()
            persisted = await self._w.state_store.read()
            if persisted is not None:
                self._w.running = persisted.model_copy(
                    update={"holder": self._w.identity.worker_id}
                )
            try:
                if persisted is not None and persisted.started and not persisted.paused:
                    await self._w.start(persisted.symbols or None)
                elif persisted is not None and persisted.started:
                    await self._w.transition(ConnectionState.DISCONNECTED, "paused")
                elif self._autostart:
                    await self._w.start()
                else:
                    await self._w.transition(ConnectionState.IDLE, "idle: waiting for start")
            except CommandFailed as failed:
                log.error("worker.start_failed", reason=str(failed))

    async def _heartbeat(self) -> None:
        """Renew the lease and write the status every beat (and whenever the status changes)."""
        while not self._stop.is_set():
            if self._w.role is WorkerRole.ACTIVE and not await self._lease.renew():
                log.error("worker.lease_lost", worker_id=self._w.identity.worker_id)
                self.lease_lost = True
                self._stop.set()
                return
            await self._w.write_status()
            await _wait_any(self._beat_s, self._stop, self._w.status_dirty)

    async def _shutdown(self) -> None:
        """Close the session, flush alert inserts, mark `stopped`, release the lease."""
        async with self._w.op_lock:
            reason = "lease lost" if self.lease_lost else "shutdown"
            if self._w.role is WorkerRole.ACTIVE and not self.lease_lost:
                await self._w.persist(started=False, paused=False)
            await self._w.stop_streaming(ConnectionState.STOPPED, reason)
        await self._flush()
        await self._w.close_rest()
        if self._w.role is WorkerRole.ACTIVE and not self.lease_lost:
            await self._lease.release()
