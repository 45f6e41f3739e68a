"""`CandlePipeline`: the worker's `MarketDataSink`, in order, a burst at a time.

Every closed bar (live, gap repair, boundary REST, revision) is queued here. The pipeline decides
what is new (each series is delivered once per bar, in open-time order), and hands everything
that is ready at once to the `ClosedBarStage` as one burst: cache write -> close publish ->
indicator -> alert, in a few pipelined round trips for the whole burst (see `stage`).

A `GapNotice` closes a gate on its series (`gates`): later live bars wait while the missing range
is fetched over REST, then the repaired and the waiting bars join a burst, oldest first. A
repair never gives up and is durable, so a series' alerts resume only once its history is whole,
and a successor resumes what is left (`resume`). Repaired bars, and those a start catches up on
(`catch_up`), are *delayed*: their alerts say so (SPEC section 7).

No bar is lost on a failed flush (`held`): the bars are kept, later ones queue behind them, the
lot is retried with backoff; `stats.delivered` counts only flushed bars. Bars still unflushed at
stop are recorded as pending repairs (best effort: the store may be what failed).

A *revision* (`on_candle_revised`: late data corrected a bar already delivered) ends the burst
being built (so the series keeps its order) and goes through `ClosedBarStage.revise`. A revision
of a bar still waiting behind a gate just replaces it there; one of a delivered bar whose series
is gated is applied after the gate's bars. Tickers and order-book tops do not enter the queue:
they are handed to their coalescers (`coalesce`), which write the latest per symbol every
flush interval. Lifecycle events are published in stream order, after the bars before them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.repairs import RepairStore
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core import gaps
from livermore_exchange_core.alerts.claims import BarKey
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.coalesce import BookCoalescer, TickerCoalescer
from livermore_exchange_core.events import AdapterLifecycle, GapNotice
from livermore_exchange_core.gates import RepairGates
from livermore_exchange_core.held import FLUSH_RETRY, HeldBars
from livermore_exchange_core.orderbook import BookTop
from livermore_exchange_core.stage import BurstFailed, ClosedBarStage
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle, Ticker

log = structlog.get_logger(__name__)

LifecycleHook = Callable[[AdapterLifecycle], Awaitable[None]]


@dataclass(slots=True)
class PipelineStats:
    """Counters a test or the status page can read."""

    delivered: int = 0
    revised: int = 0
    duplicates: int = 0
    repaired: int = 0
    repairs: int = 0
    repair_failures: int = 0
    bursts: int = 0
    burst_failures: int = 0
    held: int = 0
    """Bars of failed flushes waiting for their retry."""


_STOP = object()
_RETRY = object()


def _key(candle: Candle) -> BarKey:
    return (candle.symbol, candle.timeframe, candle.open_time)


class CandlePipeline:
    """The worker's `MarketDataSink` (module docstring); run it with `run()`.

    Without a `stage`, one that only writes and publishes is made (`user_id`, `tier2_users`).
    """

    def __init__(
        self,
        *,
        exchange_id: int,
        exchange_name: str,
        candles: CandleCache,
        tickers: TickerCache,
        publisher: Publisher,
        repairer: gaps.Repairer | None,
        clock: ExchangeClock,
        stage: ClosedBarStage | None = None,
        on_lifecycle: LifecycleHook | None = None,
        user_id: int | None = None,
        tier2_users: Mapping[str, int] | None = None,
        ticker_flush_s: float = 0.25,
        order_books: OrderBookCache | None = None,
        book_flush_s: float = 0.25,
        repair_backoff: BackoffPolicy | float | None = None,
        repair_store: RepairStore | None = None,
        rest_lag_ms: int = 3_000,
        max_concurrent_repairs: int = 16,
        max_burst: int = 10_000,
        flush_retry: BackoffPolicy = FLUSH_RETRY,
    ) -> None:
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._publisher = publisher
        self.stage = stage or ClosedBarStage(
            candles=candles, publisher=publisher, user_id=user_id, tier2_users=tier2_users
        )
        """Where every closed bar goes (write, publish, indicator, alerts)."""
        self.ticker_coalescer = TickerCoalescer(tickers, publisher, ticker_flush_s)
        self.book_coalescer = (
            None if order_books is None else BookCoalescer(order_books, book_flush_s)
        )
        self._lifecycle_hook = on_lifecycle
        self._max_burst = max_burst
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=50_000)
        self._last: dict[gaps.Series, int] = {}
        self._burst: list[Candle] = []
        self._delayed: set[BarKey] = set()  # bars of the burst and of `_held` not seen live
        self._late: set[BarKey] = set()  # caught-up bars still queued or gated
        self._settling: set[gaps.Series] = set()  # repaired series whose bars await a flush
        self._forgotten: set[str] = set()
        self.stats = PipelineStats()
        self._log = log.bind(exchange=exchange_name)
        self._held = HeldBars(flush_retry, self._wake, self._log)
        self.repairs = RepairGates(
            exchange_id=exchange_id,
            candles=candles,
            repairer=repairer,
            clock=clock,
            post=self._queue.put,
            last=self._last,
            tier2_user=lambda symbol: self.stage.tier2_users.get(symbol),
            log=self._log,
            store=repair_store,
            retry=repair_backoff,
            rest_lag_ms=rest_lag_ms,
            max_concurrent=max_concurrent_repairs,
        )

    @property
    def pending_repairs(self) -> int:
        """Series whose live bars wait behind a gap that REST has not filled yet."""
        return self.repairs.pending

    def oldest_repair_age_s(self) -> float | None:
        """Return how long the oldest pending repair has waited (None: none pending)."""
        return self.repairs.oldest_age_s()

    # ------------------------------------------------------------------ MarketDataSink

    async def on_candle(self, candle: Candle) -> None:
        """Queue one closed bar."""
        await self._queue.put(candle)

    async def on_candle_revised(self, candle: Candle) -> None:
        """Queue a corrected copy of a closed bar delivered before (see the module docstring)."""
        await self._queue.put(gaps.Revision(candle))

    def on_ticker(self, ticker: Ticker) -> None:
        """Hand a ticker to the ticker coalescer (latest per symbol)."""
        self.ticker_coalescer.offer(ticker)

    def on_order_book(self, book: BookTop) -> None:
        """Hand a book top to the book coalescer (dropped without an order-book cache)."""
        if self.book_coalescer is not None:
            self.book_coalescer.offer(book)

    async def drop_order_books(self, symbols: Iterable[str]) -> int:
        """Forget unwritten tops of `symbols` and delete their keys (`BookCoalescer.drop`)."""
        if self.book_coalescer is None:
            return 0
        return await self.book_coalescer.drop(self._exchange_id, symbols)

    def forget(self, symbols: Iterable[str], *, forgotten: bool = True) -> None:
        """Drop symbols' queued bars, gates and repairs (`forgotten=False`: take them back)."""
        names = set(symbols)
        if not forgotten:
            self._forgotten -= names
            return
        self._forgotten |= names
        self.repairs.forget(names)

    async def on_gap(self, notice: GapNotice) -> None:
        """Queue a gap notice (it gates its series from here on)."""
        await self._queue.put(notice)

    async def on_lifecycle(self, event: AdapterLifecycle) -> None:
        """Queue a lifecycle event (published in stream order)."""
        await self._queue.put(event)

    async def resume(self) -> None:
        """Queue the repairs a predecessor left unfinished (`RepairGates.adopt`): gated now."""
        for repair in self.repairs.take_adopted():
            await self._queue.put(gaps.Resumed.of(repair))

    async def catch_up(self, bars: Iterable[Candle]) -> None:
        """Queue stored bars no alert has judged yet (each series oldest first): delayed bars."""
        for candle in bars:
            self._late.add(_key(candle))
            await self._queue.put(candle)

    # ------------------------------------------------------------------ running

    def last_open_time(self, symbol: str, timeframe: Timeframe) -> int | None:
        """Return the open time of the newest bar delivered for a series."""
        return self._last.get((symbol, timeframe))

    async def run(self) -> None:
        """Process queued items a burst at a time and run the coalescers until `stop()`."""
        loop = asyncio.get_running_loop()
        coalescers = [self.ticker_coalescer, *filter(None, [self.book_coalescer])]
        flushers = [loop.create_task(c.run()) for c in coalescers]
        try:
            while True:
                items = [await self._queue.get()]
                while len(items) < self._max_burst and not self._queue.empty():
                    items.append(self._queue.get_nowait())
                try:
                    stop = await self._handle_all(items)
                finally:
                    for _ in items:
                        self._queue.task_done()
                if stop:
                    return
        finally:
            for coalescer in coalescers:
                coalescer.stop()
            await asyncio.gather(*flushers)
            await self.repairs.aclose()
            if self._held:  # recorded for whoever serves next
                await self.repairs.record_unflushed(self._held.bars)

    async def stop(self) -> None:
        """Finish what is queued, flush tickers, then make `run()` return."""
        await self._queue.put(_STOP)

    async def drain(self) -> None:
        """Return once every queued item is processed and flushed and no series is gated."""
        while True:
            await self._queue.join()
            if not self.repairs.gates and not self._held:
                return
            await (self.repairs.all_open if self.repairs.gates else self._held.none).wait()

    async def _handle_all(self, items: list[object]) -> bool:
        """Handle items in order, bars collected into one burst; return True on `_STOP`."""
        for item in items:
            if item is _STOP:
                await self._flush_burst(force=True)
                return True
            try:
                await self._handle(item)
            except Exception:
                self._log.exception("pipeline.item_failed", item=repr(item)[:300])
        await self._flush_burst()
        return False

    async def _handle(self, item: object) -> None:
        if self._forgotten and gaps.symbol_of(item) in self._forgotten:
            return
        match item:
            case Candle():
                self._on_live_candle(item)
            case gaps.Revision():
                await self._on_revision(item)
            case GapNotice():
                self.repairs.open(item)
            case gaps.Resumed():
                self.repairs.open(item.notice, item.opened_ms)
            case gaps.RepairDone():
                await self._finish_repair(item)
            case AdapterLifecycle():
                await self._flush_burst()
                await self._publish_lifecycle(item)

    async def _flush_burst(self, *, force: bool = False) -> None:
        """Send the held bars and the burst; on failure keep what did not go (never drop it)."""
        if self._held.waiting() and not force:
            self._held.bars.extend(self._burst)  # behind the held bars of their series
            self._burst = []
            return
        bars, self._burst = [*self._held.take(), *self._burst], []
        if not bars:
            return
        self.stats.bursts += 1
        try:
            await self.stage.process(bars, self._delayed)
        except Exception as error:
            failed = error.bars if isinstance(error, BurstFailed) else bars
            self._held.hold(failed, error)
            self._delayed &= {_key(c) for c in failed}
            self.stats.burst_failures += 1
            self.stats.delivered += len(bars) - len(failed)
            self.stats.held = len(failed)
            return
        self.stats.delivered += len(bars)
        self.stats.held = 0
        self._delayed.clear()
        self._held.flushed(len(bars))
        if self._settling:
            settled, self._settling = self._settling, set()
            await self.repairs.settle(settled)

    def _wake(self) -> None:
        """Queue a retry of the held bars (a full queue brings the loop round anyway)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_RETRY)

    # ------------------------------------------------------------------ candles

    def _on_live_candle(self, candle: Candle) -> None:
        gate = self.repairs.get((candle.symbol, candle.timeframe))
        if gate is not None:
            gate.waiting.append(candle)
        else:
            self._deliver(candle)

    async def _on_revision(self, revision: gaps.Revision) -> None:
        gate = self.repairs.get((revision.candle.symbol, revision.candle.timeframe))
        if gate is not None:
            gate.waiting.append(revision)
        else:
            await self._revise(revision.candle)

    async def _revise(self, candle: Candle) -> None:
        if not candle.closed:
            return
        last = self._last.get((candle.symbol, candle.timeframe))
        if last is None or candle.open_time > last:
            self._deliver(candle)  # the first copy never went out: this one is the bar
            return
        await self._flush_burst()  # the bars before it go first, in order
        if self._held.keep(candle):
            return  # the store is failing: it goes out with the held bars
        try:
            await self.stage.revise(candle)
        except Exception as error:  # kept: written with the held bars (a past bar re-seeds)
            self._held.hold([*self._held.bars, candle], error)
            return
        self.stats.revised += 1
        self._log.info(
            "pipeline.revised",
            symbol=candle.symbol,
            timeframe=candle.timeframe.value,
            open_time=candle.open_time,
        )

    def _deliver(self, candle: Candle, *, delayed: bool = False) -> None:
        """Add a new closed bar to the burst (counted as delivered once it is flushed)."""
        series = (candle.symbol, candle.timeframe)
        last = self._last.get(series)
        if self._late and _key(candle) in self._late:  # (empty once a start caught up)
            self._late.discard(_key(candle))
            delayed = True
        if not candle.closed or candle.synthetic or (last is not None and candle.open_time <= last):
            self.stats.duplicates += 1
            return
        self._last[series] = candle.open_time
        if delayed:
            self._delayed.add(_key(candle))
        self._burst.append(candle)

    # ------------------------------------------------------------------ gaps

    async def _finish_repair(self, done: gaps.RepairDone) -> None:
        gate = self.repairs.gates[done.series]
        self.stats.repaired += len(done.bars)
        self.stats.repairs = self.repairs.attempts
        self.stats.repair_failures = self.repairs.failures
        ready, live, revisions, rest = gaps.merge_waiting(gate, done.bars)
        for open_time in sorted(ready):
            self._deliver(ready[open_time], delayed=open_time not in live)  # not seen live
        for candle in revisions:
            await self._revise(candle)
        if rest is not None:
            self.repairs.follow(done.series, rest)
            return
        self.repairs.close(done.series)
        self._settling.add(done.series)

    # ------------------------------------------------------------------ lifecycle

    async def _publish_lifecycle(self, event: AdapterLifecycle) -> None:
        payload = event.to_event(self._exchange_id, self._exchange_name, datetime.now(UTC))
        await self._publisher.publish_lifecycle(payload)
        if self._lifecycle_hook is not None:
            await self._lifecycle_hook(event)
