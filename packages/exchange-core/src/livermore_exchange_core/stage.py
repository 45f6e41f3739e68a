"""`ClosedBarStage`: the one path every closed bar takes, a burst at a time.

Bars from any source (the live stream, gap repair, the boundary REST service, revisions) reach
it through `CandlePipeline`, which decides what is new and keeps each series in open-time order.
A burst (every bar that arrived together: 6,000 at a day boundary) goes through:

1. candle write (the SPEC 3.2 replacement script) -> close publish, one script per bar;
2. the MACD-V update of every warm series, in process, and its indicator write -> publish (one
   script);
3. the alert claim of every new value (`AlertEvaluator.queue_claims`, planned on the alert
   state the evaluator knows, read once per series with `prefetch`);
4. `flush`: all of it as ONE round trip on one connection (`WriteBatch`), in order, so every
   publish reaches subscribers after its write ("published after written"); a large burst goes
   in parts of `part_size` bars split by series (a series never spans two parts), each sent as
   soon as it is prepared, so Redis works through one while the next is prepared; the cyclic
   garbage collector is paused while such a burst runs (its passes, 50-100 ms a boundary, come
   after the burst's alerts instead of inside it);
5. `AlertEvaluator.judge`: the claims' answers, then the cooldowns and reads, then the alert
   publishes, one round trip each; cold series (no state yet, or a warm-up in progress) are
   seeded from the cache, which now holds their bars, and judged after (rare: after a start);
6. the followers (the boundary service) learn which bars closed (revisions too).

A revision (a corrected copy of a delivered bar) is written and published, then the series is
rebuilt from the corrected history (`IndicatorCalculator.on_closed_candle`), its latest value
re-published and judged again: a changed value of the last judged bar may fire what it newly
triggers (`delayed`), never a label twice for the same bar.

A burst whose flush fails raises `BurstFailed` naming the bars that were not flushed (a part
that went out is done); their series' indicator state is dropped, so when the caller hands the
same bars in again (`CandlePipeline` keeps them, never drops them) the series is re-seeded from
the cache and every bar is rated and judged once, in order. Bars in `delayed` (repaired, or
caught up at start) fire their alerts flagged `delayed`.
Closed bars, published alerts and the close->alert lag (a burst entering the stage -> its alerts
published) are counted per exchange in `telemetry`, once per burst.
"""

from __future__ import annotations

import asyncio
import gc
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_exchange_core.alerts.claims import NONE_DELAYED, Delayed, Planned, Rated
from livermore_exchange_core.alerts.evaluator import AlertEvaluator
from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.telemetry import ExchangeTraffic, traffic
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle

log = structlog.get_logger(__name__)


class BurstFailed(Exception):
    """A burst's flush failed: `bars` (each series oldest first) were not written or announced."""

    def __init__(self, bars: Sequence[Candle], cause: Exception) -> None:
        super().__init__(f"{len(bars)} bars not flushed: {type(cause).__name__}: {cause}")
        self.bars = list(bars)
        self.cause = cause


class CloseFollower(Protocol):
    """Told which bars were stored and announced (new ones and revisions): the boundary service."""

    def on_closed_bars(self, bars: Sequence[Candle]) -> None:
        """Note flushed bars, oldest first per series; must not block."""


@dataclass(slots=True)
class StageStats:
    """Counters a test or a benchmark can read."""

    bursts: int = 0
    bars: int = 0
    revisions: int = 0
    values: int = 0
    seeded: int = 0
    alerts: int = 0


@dataclass(slots=True)
class Burst:
    """A prepared burst: its queued commands, the bars it carries, the values still to rate."""

    batch: WriteBatch
    bars: list[Candle] = field(default_factory=list)
    cold: list[Candle] = field(default_factory=list)
    values: list[Rated] = field(default_factory=list)
    evaluator: AlertEvaluator | None = None
    delayed: Delayed = NONE_DELAYED
    claims: list[Planned] = field(default_factory=list)
    """Alert claims queued behind the writes (settled with the flush's replies)."""


