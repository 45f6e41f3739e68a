"""`RepairGates`: the gap gates of `CandlePipeline` and the repairs that open them again.

A `GapNotice` closes a gate on its series: later live bars wait behind it while the missing
range is fetched over REST. **A repair never gives up**: a fetch that fails (REST down, 429s, a
contiguous venue whose REST lacks the range's newest bars yet) is retried with capped backoff
(`retry`: a policy, or only its cap in seconds, 60 by default) for as long as it takes, and the
gate stays closed meanwhile, so the series' alerts resume only once its history is whole. A
repair that has failed its first attempts is logged once as `pipeline.repair_pending`; status
pages show the count of gated series and the age of the oldest (`pending`, `oldest_age_s`).
One exception keeps a venue outage from freezing a series for good: once a repair has been
asked that often, a bar still missing *between* bars REST returns is taken as one the venue
never had (`pipeline.repair_hole_accepted`); missing newest bars are always waited for.

Pending repairs are durable (`livermore_cache.repairs.RepairStore`): a range is recorded when its
repair starts and removed only once its bars are written (`settle`, called by the pipeline after
a successful flush), so a restarted worker or a standby taking over loads the ranges and resumes
them (`CandlePipeline.resume`). A store that cannot be written is logged and never stops a repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from livermore_cache.candles import CandleCache
from livermore_cache.repairs import PendingRepair, RepairStore
from livermore_exchange_core import gaps
from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.errors import RetryableError
from livermore_exchange_core.events import GapNotice
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

T = TypeVar("T")

DEFAULT_RETRY_CAP_S = 60.0
"""The longest pause between two attempts of a pending repair (real time)."""
WARN_AFTER_ATTEMPTS = 6
"""A repair still failing after this many attempts is reported as pending (once)."""


class HasTimeframes(Protocol):
    """Anything naming the timeframes streamed (a worker mode's profile)."""

    @property
    def timeframes(self) -> Sequence[Timeframe]:
        """The timeframes."""
        ...


def now_ms() -> int:
    """Return the wall clock in epoch ms (repair ages are operational, not market time)."""
    return int(time.time() * 1000)


class RepairGates:
    """The gated series of one pipeline and their repair tasks (module docstring)."""

    def __init__(
        self,
        *,
        exchange_id: int,
        candles: CandleCache,
        repairer: gaps.Repairer | None,
        clock: ExchangeClock,
        post: Callable[[gaps.RepairDone], Awaitable[None]],
        last: dict[gaps.Series, int],
        tier2_user: Callable[[str], int | None],
        log: Any,
        store: RepairStore | None = None,
        retry: BackoffPolicy | float | None = None,
        rest_lag_ms: int = 3_000,
        max_concurrent: int = 16,
    ) -> None:
        self._exchange_id = exchange_id
        self._candles = candles
        self._fetcher = gaps.GapFetcher(repairer, log)
        self._has_repairer = repairer is not None
        self._clock = clock
        self._post = post
        self._last = last
        self._tier2_user = tier2_user
        self._log = log
        self.store = store
        cap_s = retry if isinstance(retry, float | int) else DEFAULT_RETRY_CAP_S
        self._retry = retry if isinstance(retry, BackoffPolicy) else BackoffPolicy(cap_s=cap_s)
        self._rest_lag_ms = rest_lag_ms
        # A reconnect gates every series at once; repairs share Redis and the REST limiter.
        self._slots = asyncio.Semaphore(max_concurrent)
        self.gates: dict[gaps.Series, gaps.Gate] = {}
        self.all_open = asyncio.Event()
        self.all_open.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.adopted: list[PendingRepair] = []
        """A predecessor's pending repairs taken over (`adopt`), not resumed yet."""
        self.attempts = 0
        self.failures = 0

    # ------------------------------------------------------------------ state

    @property
    def pending(self) -> int:
        """Series whose live bars wait behind a gap that REST has not filled yet."""
        return len(self.gates)

    def oldest_age_s(self) -> float | None:
        """Return how long the oldest open gate has waited (wall clock), None without one."""
        if not self.gates:
            return None
        return max(0.0, (now_ms() - min(g.opened_ms for g in self.gates.values())) / 1000)

    def get(self, series: gaps.Series) -> gaps.Gate | None:
        """Return the gate of a series, if it is gated."""
        return self.gates.get(series)

    # ------------------------------------------------------------------ opening, closing

    def open(self, notice: GapNotice, opened_ms: int | None = None) -> None:
        """Gate a series on a notice (queued behind an open gate of that series)."""
        series = (notice.symbol, notice.timeframe)
        gate = self.gates.get(series)
        if gate is not None:
            gate.waiting.append(notice)
            return
        self._start(series, gaps.Gate(notice, opened_ms=opened_ms or now_ms()))

    def follow(self, series: gaps.Series, gate: gaps.Gate) -> None:
        """Replace a finished gate with the next one of its series (a notice that waited)."""
        self._start(series, gate)

    def close(self, series: gaps.Series) -> None:
        """Open a series' gate for good (its repair is done)."""
        del self.gates[series]
        if not self.gates:
            self.all_open.set()

    def forget(self, names: set[str]) -> None:
        """Drop the gates (and cancel the repairs) of these symbols."""
        for series in [s for s in self.gates if s[0] in names]:
            if (task := self.gates.pop(series).task) is not None:
                task.cancel()
        if not self.gates:
            self.all_open.set()

    async def aclose(self) -> None:
        """Cancel every running repair and wait for them (their durable ranges stay)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start(self, series: gaps.Series, gate: gaps.Gate) -> None:
        self.gates[series] = gate
        self.all_open.clear()
        task = asyncio.get_running_loop().create_task(self._repair(series, gate))
        gate.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ durability

    def take_adopted(self) -> list[PendingRepair]:
        """Return (and forget) the adopted repairs not resumed yet."""
        adopted, self.adopted = self.adopted, []
        return adopted

    async def adopt(
        self,
        symbols: Iterable[str],
        profile: HasTimeframes,
        judged: Mapping[gaps.Series, int | None],
    ) -> dict[gaps.Series, int | None]:
        """Take over a predecessor's pending repairs of these symbols and timeframes.

        They are resumed by `CandlePipeline.resume`. Returns `judged` (the last bar judged per
        series) with each adopted series' judged bar moved before its range, so the bars of the
        range are judged (delayed) even when the backfill already stored them.
        """
        found = dict(judged)
        if self.store is None:
            return found
        names, timeframes = set(symbols), set(profile.timeframes)
        for repair in await self.store.load():
            if repair.symbol in names and repair.timeframe in timeframes:
                series = (repair.symbol, repair.timeframe)
                before = repair.since_ms - duration_ms(repair.timeframe)
                found[series] = min(found.get(series) or before, before)
                self.adopted.append(repair)
        return found

    async def record_many(self, pending: Sequence[PendingRepair]) -> None:
        """Record several pending ranges in one command (best effort: a failure is logged)."""
        if self.store is None or not pending:
            return
        try:
            await self.store.record(*pending)
        except Exception as err:
            self._log.warning("pipeline.repair_record_failed", series=len(pending), error=repr(err))

    async def record_unflushed(self, bars: Sequence[Candle]) -> None:
        """Record the ranges of bars that were never written, for whoever serves next."""
        self._log.error("pipeline.unflushed_at_stop", bars=len(bars))
        spans: dict[gaps.Series, tuple[int, int]] = {}
        for candle in bars:
            series = (candle.symbol, candle.timeframe)
            low, high = spans.get(series, (candle.open_time, candle.open_time))
            spans[series] = (min(low, candle.open_time), max(high, candle.open_time))
        opened = now_ms()
        pending = []
        for (symbol, timeframe), (low, high) in spans.items():
            until = high + duration_ms(timeframe)
            pending.append(PendingRepair(symbol, timeframe, low, until, until, opened, "unflushed"))
        await self.record_many(pending)

    async def settle(self, series: Iterable[gaps.Series]) -> None:
        """Remove the durable ranges of series whose bars are written (unless gated again)."""
        done = [s for s in series if s not in self.gates]
        if self.store is None or not done:
            return
        try:
            await self.store.remove(done)
        except Exception as err:  # left behind: the next holder repairs a whole range, no harm
            self._log.warning("pipeline.repair_settle_failed", series=len(done), error=repr(err))

    # ------------------------------------------------------------------ repairing

    async def _repair(self, series: gaps.Series, gate: gaps.Gate) -> None:
        notice = gate.notice
        bars: Sequence[Candle] = ()
        since = await self._retrying(series, lambda: self._anchor(series, notice))
        if since is not None and since < notice.until_ms and self._has_repairer:
            await self.record_many(
                [
                    PendingRepair(
                        series[0],
                        series[1],
                        since,
                        notice.until_ms,
                        notice.ready_at_ms,
                        gate.opened_ms,
                        notice.reason,
                        notice.contiguous,
                    )
                ]
            )
            # REST decides "closed" on its own estimate of exchange time; give it a margin.
            await self._clock.wait_until(notice.ready_at_ms + self._rest_lag_ms)
            bars = await self._fetch_until_whole(series, since, notice)
        await self._post(gaps.RepairDone(series, bars))

    async def _fetch_until_whole(
        self, series: gaps.Series, since: int, notice: GapNotice
    ) -> Sequence[Candle]:
        self.attempts += 1
        tries = itertools.count(1)
        return await self._retrying(
            series,
            lambda: self._fetcher.fetch(
                series, since, notice, settled=next(tries) > WARN_AFTER_ATTEMPTS
            ),
        )

    async def _retrying(self, series: gaps.Series, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` (holding a repair slot) until it succeeds, with capped backoff."""
        backoff = Backoff(self._retry, random.Random())
        while True:
            try:
                async with self._slots:
                    return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self.failures += 1
                delay = backoff.next_delay()
                if isinstance(err, RetryableError) and err.retry_after_s:
                    delay = min(max(delay, err.retry_after_s), self._retry.cap_s)
                self._report(series, backoff.attempt, delay, err)
                await asyncio.sleep(delay)

    def _report(self, series: gaps.Series, attempt: int, delay: float, err: Exception) -> None:
        fields = {
            "symbol": series[0],
            "timeframe": series[1].value,
            "attempt": attempt,
            "delay_s": round(delay, 3),
            "error": f"{type(err).__name__}: {err}"[:300],
        }
        if attempt == WARN_AFTER_ATTEMPTS:
            self._log.error("pipeline.repair_pending", **fields)
        else:
            self._log.warning("pipeline.repair_retry", **fields)

    async def _anchor(self, series: gaps.Series, notice: GapNotice) -> int | None:
        """Return the first open time to repair: after the newest bar delivered or stored."""
        step = duration_ms(series[1])
        last = self._last.get(series)
        if last is not None:
            return last + step
        if notice.since_ms is not None:
            return notice.since_ms
        recent = await self._candles.recent(
            self._exchange_id, series[0], series[1], 2, user_id=self._tier2_user(series[0])
        )
        closed = [c.open_time for c in recent if c.closed]
        if closed:
            self._last[series] = closed[-1]
            return closed[-1] + step
        return None  # nothing to anchor on: the startup backfill owns history
