"""`ReconciliationSweep`: a slow background re-read of recent closed bars, corrected in place.

The live path is exact while every frame arrives, but some damage is invisible to it: Coinbase
trades that arrive after their minute closed and fall across a reconnect, a lost frame inside a
bar, a bar written wrong by anything else. The sweep visits the series one at a time, in turn, and
re-reads each one's newest settled closed bars over REST (`bars` of them, one request), compares
them with the cache and hands every bar that differs (or is missing, or stored unfinished) to the
pipeline as a revision (`on_candle_revised`), the one path of closed bars, so a correction is
written, published and re-evaluated like any other.

It stays out of the way: one request every `interval_s` (a small fixed share of the venue's
budget, through the same limiter), nothing while the pipeline has repairs pending or `busy()` says
other REST work runs (a boundary wave: those take the budget first), only bars the pipeline has
already delivered (the live path owns the newest), only bars closed `settle_ms` ago in exchange
time (REST may lag a close), and nothing older than the oldest cached bar of the window (history
the backfill never fetched is not a hole).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from livermore_exchange_core.base import RestClient
from livermore_exchange_core.errors import LivermoreExchangeError
from livermore_exchange_core.reconciliation import CandleStore
from livermore_exchange_core.telemetry import traffic
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms, floor_to_boundary

log = structlog.get_logger(__name__)

Series = tuple[str, Timeframe]


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """How fast and how far back the sweep reads (`LIVERMORE_RECONCILE_*`)."""

    interval_s: float = 5.0
    """Seconds between two sweep requests (Coinbase's 10/s: 2% of the budget)."""
    bars: int = 60
    """Newest settled bars re-read per series (one request; Binance weight 1 below 100)."""
    settle_ms: int = 60_000
    """Exchange ms after a bar's close before it is compared (REST may lag a close)."""


@dataclass(slots=True)
class SweepStats:
    """What the sweep has done (status, tests)."""

    checks: int = 0
    bars_compared: int = 0
    corrections: int = 0
    rounds: int = 0
    failures: int = 0
    skipped_busy: int = 0


class RevisionSink(Protocol):
    """The slice of `CandlePipeline` the sweep uses."""

    @property
    def pending_repairs(self) -> int:
        """Series waiting for a gap repair (the sweep waits while there are any)."""
        ...

    def last_open_time(self, symbol: str, timeframe: Timeframe) -> int | None:
        """Return the open time of the newest bar delivered for a series."""
        ...

    async def on_candle_revised(self, candle: Candle) -> None:
        """Queue a corrected copy of a closed bar delivered before."""
        ...


def same_bar(cached: Candle, fetched: Candle) -> bool:
    """Return whether a cached closed bar carries the REST bar's values."""
    return cached.closed and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
        for a, b in (
            (cached.open, fetched.open),
            (cached.high, fetched.high),
            (cached.low, fetched.low),
            (cached.close, fetched.close),
            (cached.volume, fetched.volume),
        )
    )


class ReconciliationSweep:
    """Re-reads recent closed bars of each series in turn and corrects the cache (module doc)."""

    def __init__(
        self,
        rest_client: RestClient,
        candle_cache: CandleStore,
        sink: RevisionSink,
        *,
        exchange_id: int,
        exchange_name: str,
        series: Callable[[], Sequence[Series]],
        now_ms: Callable[[], int],
        user_ids: Mapping[str, int] | None = None,
        config: SweepConfig | None = None,
        busy: Callable[[], bool] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._rest = rest_client
        self._cache = candle_cache
        self._sink = sink
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._series = series
        self._now_ms = now_ms
        self._user_ids: Mapping[str, int] = user_ids if user_ids is not None else {}
        self.config = config or SweepConfig()
        self._busy = busy
        self._sleep = sleep
        self._queue: list[Series] = []
        self._round = asyncio.Condition()
        self.stats = SweepStats()
        self._log = log.bind(exchange=exchange_name)

    async def run(self) -> None:
        """Check one series every `interval_s`, for ever (cancel to stop)."""
        while True:
            await self._sleep(self.config.interval_s)
            if self._sink.pending_repairs or (self._busy is not None and self._busy()):
                self.stats.skipped_busy += 1
                continue
            series = await self._next()
            if series is None:
                continue
            try:
                await self.check(*series)
            except LivermoreExchangeError as error:
                self.stats.failures += 1
                self._log.warning("sweep.check_failed", symbol=series[0], error=str(error))
            except Exception:
                self.stats.failures += 1
                self._log.exception("sweep.check_failed", symbol=series[0])

    async def _next(self) -> Series | None:
        if not self._queue:
            if self.stats.checks:
                async with self._round:
                    self.stats.rounds += 1
                    self._round.notify_all()
            self._queue = list(reversed(self._series()))
        return self._queue.pop() if self._queue else None

    async def wait_rounds(self, count: int) -> None:
        """Return once `count` more full passes over every series have ended."""
        target = self.stats.rounds + count
        async with self._round:
            await self._round.wait_for(lambda: self.stats.rounds >= target)

    async def check(self, symbol: str, timeframe: Timeframe) -> int:
        """Compare a series' newest settled delivered bars with REST; return the corrections."""
        last = self._sink.last_open_time(symbol, timeframe)
        if last is None:
            return 0  # nothing delivered yet: the backfill and the live path own it
        step = duration_ms(timeframe)
        settled = floor_to_boundary(self._now_ms() - self.config.settle_ms, timeframe)
        end = min(last + step, settled)
        start = end - self.config.bars * step
        if end <= start:
            return 0
        self.stats.checks += 1
        fetched = await self._rest.get_candles(symbol, timeframe, start_ms=start, end_ms=end)
        user_id = self._user_ids.get(symbol)
        cached = await self._cache.between(
            self._exchange_id, symbol, timeframe, start, end - 1, user_id=user_id
        )
        have = {candle.open_time: candle for candle in cached}
        # History before the oldest cached bar is the backfill's, not a hole to fill here.
        oldest = min(have, default=end)
        corrections = 0
        for bar in fetched:
            if not bar.closed or not oldest <= bar.open_time < end:
                continue
            self.stats.bars_compared += 1
            stored = have.get(bar.open_time)
            if stored is not None and same_bar(stored, bar):
                continue
            await self._sink.on_candle_revised(bar)
            corrections += 1
            self._log.info(
                "sweep.corrected",
                symbol=symbol,
                tf=timeframe.value,
                open_time=bar.open_time,
                was="missing" if stored is None else ("open" if not stored.closed else "wrong"),
            )
        self.stats.corrections += corrections
        counts = traffic(self._exchange_name)
        counts.reconciled_bars += len(fetched)
        counts.reconcile_corrections += corrections
        return corrections
