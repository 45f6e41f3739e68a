"""Following the workers (lifecycle channel and status keys) and the alert channels."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from livermore_cache.pubsub import Subscription
from livermore_cache.status import StatusStore
from livermore_demo.console import Console, format_alert, format_progress
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState
from livermore_schema.status import LifecycleEvent, StartupProgress

PROGRESS_STEP = 20.0
"""Percent steps worth a new progress line within one startup phase."""

STATUS_POLL_S = 1.0

_STARTUP = frozenset({ConnectionState.STARTING, ConnectionState.CONNECTING})


class WorkerWatch:
    """Tracks each demo worker's state, prints a line when it changes, knows when all connected."""

    def __init__(self, exchanges: Mapping[int, str], console: Console) -> None:
        self.exchanges = dict(exchanges)
        self._console = console
        self._states: dict[int, ConnectionState] = {}
        self._shown: dict[int, tuple[ConnectionState, str, int]] = {}
        self.all_connected = asyncio.Event()

    def observe(
        self,
        exchange_id: int,
        state: ConnectionState,
        progress: StartupProgress | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a worker's state (from either source); print it when it says something new."""
        name = self.exchanges.get(exchange_id)
        if name is None or (
            self._states.get(exchange_id) is ConnectionState.CONNECTED and state in _STARTUP
        ):
            return  # late startup news (the two sources race); a restart passes through idle
        self._states[exchange_id] = state
        key = self._key(exchange_id, state, progress)
        if self._shown.get(exchange_id) != key:
            self._shown[exchange_id] = key
            self._console.say(format_progress(name, state, progress, reason))
        if all(self._states.get(ex) is ConnectionState.CONNECTED for ex in self.exchanges):
            self.all_connected.set()

    def _key(
        self, exchange_id: int, state: ConnectionState, progress: StartupProgress | None
    ) -> tuple[ConnectionState, str, int]:
        shown = self._shown.get(exchange_id)
        # Lifecycle events may omit the progress the status key carries: nothing new then.
        if state is ConnectionState.CONNECTED or (
            progress is None and shown is not None and shown[0] is state
        ):
            return shown if shown is not None and shown[0] is state else (state, "", -1)
        if progress is None:
            return (state, "", -1)
        return (state, progress.phase.value, int(progress.percent // PROGRESS_STEP))

    def state(self, exchange_id: int) -> ConnectionState | None:
        """Return the worker's last known state (None before any news)."""
        return self._states.get(exchange_id)

    def describe(self) -> str:
        """Return each worker's last known state, for a timeout message."""
        return ", ".join(
            f"{name} {self._states[ex].value if ex in self._states else 'no status'}"
            for ex, name in self.exchanges.items()
        )


async def follow_lifecycle(events: Subscription[LifecycleEvent], watch: WorkerWatch) -> None:
    """Feed every lifecycle event into `watch` (runs until cancelled)."""
    async for _channel, event in events:
        watch.observe(event.exchange_id, event.state, event.progress, event.reason)


async def poll_status(store: StatusStore, watch: WorkerWatch) -> None:
    """Feed the workers' status keys into `watch` every second (runs until cancelled).

    Lifecycle events carry the transitions; the status key also carries progress between them.
    """
    ids = list(watch.exchanges)
    while True:
        statuses = await store.read_all(ids)
        for exchange_id, status in statuses.items():
            if status is not None:
                watch.observe(exchange_id, status.connection_state, status.progress, status.error)
        await asyncio.sleep(STATUS_POLL_S)  # a polling period, not synchronisation


async def print_alerts(alerts: Subscription[AlertEvent], console: Console) -> None:
    """Print one line per alert from any exchange (runs until cancelled)."""
    async for _channel, event in alerts:
        console.say(format_alert(event))
