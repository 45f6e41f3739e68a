"""What keeps a session's cache honest beside the live stream: exchange time and the sweep.

REST judges "closed" on its `ServerClock`, which follows the session's stream (`ExchangeClock`)
so it never trails an event time already seen; the reconciliation sweep (`LIVERMORE_RECONCILE_*`)
re-reads recent closed bars and corrects the cache through the session's pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

from livermore_exchange_core.base import ExchangeAdapter, RestClient
from livermore_exchange_core.boundary import BoundaryRestService
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.pipeline import CandlePipeline
from livermore_exchange_core.servertime import ServerClock
from livermore_exchange_core.sweep import ReconciliationSweep, Series, SweepConfig

if TYPE_CHECKING:
    from livermore_worker.wiring import ModeProfile, Services


class Session(Protocol):
    """The parts of a `StreamingSession` the sweep reads (at each turn: the mode may change)."""

    clock: ExchangeClock
    pipeline: CandlePipeline
    adapter: ExchangeAdapter
    profile: ModeProfile
    boundary: BoundaryRestService | None


def follow_stream_time(rest: RestClient, clock: ExchangeClock) -> None:
    """Make the REST client's exchange time never trail the stream's latest event time."""
    server_clock = getattr(rest, "clock", None)
    if isinstance(server_clock, ServerClock):
        server_clock.follow(clock.now_ms)


class SessionSweep:
    """A session's reconciliation sweep and the task that runs it."""

    def __init__(self, rest: RestClient, services: Services, session: Session) -> None:
        follow_stream_time(rest, session.clock)
        settings = services.worker_settings
        self._interval_s = settings.reconcile_interval_s
        self._session = session
        self.sweep = ReconciliationSweep(
            rest,
            services.candles,
            session.pipeline,
            exchange_id=services.exchange.exchange_id,
            exchange_name=services.exchange.name.value,
            series=self.series,
            now_ms=session.clock.now_ms,
            user_ids=services.tier2,
            busy=self.busy,
            config=SweepConfig(
                interval_s=settings.reconcile_interval_s,
                bars=settings.reconcile_bars,
                settle_ms=int(settings.reconcile_settle_s * 1000),
            ),
        )
        self._task: asyncio.Task[None] | None = None

    def series(self) -> list[Series]:
        """Every streamed symbol x the mode's timeframes (higher ones included on Coinbase)."""
        symbols = sorted({symbol for symbol, _ in self._session.adapter.subscriptions})
        return [(s, tf) for s in symbols for tf in self._session.profile.timeframes]

    def busy(self) -> bool:
        """Whether a boundary wave fetches now (the sweep waits its turn)."""
        boundary = self._session.boundary
        return boundary is not None and boundary.in_flight

    def start(self, group: asyncio.TaskGroup) -> None:
        """Run the sweep in `group` unless `LIVERMORE_RECONCILE_INTERVAL_S` is 0."""
        if self._interval_s > 0 and self._task is None:
            self._task = group.create_task(self.sweep.run(), name="reconcile")

    async def stop(self) -> None:
        """Cancel the sweep and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
