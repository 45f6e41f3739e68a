"""`StartupBackfill`: every symbol x timeframe to >= N closed candles before streaming starts.

Highest timeframes first (they are the slowest to recover from the stream), many series at once
but every request inside the exchange's shared rate limiter, progress with percent and ETA after
each series, a failed series retried a bounded number of times and reported, never fatal to the
others. On a restart the cache is trusted where it already holds N closed bars ending at the latest
closed bar; otherwise only the missing tail is fetched. "Latest closed bar" is decided in exchange
time (one `server_time_ms()` at the start), never by the local clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from livermore_exchange_core.base import RestClient
from livermore_exchange_core.candle_range import latest_closed_open_ms
from livermore_exchange_core.errors import GeoBlockedError, LivermoreExchangeError, RetryableError
from livermore_exchange_core.reconciliation import CandleStore
from livermore_schema.enums import Timeframe
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

CLOSE_GRACE_MS = 1000
"""A bar counts as closed this long after its end (exchange time), as in `ServerClock`."""


@dataclass(frozen=True, slots=True)
class BackfillProgress:
    """Where a backfill run stands, reported after each series."""

    done: int
    total: int
    failed: int
    current: str
    elapsed_s: float

    @property
    def percent(self) -> float:
        """Return the share of series finished, 0-100."""
        return 100.0 if self.total == 0 else 100.0 * self.done / self.total

    @property
    def eta_s(self) -> float | None:
        """Return the estimated seconds left (None before the first series finishes)."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)


@dataclass(frozen=True, slots=True)
class SeriesFailure:
    """One series that could not be backfilled, with the last error."""

    symbol: str
    timeframe: Timeframe
    error: str
    attempts: int


@dataclass(slots=True)
class BackfillReport:
    """What a run did: series trusted from the cache, fetched, failed; bars written; time."""

    total: int = 0
    trusted: int = 0
    fetched: int = 0
    candles_written: int = 0
    failures: list[SeriesFailure] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Return whether every series is complete."""
        return not self.failures


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """The open-time range `[start_ms, end_ms)` one series still needs."""

    start_ms: int
    end_ms: int


def plan_series(
    cached_closed_open_times: Sequence[int], latest_closed_ms: int, count: int, step_ms: int
) -> FetchPlan | None:
    """Return what to fetch so the series spans `count` closed bars up to `latest_closed_ms`.

    Coverage is measured as a span of bar slots, not a number of bars, because Coinbase omits
    buckets without trades (holes inside the span are the gap repairer's job). None when the
    cache spans enough and is fresh; the missing tail when it spans enough but ends early; the
    whole newest window otherwise.
    """
    end = latest_closed_ms + step_ms
    window = FetchPlan(end - count * step_ms, end)
    if not cached_closed_open_times:
        return window
    newest = max(cached_closed_open_times)
    span = (newest - min(cached_closed_open_times)) // step_ms + 1
    if span < count:
        return window
    if newest >= latest_closed_ms:
        return None
    tail = FetchPlan(newest + step_ms, end)
    return tail if (tail.end_ms - tail.start_ms) // step_ms < count else window


class StartupBackfill:
    """Fills the candle cache for a symbol list over REST, inside the shared rate limit."""

    def __init__(
        self,
        rest_client: RestClient,
        candle_cache: CandleStore,
        *,
        exchange_id: int,
        exchange_name: str,
        candles_per_series: int = 100,
        concurrency: int = 16,
        max_attempts: int = 3,
        progress: Callable[[BackfillProgress], None] | None = None,
    ) -> None:
        self._rest = rest_client
        self._cache = candle_cache
        self._exchange_id = exchange_id
        self._count = candles_per_series
        self._concurrency = max(1, concurrency)
        self._max_attempts = max(1, max_attempts)
        self._progress = progress
        self._log = log.bind(exchange=exchange_name)

    async def run(
        self,
        symbols: Sequence[str],
        timeframes: Sequence[Timeframe],
        *,
        user_ids: Mapping[str, int] | None = None,
    ) -> BackfillReport:
        """Backfill every symbol x timeframe, highest timeframe first; return the report.

        Raises:
            GeoBlockedError: the exchange refuses this location (no series could succeed).
        """
        started = time.monotonic()
        closed_before = await self._rest.server_time_ms() - CLOSE_GRACE_MS
        ordered = sorted(set(timeframes), key=duration_ms, reverse=True)
        queue: asyncio.Queue[tuple[str, Timeframe]] = asyncio.Queue()
        for timeframe in ordered:
            for symbol in symbols:
                queue.put_nowait((symbol, timeframe))
        report = BackfillReport(total=queue.qsize())
        users = user_ids or {}

        async def worker() -> None:
            while not queue.empty():
                symbol, timeframe = queue.get_nowait()
                latest = latest_closed_open_ms(closed_before, timeframe)
                await self._series(symbol, timeframe, latest, users.get(symbol), report)
                self._report(report, f"{symbol} {timeframe.value}", started)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self._concurrency, report.total)):
                    group.create_task(worker())
        except* GeoBlockedError as blocked:
            raise blocked.exceptions[0] from None
        report.elapsed_s = time.monotonic() - started
        self._log.info(
            "backfill.done",
            total=report.total,
            trusted=report.trusted,
            fetched=report.fetched,
            failed=len(report.failures),
            candles=report.candles_written,
            elapsed_s=round(report.elapsed_s, 2),
        )
        return report

    def _report(self, report: BackfillReport, current: str, started: float) -> None:
        if self._progress is None:
            return
        done = report.trusted + report.fetched + len(report.failures)
        self._progress(
            BackfillProgress(
                done, report.total, len(report.failures), current, time.monotonic() - started
            )
        )

    async def _series(
        self,
        symbol: str,
        timeframe: Timeframe,
        latest_closed_ms: int,
        user_id: int | None,
        report: BackfillReport,
    ) -> None:
        error: Exception | None = None
        attempts = 0
        for _ in range(self._max_attempts):
            attempts += 1
            try:
                written = await self._fill(symbol, timeframe, latest_closed_ms, user_id)
            except GeoBlockedError:
                raise
            except LivermoreExchangeError as failure:
                error = failure
                if not isinstance(failure, RetryableError):
                    break
                continue
            except Exception as failure:  # a bug in one series must not sink the others
                self._log.exception("backfill.series_crashed", symbol=symbol, tf=timeframe.value)
                error = failure
                break
            if written is None:
                report.trusted += 1
            else:
                report.fetched += 1
                report.candles_written += written
            return
        self._log.warning(
            "backfill.series_failed", symbol=symbol, timeframe=timeframe.value, error=str(error)
        )
        report.failures.append(SeriesFailure(symbol, timeframe, str(error), attempts))

    async def _fill(
        self, symbol: str, timeframe: Timeframe, latest_closed_ms: int, user_id: int | None
    ) -> int | None:
        step = duration_ms(timeframe)
        cached = await self._cache.recent(
            self._exchange_id, symbol, timeframe, self._count + 2, user_id=user_id
        )
        closed = [c.open_time for c in cached if c.closed and c.open_time <= latest_closed_ms]
        plan = plan_series(closed, latest_closed_ms, self._count, step)
        if plan is None:
            return None
        candles = await self._rest.get_candles(
            symbol, timeframe, start_ms=plan.start_ms, end_ms=plan.end_ms
        )
        closed_candles = [c for c in candles if c.closed]
        return await self._cache.write_many(closed_candles, user_id=user_id)
