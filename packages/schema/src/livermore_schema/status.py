"""Worker connection status (`exchange:status:*`) and lifecycle events."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from livermore_schema._base import Message
from livermore_schema.enums import ConnectionState, StartupPhase, WorkerMode, WorkerRole


class StartupProgress(Message):
    """Where the start sequence is."""

    phase: StartupPhase
    percent: float = Field(ge=0, le=100)
    current_item: str | None = None
    eta_seconds: float | None = None


class AccountSyncStatus(Message):
    """The last position sync of one user's account on the worker's exchange."""

    user_id: int
    outcome: str
    """`synced`, `api_managed` (no credentials in the environment) or `failed`."""
    message: str
    synced_at: datetime
    positions: int = Field(default=0, ge=0)


class ConnectionStatus(Message):
    """A worker's published state; a stale `last_heartbeat` means the worker is dead."""

    exchange_id: int = Field(ge=1)
    exchange_name: str
    connection_state: ConnectionState
    connected_at: datetime | None = None
    last_heartbeat: datetime
    error: str | None = None
    worker_id: str
    role: WorkerRole = WorkerRole.ACTIVE
    mode: WorkerMode = WorkerMode.POSITION_MONITOR
    symbol_count: int = Field(default=0, ge=0)
    progress: StartupProgress | None = None
    heartbeat_interval_s: float = Field(default=5.0, gt=0)
    tier1_count: int = Field(default=0, ge=0)
    tier2_count: int = Field(default=0, ge=0)
    users_served: int = Field(default=0, ge=0)
    """Active users with an active account on the exchange, whose Tier 2 the worker streams."""
    failed_symbols: dict[str, str] = Field(default_factory=dict)
    """Symbols the exchange refused to stream, with its reason; the rest stream."""
    position_sync: list[AccountSyncStatus] = Field(default_factory=list)
    pending_repairs: int = Field(default=0, ge=0)
    """Series whose gap REST has not filled yet (their alerts wait until it has)."""
    oldest_repair_age_s: float | None = Field(default=None, ge=0)
    """How long the oldest pending repair has waited (None: none pending)."""

    def is_stale(self, now: datetime, missed_beats: int = 3) -> bool:
        """Return whether `missed_beats` heartbeats have been missed at `now`."""
        return (
            now - self.last_heartbeat
        ).total_seconds() > missed_beats * self.heartbeat_interval_s


class LifecycleEvent(Message):
    """A state change published on `channel:exchange:{exchange_id}:lifecycle`."""

    exchange_id: int = Field(ge=1)
    exchange_name: str
    state: ConnectionState
    reason: str | None = None
    attempt: int = Field(default=0, ge=0)
    timestamp: datetime
    worker_id: str | None = None
    progress: StartupProgress | None = None
