"""`Worker`: one exchange's state machine — lease, status, start sequence, streaming session.

Idle until told (or `--autostart`): the worker holds no exchange connection. The start sequence
reports every step in the status key and on the lifecycle channel (SPEC section 5). Every state
change goes through `_transition`, which writes the status and publishes a `LifecycleEvent`.
Operations that change what is streamed hold `op_lock`, so a command and a takeover never race.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import SecretStr

from livermore_cache.fence import exempt
from livermore_cache.status import StatusStore
from livermore_exchange_core.backfill import BackfillProgress
from livermore_exchange_core.base import RestClient
from livermore_exchange_core.config import Credentials
from livermore_exchange_core.events import AdapterLifecycle
from livermore_exchange_core.factory import create_rest_client
from livermore_exchange_core.symbols import UserContext
from livermore_schema.enums import ConnectionState, StartupPhase, SymbolTier, WorkerMode, WorkerRole
from livermore_schema.status import ConnectionStatus, LifecycleEvent, StartupProgress
from livermore_worker.control import CommandFailed
from livermore_worker.lease import RunningState, RunningStateStore, StreamedSymbol
from livermore_worker.traders import Traders
from livermore_worker.wiring import (
    ModeProfile,
    Services,
    StreamingSession,
    clear_series,
    mode_profile,
)

log = structlog.get_logger(__name__)

SESSION_CLOSE_S = 10.0
"""How long closing a streaming session may take (a cut link must not hold the worker)."""


def freeze_warm_heap() -> None:
    """Collect once, then move every live object out of the cyclic collector's reach."""
    # A full (gen2) pass over the warmed heap (6,000 MACD-V series, ~180k objects) stalls the
    # loop 100-200 ms and queues every closed candle behind it. The warm state lives for the
    # session, so it is frozen; unfreeze + collect first so a restarted session's garbage from
    # the previous one is reclaimed instead of frozen for good.
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who this worker is; `user` only names the legacy twin channel's identity."""

    worker_id: str
    user: UserContext | None
    clock_rate: float


