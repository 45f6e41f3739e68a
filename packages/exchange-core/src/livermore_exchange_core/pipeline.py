"""`CandlePipeline`: the worker's `MarketDataSink`, in order, a burst at a time.

Every closed bar (live, gap repair, boundary REST, revision) is queued here. The pipeline decides
what is new (each series is delivered once per bar, in open-time order), and hands everything
that is ready at once to the `ClosedBarStage` as one burst: cache write -> close publish ->
indicator -> alert, in a few pipelined round trips for the whole burst (see `stage`).

A `GapNotice` closes a gate on its series: later live bars wait while the missing range is
fetched over REST, then the repaired bars and the waiting live bars join a burst, oldest first.

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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core import gaps
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.coalesce import BookCoalescer, TickerCoalescer
from livermore_exchange_core.events import AdapterLifecycle, GapNotice
from livermore_exchange_core.orderbook import BookTop
from livermore_exchange_core.stage import ClosedBarStage
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.timeframes import duration_ms

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


_STOP = object()


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
        repair_backoff: BackoffPolicy | None = None,
        rest_lag_ms: int = 3_000,
        max_concurrent_repairs: int = 16,
        max_burst: int = 10_000,
    ) -> None:
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._candles = candles
        self._publisher = publisher
        self._repairer = repairer
        self._clock = clock
        self.stage = stage or ClosedBarStage(
            candles=candles, publisher=publisher, user_id=user_id, tier2_users=tier2_users
        )
        """Where every closed bar goes (write, publish, indicator, alerts)."""
        self.ticker_coalescer = TickerCoalescer(tickers, publisher, ticker_flush_s)
        self.book_coalescer = (
            None if order_books is None else BookCoalescer(order_books, book_flush_s)
        )
        self._lifecycle_hook = on_lifecycle
        self._rest_lag_ms = rest_lag_ms
        self._max_burst = max_burst
        # A reconnect gates every series at once; repairs share Redis and the REST limiter.
        self._repair_slots = asyncio.Semaphore(max_concurrent_repairs)
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=50_000)
        self._last: dict[gaps.Series, int] = {}
        self._gates: dict[gaps.Series, gaps.Gate] = {}
        self._gates_open = asyncio.Event()
        self._gates_open.set()
        self._burst: list[Candle] = []
        self._repairs: set[asyncio.Task[None]] = set()
        self._forgotten: set[str] = set()
        self.stats = PipelineStats()
        self._log = log.bind(exchange=exchange_name)
        self._fetcher = gaps.GapFetcher(repairer, repair_backoff, self._log)

    @property
    def pending_repairs(self) -> int:
        """Series whose live bars wait behind a gap that REST has not filled yet."""
        return len(self._gates)

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
        for series in [s for s in self._gates if s[0] in names]:
            if (task := self._gates.pop(series).task) is not None:
                task.cancel()
        if not self._gates:
            self._gates_open.set()

    async def on_gap(self, notice: GapNotice) -> None:
        """Queue a gap notice (it gates its series from here on)."""
        await self._queue.put(notice)

    async def on_lifecycle(self, event: AdapterLifecycle) -> None:
        """Queue a lifecycle event (published in stream order)."""
        await self._queue.put(event)

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
            for task in list(self._repairs):
                task.cancel()
            for task in list(self._repairs):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def stop(self) -> None:
        """Finish what is queued, flush tickers, then make `run()` return."""
        await self._queue.put(_STOP)

    async def drain(self) -> None:
        """Return once every queued item is processed and no series waits for a repair."""
        while True:
            await self._queue.join()
            if not self._gates:
                return
            await self._gates_open.wait()

    async def _handle_all(self, items: list[object]) -> bool:
        """Handle items in order, bars collected into one burst; return True on `_STOP`."""
        for item in items:
            if item is _STOP:
                await self._flush_burst()
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
                self._on_notice(item)
            case gaps.RepairDone():
                await self._finish_repair(item)
            case AdapterLifecycle():
                await self._flush_burst()
                await self._publish_lifecycle(item)

    async def _flush_burst(self) -> None:
        bars, self._burst = self._burst, []
        if not bars:
            return
        self.stats.bursts += 1
        try:
            await self.stage.process(bars)
        except Exception:
            self.stats.burst_failures += 1
            self._log.exception("pipeline.burst_failed", bars=len(bars))

    # ------------------------------------------------------------------ candles

    def _on_live_candle(self, candle: Candle) -> None:
        gate = self._gates.get((candle.symbol, candle.timeframe))
        if gate is not None:
            gate.waiting.append(candle)
        else:
            self._deliver(candle)

    async def _on_revision(self, revision: gaps.Revision) -> None:
        gate = self._gates.get((revision.candle.symbol, revision.candle.timeframe))
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
        await self.stage.revise(candle)
        self.stats.revised += 1
        self._log.info(
            "pipeline.revised",
            symbol=candle.symbol,
            timeframe=candle.timeframe.value,
            open_time=candle.open_time,
        )

    def _deliver(self, candle: Candle) -> None:
        series = (candle.symbol, candle.timeframe)
        last = self._last.get(series)
        if not candle.closed or candle.synthetic or (last is not None and candle.open_time <= last):
            self.stats.duplicates += 1
            return
        self._last[series] = candle.open_time
        self.stats.delivered += 1
        self._burst.append(candle)

    # ------------------------------------------------------------------ gaps

    def _on_notice(self, notice: GapNotice) -> None:
        series = (notice.symbol, notice.timeframe)
        gate = self._gates.get(series)
        if gate is not None:
            gate.waiting.append(notice)
            return
        self._gates[series] = gaps.Gate(notice)
        self._gates_open.clear()
        self._start_repair(series, notice)

    def _start_repair(self, series: gaps.Series, notice: GapNotice) -> None:
        task = asyncio.get_running_loop().create_task(self._repair(series, notice))
        self._gates[series].task = task
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(self, series: gaps.Series, notice: GapNotice) -> None:
        bars: Sequence[Candle] = ()
        repairer = self._repairer
        try:
            async with self._repair_slots:
                since = await self._repair_start(series, notice)
            if since is not None and since < notice.until_ms and repairer is not None:
                # REST decides "closed" on its own estimate of exchange time; give it a margin.
                await self._clock.wait_until(notice.ready_at_ms + self._rest_lag_ms)
                async with self._repair_slots:
                    self.stats.repairs += 1
                    bars = await self._fetcher.fetch(series, since, notice)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.repair_failures += 1
            self._log.exception("pipeline.repair_failed", symbol=series[0], timeframe=series[1])
        await self._queue.put(gaps.RepairDone(series, bars))

    async def _repair_start(self, series: gaps.Series, notice: GapNotice) -> int | None:
        step = duration_ms(series[1])
        last = self._last.get(series)
        if last is not None:
            return last + step
        if notice.since_ms is not None:
            return notice.since_ms
        recent = await self._candles.recent(
            self._exchange_id,
            series[0],
            series[1],
            2,
            user_id=self.stage.tier2_users.get(series[0]),
        )
        closed = [c.open_time for c in recent if c.closed]
        if closed:
            self._last[series] = closed[-1]
            return closed[-1] + step
        return None  # nothing to anchor on: the startup backfill owns history

    async def _finish_repair(self, done: gaps.RepairDone) -> None:
        gate = self._gates[done.series]
        self.stats.repaired += len(done.bars)
        ready: dict[int, Candle] = {bar.open_time: bar for bar in done.bars}
        live: set[int] = set()
        revisions: list[Candle] = []
        rest: list[Candle | GapNotice | gaps.Revision] = []
        for position, item in enumerate(gate.waiting):
            if isinstance(item, GapNotice):
                rest = gate.waiting[position:]
                break
            if isinstance(item, gaps.Revision):
                if item.candle.open_time in live:
                    ready[item.candle.open_time] = item.candle  # its first copy is still here
                else:
                    revisions.append(item.candle)
                continue
            ready[item.open_time] = item  # a live closed bar wins over its REST copy
            live.add(item.open_time)
        for open_time in sorted(ready):
            self._deliver(ready[open_time])
        for candle in revisions:
            await self._revise(candle)
        if rest:
            notice = rest[0]
            assert isinstance(notice, GapNotice)
            self._gates[done.series] = gaps.Gate(notice, rest[1:])
            self._start_repair(done.series, notice)
            return
        del self._gates[done.series]
        if not self._gates:
            self._gates_open.set()

    # ------------------------------------------------------------------ lifecycle

    async def _publish_lifecycle(self, event: AdapterLifecycle) -> None:
        payload = event.to_event(self._exchange_id, self._exchange_name, datetime.now(UTC))
        await self._publisher.publish_lifecycle(payload)
        if self._lifecycle_hook is not None:
            await self._lifecycle_hook(event)
