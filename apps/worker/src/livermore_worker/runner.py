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
import time
from collections.abc import Awaitable, Callable

import structlog
from redis.exceptions import RedisClusterException, RedisError

from livermore_cache.commands import CommandInbox, PublishedCommandBridge
from livermore_schema.enums import ConnectionState, WorkerRole
from livermore_worker.commands import WorkerCommands
from livermore_worker.control import CommandFailed, ControlListener
from livermore_worker.lease import ExchangeLease
from livermore_worker.worker import Worker

log = structlog.get_logger(__name__)

LEASE_TTL_CAP_S = 6.0
"""A standby takes over at most this long (plus one poll) after the active worker dies."""
TEARDOWN_S = 15.0
"""How long leaving a term may take before its remaining tasks are cancelled."""
STORE_FAILURES: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""What a worker outlives: the store unreachable (beyond the retry budget) or a fenced write."""


def lease_ttl_s(heartbeat_interval_s: float) -> float:
    """Return the lease TTL: about three heartbeats, capped so takeover stays under 10 s."""
    return min(3 * heartbeat_interval_s, LEASE_TTL_CAP_S)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """Make SIGTERM and SIGINT set `stop` (and nothing else)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _wait_any(within_s: float | None, *events: asyncio.Event) -> None:
    """Return when any event is set or after `within_s` seconds (None: no limit)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=within_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class Supervisor:
    """Runs one worker: standby until it holds the lease, active until it loses it, and back.

    Each active term runs in its own TaskGroup (activation, control listener, bridge, the
    session's pipeline). The term ends on stop, on a lost lease (the heartbeat's renew found
    another holder, or no renew succeeded before the fence lapsed) or when one of its tasks
    failed (the store unreachable beyond the retry budget). Except on stop, the worker then
    steps down: it drops the session (its unsent writes are refused by the fence), gives the
    lease up if it still holds it, and waits as a standby again, taking over (resuming the
    persisted state) once the lease is free. No store error ends the process.
    """

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
        self._demoted = asyncio.Event()
        self.terms = 0
        interval = worker.services.worker_settings.heartbeat_interval_s
        self._beat_s = min(interval, lease_ttl_s(interval) / 3)

    async def run(self, stop: asyncio.Event) -> int:
        """Serve until `stop` is set; return the process exit code."""
        self._stop = stop
        async with asyncio.TaskGroup() as group:
            group.create_task(self._heartbeat(), name="heartbeat")
            failed_terms = 0
            while await self._wait_for_lease():
                self.terms += 1
                began = time.monotonic()
                reason = await self._term()
                if stop.is_set():
                    break
                await self._step_down(reason)
                # Terms that keep failing soon after they began wait longer and longer before
                # the next takeover, so a persistent fault is never a tight crash loop.
                quick_failure = reason.startswith("failed") and time.monotonic() - began < 60
                failed_terms = failed_terms + 1 if quick_failure else 0
                if failed_terms:
                    await _wait_any(min(30.0, 2.0 ** (failed_terms - 1)), stop)
            await self._shutdown()
        return 0

    async def _term(self) -> str:
        """Serve as the active worker until stopped or demoted; return why the term ended."""
        self._demoted.clear()
        leave = asyncio.Event()
        reason = "lease lost"
        try:
            async with asyncio.TaskGroup() as term:
                self._w.group = term
                inbox = CommandInbox(
                    self._w.services.redis,
                    self._w.services.exchange.exchange_id,
                    self._w.identity.worker_id,
                )
                commands = WorkerCommands(self._w)
                listener = ControlListener(inbox, commands.handlers(), settle=self._w.settle_status)
                # Commands wait until activation holds op_lock: a command queued while the worker
                # was down then applies on top of the resumed state instead of being overwritten.
                locked = asyncio.Event()
                activation = term.create_task(self._activate(locked), name="activate")
                await locked.wait()
                control = term.create_task(listener.serve(leave, self._poll_s), name="control")
                bridge = PublishedCommandBridge(
                    self._w.services.redis, self._w.services.exchange.exchange_id
                )
                bridging = term.create_task(bridge.serve(leave, self._poll_s), name="bridge")
                syncing = term.create_task(self._sync_positions(commands), name="positions")
                await _wait_any(None, self._stop, self._demoted)
                leave.set()
                syncing.cancel()
                try:
                    async with asyncio.timeout(TEARDOWN_S):  # a cut link must not hold us here
                        await self._leave_term(control, bridging, activation, reason)
                except TimeoutError:
                    log.error("worker.term_teardown_stuck", worker_id=self._w.identity.worker_id)
                    raise
        except* Exception as failed:
            first = failed.exceptions[0]
            reason = f"failed: {type(first).__name__}: {str(first)[:200]}"
            log.error("worker.term_failed", reason=reason, worker_id=self._w.identity.worker_id)
        finally:
            self._w.group = None
        return reason

    async def _leave_term(
        self,
        control: asyncio.Task[None],
        bridging: asyncio.Task[None],
        activation: asyncio.Task[None],
        reason: str,
    ) -> None:
        await control
        await bridging
        activation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await activation
        async with self._w.op_lock:
            if not self._stop.is_set() or self._demoted.is_set():
                self._w.role = WorkerRole.STANDBY
                await self._w.stop_streaming(ConnectionState.IDLE, f"standby: {reason}")
            else:
                await self._w.persist(started=False, paused=False)
                await self._w.stop_streaming(ConnectionState.STOPPED, "shutdown")

    async def _step_down(self, reason: str) -> None:
        """Leave the active role: no session, no lease, standby status where none is live."""
        self._w.role = WorkerRole.STANDBY
        await self._w.abandon_session()
        if self._lease.fence.valid():
            with contextlib.suppress(*STORE_FAILURES):
                await self._lease.release()
        self._lease.fence.revoke()
        log.warning(
            "worker.stepped_down",
            reason=reason,
            worker_id=self._w.identity.worker_id,
            writes_refused=self._lease.fence.refused,
            writes_rejected=self._lease.fence.rejected,
        )
        if self._w.state is not ConnectionState.IDLE:  # the term did not say so already
            with contextlib.suppress(*STORE_FAILURES):
                await self._w.transition(ConnectionState.IDLE, f"standby: {reason}")

    async def _wait_for_lease(self) -> bool:
        """Stay a hot standby until the lease is ours; False when stopped first."""
        announced = self.terms > 0  # a worker that stepped down has said so already
        while not self._stop.is_set():
            try:
                if await self._lease.acquire():
                    if announced:
                        log.info("worker.takeover", worker_id=self._w.identity.worker_id)
                    self._w.role = WorkerRole.ACTIVE
                    return True
                if not announced:
                    holder = await self._lease.current_holder()
                    await self._w.transition(
                        ConnectionState.IDLE, f"standby: lease held by {holder}"
                    )
                    announced = True
            except STORE_FAILURES as err:
                log.warning("worker.store_unavailable", error=f"{type(err).__name__}: {err}")
            await _wait_any(self._beat_s, self._stop)
        return False

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

    async def _sync_positions(self, commands: WorkerCommands) -> None:
        """Every `position_sync_interval_s`: sync the served users' positions, apply the symbols."""
        interval = self._w.services.worker_settings.position_sync_interval_s
        while True:
            await _wait_any(interval, self._stop)
            if self._stop.is_set():
                return
            async with self._w.op_lock:
                if not self._w.running.started or self._w.running.paused:
                    continue
                try:
                    await self._w.traders.sync_positions()
                    if self._w.session is not None:
                        await commands.reload_symbols()
                except CommandFailed as failed:
                    log.warning("worker.position_sync_apply_failed", reason=str(failed))
                self._w.status_dirty.set()

    async def _heartbeat(self) -> None:
        """Renew the lease and write the status every beat (and whenever the status changes)."""
        while not self._stop.is_set():
            active = self._w.role is WorkerRole.ACTIVE and not self._demoted.is_set()
            fence = self._lease.fence
            try:
                if active and fence.stale.is_set():  # Redis rejected a write: a newer epoch
                    log.error("worker.superseded", worker_id=self._w.identity.worker_id)
                    self._demote()
                elif active and not await self._renew():
                    log.error("worker.lease_lost", worker_id=self._w.identity.worker_id)
                    self._demote()
                else:
                    await self._w.write_status()
            except STORE_FAILURES as err:
                log.warning("worker.heartbeat_failed", error=f"{type(err).__name__}: {err}")
                if active and not self._lease.fence.valid():
                    self._demote()
            wake = (fence.stale,) if active else ()  # a rejected write demotes at once
            await _wait_any(self._beat_s, self._stop, self._w.status_dirty, *wake)

    async def _renew(self) -> bool:
        """Renew the lease; False when another worker holds it.

        A renew answered late (the store was failing over) proves the lease only from the time
        it was sent, which may already be past the margin: renew again at once, so the writes
        waiting at the fence go out as soon as the store answers promptly.
        """
        for _ in range(3):
            if not await self._lease.renew():
                return False
            if self._lease.fence.valid():
                break
        return True

    def _demote(self) -> None:
        """End the term: refuse every write at once (nothing waits at the fence), then leave."""
        self._lease.fence.revoke()
        self._w.role = WorkerRole.STANDBY  # from now on it never writes a status over another's
        self._demoted.set()

    async def _shutdown(self) -> None:
        """Flush alert inserts, close REST, release the lease (a standby takes over at once)."""
        if self._w.state is not ConnectionState.STOPPED:  # a standby, or a failed last term
            with contextlib.suppress(*STORE_FAILURES):
                await self._w.stop_streaming(ConnectionState.STOPPED, "shutdown")
        await self._flush()
        await self._w.close_rest()
        if self._w.role is WorkerRole.ACTIVE and self._lease.fence.valid():
            with contextlib.suppress(*STORE_FAILURES):
                await self._lease.release()