class ClosedBarStage:
    """Writes, publishes, rates and alerts closed bars a burst at a time (module docstring)."""

    def __init__(
        self,
        *,
        candles: CandleCache,
        publisher: Publisher,
        calculator: IndicatorCalculator | None = None,
        evaluator: AlertEvaluator | None = None,
        timeframes: Iterable[Timeframe] | None = None,
        user_id: int | None = None,
        tier2_users: Mapping[str, int] | None = None,
        followers: Iterable[CloseFollower] = (),
        part_size: int = 1_000,
    ) -> None:
        self._candles = candles
        self._publisher = publisher
        self._calculator = calculator
        self.evaluator = evaluator
        """Alerts are evaluated while set (a worker sets it once its start sequence is done)."""
        self.timeframes: frozenset[Timeframe] | None = (
            None if timeframes is None else frozenset(timeframes)
        )
        """The timeframes rated (the worker mode's); None rates every timeframe."""
        self._user_id = user_id
        self.tier2_users: dict[str, int] = dict(tier2_users or {})
        self.followers: list[CloseFollower] = list(followers)
        self.part_size = part_size
        """A burst larger than this goes out in parts (by series), each sent while the next is
        prepared, so Redis runs one part while this process rates the next."""
        self.stats = StageStats()

    async def process(self, bars: Sequence[Candle], delayed: Delayed = NONE_DELAYED) -> None:
        """Run one burst of new closed bars (each series oldest first) through the whole path.

        Raises:
            BurstFailed: a part's write failed; it names the bars not flushed (nothing after
                their write ran), the rest went through.
        """
        entered = time.perf_counter()
        evaluator = self.evaluator
        if evaluator is not None:  # the claims are planned on the stored alert states
            await evaluator.prefetch([(c.symbol, c.timeframe) for c in bars if self._rated(c)])
        parts = _parts(bars, self.part_size)
        if len(parts) == 1:  # between boundaries: no task, no extra turn of the loop
            burst = self.prepare(parts[0], evaluator, delayed)
            if burst.bars:
                try:
                    replies = await self.flush(burst)
                except Exception as error:
                    raise self._failed(burst.bars, error) from error
                await self._finish(burst, replies, entered)
            return
        paused = gc.isenabled()
        if paused:  # a boundary's burst: the cyclic collector runs once its alerts are out
            gc.disable()
        try:
            await self._process_parts(parts, evaluator, delayed, entered)
        finally:
            if paused:
                gc.enable()

    async def _process_parts(
        self,
        parts: list[list[Candle]],
        evaluator: AlertEvaluator | None,
        delayed: Delayed,
        entered: float,
    ) -> None:
        flights: list[tuple[Burst, asyncio.Future[list[Any]]]] = []
        for part in parts:
            burst = self.prepare(part, evaluator, delayed)
            if not burst.bars:
                continue
            flights.append((burst, asyncio.ensure_future(self.flush(burst))))
            await asyncio.sleep(0)  # it goes out while the next part is prepared
        unflushed: list[Candle] = []
        failure: Exception | None = None
        for burst, flight in flights:  # the first part's alerts go out while the rest fly
            try:
                replies = await flight
            except Exception as error:
                failure = failure or error
                unflushed.extend(burst.bars)
                continue
            await self._finish(burst, replies, entered)
        if failure is not None:
            raise self._failed(unflushed, failure) from failure

    def _failed(self, bars: Sequence[Candle], error: Exception) -> BurstFailed:
        """Forget the indicator state the failed bars advanced (re-seeded when they return)."""
        series = {(c.symbol, c.timeframe) for c in bars}
        if self.evaluator is not None:
            self.evaluator.forget(series)
        if self._calculator is not None:
            for symbol, timeframe in series:
                self._calculator.reset(symbol, timeframe)
        return BurstFailed(bars, error)

    def prepare(
        self,
        bars: Sequence[Candle],
        evaluator: AlertEvaluator | None = None,
        delayed: Delayed = NONE_DELAYED,
    ) -> Burst:
        """Queue a burst's writes, publishes and (with `evaluator`) alert claims; no I/O."""
        burst = Burst(self._candles.batch(), evaluator=evaluator, delayed=delayed)
        cold: set[tuple[str, Timeframe]] = set()
        for candle in bars:
            if not candle.closed or candle.synthetic:
                continue  # only real closed bars are stored and announced
            user_id = self.tier2_users.get(candle.symbol)
            announce = self._publisher.close_channels(candle, user_id=self._user_id)
            self._candles.add_write(burst.batch, candle, user_id=user_id, announce=announce)
            burst.bars.append(candle)
            if not self._rated(candle):
                continue
            series = (candle.symbol, candle.timeframe)
            assert self._calculator is not None
            value = None if series in cold else self._calculator.advance(candle)
            if value is None:
                cold.add(series)  # its later bars of this burst wait for the seeding too
                burst.cold.append(candle)
                continue
            self._calculator.add_value(burst.batch, value, user_id)
            burst.values.append((value, user_id))
        if evaluator is not None:
            burst.claims = evaluator.queue_claims(burst.batch, burst.values, delayed)
        return burst

    async def flush(self, burst: Burst) -> list[Any]:
        """Send a prepared burst's commands: one round trip, in order; return the replies."""
        return await burst.batch.flush()

    async def _finish(self, burst: Burst, replies: list[Any], entered: float) -> None:
        self.stats.values += len(burst.values)
        counts = traffic(burst.bars[0].exchange)
        counts.closed_bars += len(burst.bars)
        if burst.evaluator is not None and burst.claims:
            try:
                fired = await burst.evaluator.judge(burst.claims, replies)
            except Exception:
                log.exception("stage.alerts_failed", values=len(burst.claims))
            else:
                self.stats.alerts += fired
                _count_alerts(counts, fired, entered)
        seeded: list[Rated] = []
        for candle in burst.cold:
            assert self._calculator is not None
            user_id = self.tier2_users.get(candle.symbol)
            try:
                value = await self._calculator.on_closed_candle(candle, user_id=user_id)
            except Exception:
                log.exception("stage.seed_failed", symbol=candle.symbol, tf=candle.timeframe.value)
                continue
            self.stats.seeded += 1
            if value is not None:
                seeded.append((value, user_id))
        self.stats.bursts += 1
        self.stats.bars += len(burst.bars)
        self.stats.values += len(seeded)
        _count_alerts(counts, await self._evaluate(seeded, burst.delayed), entered)
        self._tell_followers(burst.bars)

    def _tell_followers(self, bars: Sequence[Candle]) -> None:
        for follower in self.followers:
            try:
                follower.on_closed_bars(bars)
            except Exception:
                log.exception("stage.follower_failed", follower=type(follower).__name__)

    async def revise(self, candle: Candle) -> None:
        """Store and announce a corrected bar, re-seed its series and evaluate what that yields."""
        if not candle.closed or candle.synthetic:
            return
        entered = time.perf_counter()
        user_id = self.tier2_users.get(candle.symbol)
        batch = self._candles.batch()
        announce = self._publisher.close_channels(candle, user_id=self._user_id)
        self._candles.add_write(batch, candle, user_id=user_id, announce=announce)
        await batch.flush()
        self.stats.revisions += 1
        if self._rated(candle):
            assert self._calculator is not None
            value = await self._calculator.on_closed_candle(candle, user_id=user_id)
            if value is not None:
                self.stats.values += 1
                fired = await self._evaluate([(value, user_id)])
                _count_alerts(traffic(candle.exchange), fired, entered)
        self._tell_followers([candle])

    def _rated(self, candle: Candle) -> bool:
        calculator = self._calculator
        return (
            calculator is not None
            and candle.exchange_id == calculator.exchange_id
            and (self.timeframes is None or candle.timeframe in self.timeframes)
        )

    async def _evaluate(self, values: list[Rated], delayed: Delayed = NONE_DELAYED) -> int:
        """Evaluate values outside a burst's flush; return how many alerts were published."""
        evaluator = self.evaluator
        if evaluator is None or not values:
            return 0
        try:
            fired = await evaluator.evaluate_many(values, delayed)
        except Exception:
            log.exception("stage.alerts_failed", values=len(values))
            return 0
        self.stats.alerts += fired
        return fired


def _count_alerts(counts: ExchangeTraffic, fired: int, entered: float) -> None:
    """Count published alerts with their lag since the bars entered the stage."""
    if fired:
        counts.alerts += fired
        counts.close_to_alert.observe(time.perf_counter() - entered, fired)


def _parts(bars: Sequence[Candle], size: int) -> list[list[Candle]]:
    """Split a burst into parts of about `size` bars; a series' bars stay in one part, in order."""
    count = -(-len(bars) // size)
    if count <= 1:
        return [list(bars)]
    parts: list[list[Candle]] = [[] for _ in range(count)]
    for candle in bars:
        series = f"{candle.symbol}|{candle.timeframe.value}".encode()
        parts[zlib.crc32(series) % count].append(candle)  # stable across processes
    return parts