class Worker:
    """The per-exchange state machine; `runner` drives it, `commands` calls its operations."""

    def __init__(
        self,
        services: Services,
        identity: WorkerIdentity,
        traders: Traders,
        statuses: StatusStore,
        state_store: RunningStateStore,
    ) -> None:
        self.services = services
        self.identity = identity
        self.traders = traders
        self._statuses = statuses
        self.state_store = state_store
        self.op_lock = asyncio.Lock()
        self.role = WorkerRole.STANDBY
        self.state = ConnectionState.IDLE
        self.running = RunningState(username=identity.user.username if identity.user else None)
        self.session: StreamingSession | None = None
        self._rest: RestClient | None = None
        self._progress: StartupProgress | None = None
        self._connected_at: datetime | None = None
        self._error: str | None = None
        self.group: asyncio.TaskGroup | None = None
        self.status_dirty = asyncio.Event()
        ex = services.exchange
        self._log = log.bind(exchange=ex.name.value, worker_id=identity.worker_id)

    # ------------------------------------------------------------------ status

    def failed_symbols(self) -> dict[str, str]:
        """Return the symbols the exchange refused to stream, with its reason."""
        return {} if self.session is None else dict(self.session.adapter.rejected)

    def status(self) -> ConnectionStatus:
        """Return the current ConnectionStatus."""
        ex = self.services.exchange
        tier2 = sum(1 for s in self.running.symbols if s.tier is SymbolTier.TIER_2)
        pipeline = self.session.pipeline if self.session is not None else None
        return ConnectionStatus(
            exchange_id=ex.exchange_id,
            exchange_name=ex.name.value,
            connection_state=self.state,
            connected_at=self._connected_at,
            last_heartbeat=datetime.now(UTC),
            error=self._error,
            worker_id=self.identity.worker_id,
            role=self.role,
            mode=self.running.mode,
            symbol_count=len(self.running.symbols),
            progress=self._progress,
            heartbeat_interval_s=self.services.worker_settings.heartbeat_interval_s,
            tier1_count=len(self.running.symbols) - tier2,
            tier2_count=tier2,
            users_served=self.traders.users_served,
            failed_symbols=self.failed_symbols(),
            position_sync=list(self.traders.sync_status.values()),
            pending_repairs=pipeline.pending_repairs if pipeline else 0,
            oldest_repair_age_s=pipeline.oldest_repair_age_s() if pipeline else None,
        )

    async def settle_status(self) -> None:
        """Write the status now if a change is pending (before a command's final response)."""
        if self.status_dirty.is_set():
            await self.write_status()

    async def write_status(self) -> None:
        """Write the status (a standby only where no live worker wrote one)."""
        self.status_dirty.clear()
        exchange_id = self.services.exchange.exchange_id
        if self.role is WorkerRole.STANDBY:
            if await self._statuses.read(exchange_id) is not None:
                return
            with exempt():  # a standby holds no lease; it never overwrites a live status
                await self._statuses.write(self.status())
            return
        await self._statuses.write(self.status())

    async def transition(
        self,
        state: ConnectionState,
        reason: str | None = None,
        *,
        phase: StartupPhase | None = None,
        percent: float = 0.0,
        item: str | None = None,
        attempt: int = 0,
    ) -> None:
        """Change state (and startup phase), write the status, publish the lifecycle event."""
        self.state = state
        if phase is not None:
            self._progress = StartupProgress(phase=phase, percent=percent, current_item=item)
        if state is ConnectionState.ERROR:
            self._error = reason
        elif state in (ConnectionState.IDLE, ConnectionState.STARTING):
            self._error = None
        await self.write_status()
        ex = self.services.exchange
        event = LifecycleEvent(
            exchange_id=ex.exchange_id,
            exchange_name=ex.name.value,
            state=state,
            reason=reason,
            attempt=attempt,
            timestamp=datetime.now(UTC),
            worker_id=self.identity.worker_id,
            progress=self._progress,
        )
        with exempt() if self.role is WorkerRole.STANDBY else contextlib.nullcontext():
            await self.services.publisher.publish_lifecycle(event)
        self._log.info("worker.state", state=state.value, reason=reason, phase=phase)

    def on_adapter_lifecycle(self, event: AdapterLifecycle) -> None:
        """Reflect adapter reconnects in the status (the pipeline already published the event)."""
        if self.session is None or self._progress is None:
            return
        if self._progress.phase is not StartupPhase.COMPLETE:
            return  # the start sequence reports its own steps
        self.state = event.state
        self._error = event.reason if event.state is ConnectionState.ERROR else self._error
        self.status_dirty.set()

    # ------------------------------------------------------------------ persistence

    async def persist(self, **changes: Any) -> None:
        """Update and persist the running state a standby would resume."""
        self.running = self.running.model_copy(
            update={**changes, "holder": self.identity.worker_id}
        )
        await self.state_store.write(self.running)

    # ------------------------------------------------------------------ start / stop

    def profile(self, mode: WorkerMode) -> ModeProfile:
        """Return what `mode` streams and its alert cooldown on this worker."""
        return mode_profile(mode, self.services.worker_settings.alert_cooldown_s)

    def mark_changed(self) -> None:
        """Note a change the status must show (written before the command's response)."""
        self.status_dirty.set()

    async def clear_series(self, symbol: str = "*", timeframe: str = "*") -> int:
        """Delete this exchange's cached keys of the series matching; return how many."""
        exchange_id = self.services.exchange.exchange_id
        return await clear_series(self.services.redis, exchange_id, symbol, timeframe)

    async def resolve_symbols(self) -> tuple[StreamedSymbol, ...]:
        """Return Tier 1 + every served user's Tier 2, plus the symbols added by command."""
        fresh = await self.traders.resolve()
        names = {s.symbol for s in fresh}
        manual = tuple(s for s in self.running.symbols if s.manual and s.symbol not in names)
        return (*fresh, *manual)

    async def start(self, symbols: Sequence[StreamedSymbol] | None = None) -> dict[str, Any]:
        """Run the start sequence (fresh symbols unless `symbols` resumes a known set)."""
        await self.transition(
            ConnectionState.STARTING, "start", phase=StartupPhase.RESOLVE, percent=2
        )
        try:
            return await self._start_steps(symbols)
        except asyncio.CancelledError:
            await self._discard_session()
            raise
        except Exception as failure:
            await self._discard_session()
            reason = str(failure) or type(failure).__name__
            await self.transition(ConnectionState.ERROR, reason, phase=StartupPhase.IDLE)
            raise CommandFailed(f"start failed: {reason}") from failure

    async def _start_steps(self, symbols: Sequence[StreamedSymbol] | None) -> dict[str, Any]:
        self._rest = self._rest or self._create_rest()
        await self.transition(
            ConnectionState.STARTING, "symbols", phase=StartupPhase.SYMBOLS, percent=5
        )
        if symbols is None:
            await self.traders.sync_positions()
        chosen = tuple(symbols) if symbols is not None else await self.resolve_symbols()
        if not chosen:
            raise CommandFailed(
                "no symbols: exchange_symbols has no active Tier 1 rows for this exchange "
                "(run livermore-symbols refresh) and no user with an account here has "
                "positions or a watchlist"
            )
        await self.persist(symbols=chosen)
        self.traders.apply_holders(chosen)
        names = [s.symbol for s in chosen]
        profile = mode_profile(self.running.mode, self.services.worker_settings.alert_cooldown_s)
        session = StreamingSession(self.services, self._rest, profile, self.on_adapter_lifecycle)
        self.session = session
        await self.transition(
            ConnectionState.STARTING, "backfill", phase=StartupPhase.BACKFILL, percent=10
        )
        report = await session.backfill(names, self._backfill_progress)
        await self.transition(
            ConnectionState.STARTING, "warmup", phase=StartupPhase.WARMUP, percent=50
        )
        await session.warmup(names, self._warmup_progress)
        freeze_warm_heap()
        await self.transition(
            ConnectionState.CONNECTING, "connect", phase=StartupPhase.CONNECT, percent=75
        )
        assert self.group is not None
        await session.connect(self.group, names)
        await session.wait_ready(self.services.worker_settings.connect_timeout_s)
        await self.transition(
            ConnectionState.CONNECTING, "boundary", phase=StartupPhase.BOUNDARY, percent=85
        )
        session.start_boundary(names)
        await self.transition(
            ConnectionState.CONNECTING, "alerts", phase=StartupPhase.ALERTS, percent=92
        )
        session.enable_alerts()
        await self.persist(started=True, paused=False)
        self._connected_at = datetime.now(UTC)
        await self.transition(
            ConnectionState.CONNECTED, "started", phase=StartupPhase.COMPLETE, percent=100
        )
        failed = [f"{f.symbol} {f.timeframe.value}: {f.error}" for f in report.failures]
        tier2 = sum(1 for s in chosen if s.tier is SymbolTier.TIER_2)
        return {
            "status": "started",
            "exchange": self.services.exchange.name.value,
            "symbol_count": len(chosen),
            "tier1_count": len(chosen) - tier2,
            "tier2_count": tier2,
            "users_served": self.traders.users_served,
            "failed_symbols": self.failed_symbols(),
            "mode": self.running.mode.value,
            "backfill": {"fetched": report.fetched, "trusted": report.trusted, "failed": failed},
        }

    async def stop_streaming(self, state: ConnectionState, reason: str) -> None:
        """Close the session (exchange connection, pipeline, boundary) and move to `state`."""
        await self._discard_session()
        self._connected_at = None
        await self.transition(state, reason, phase=StartupPhase.IDLE, percent=0)

    async def _discard_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(session.close()), SESSION_CLOSE_S)
        except TimeoutError:
            self._log.error("worker.session_close_stuck", after_s=SESSION_CLOSE_S)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # we are being cancelled, not just the session's own tasks
        except Exception as failure:  # its writes refused by the fence, or the store down
            self._log.warning("worker.session_close_failed", error=repr(failure)[:300])

    async def abandon_session(self) -> None:
        """Drop the streaming session after a failed term (its unsent writes are lost here)."""
        await self._discard_session()
        self._connected_at = None

    async def close_rest(self) -> None:
        """Release the REST client's HTTP session."""
        rest, self._rest = self._rest, None
        if rest is not None:
            await rest.aclose()

    def rest(self) -> RestClient:
        """Return the REST client, creating it on first use."""
        self._rest = self._rest or self._create_rest()
        return self._rest

    def _create_rest(self) -> RestClient:
        return create_rest_client(
            self.services.exchange, self._credentials(), clock_rate=self.identity.clock_rate
        )

    def _credentials(self) -> Credentials | None:
        user = self.identity.user
        if user is None or not user.api_key_env_var or not user.api_secret_env_var:
            return None
        key, secret = os.environ.get(user.api_key_env_var), os.environ.get(user.api_secret_env_var)
        if not key or not secret:
            self._log.warning("worker.credentials_missing", user=user.username)
            return None
        return Credentials(api_key=key, api_secret=SecretStr(secret))

    def _backfill_progress(self, progress: BackfillProgress) -> None:
        self._progress = StartupProgress(
            phase=StartupPhase.BACKFILL,
            percent=10 + 40 * progress.percent / 100,
            current_item=progress.current,
            eta_seconds=progress.eta_s,
        )
        self.status_dirty.set()

    def _warmup_progress(self, done: int, total: int, item: str) -> None:
        self._progress = StartupProgress(
            phase=StartupPhase.WARMUP, percent=50 + 20 * done / max(total, 1), current_item=item
        )
        self.status_dirty.set()
