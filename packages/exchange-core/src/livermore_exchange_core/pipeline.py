"""`CandlePipeline`: the in-process data path from an adapter to Redis and the indicator.

closed candle -> `CandleCache.write` (Tier 1, or Tier 2 for a user's symbol) ->
`Publisher.publish_candle_close` (after the write, carrying the closed bar; the legacy twin only
with a user context) -> the `on_closed_candle` hook (indicator, alerts, boundary service).

With `on_closed_batch` instead, the write and the publish are queued on a `WriteBatch` that the
hook receives: it computes the indicator, queues its own write and publish behind them and
flushes, so the whole closed-bar write is one round trip, still in order (each publish after
its write). The pipeline flushes whatever the hook left unsent, so the bar is stored and
announced even when the hook fails.

Each series is delivered once per bar and in open-time order. A `GapNotice` closes a gate on its
series: later live bars wait while the missing range is fetched over REST, then the repaired bars
and the waiting live bars go through the same path, oldest first.

A *revision* (`on_candle_revised`: late data corrected a bar already delivered) takes the same
path again, through the same hook (batched or not): the cache write replaces the stored bar
(closed by closed), the candle-close channel carries the corrected bar, and the hook sees a bar
that is not newer than its last one (the `IndicatorCalculator` then rebuilds the series from the
corrected cache and re-publishes its value, which the `AlertEvaluator` judges again without
firing anything twice; the boundary service has already had that boundary's wave). A revision
of a bar still waiting behind a gate just replaces it there; one of a delivered bar whose series
is gated is applied after the gate's bars. Tickers are coalesced (latest per symbol) and flushed
every `ticker_flush_s`: a trader needs the latest price, not every match. Order-book tops are
coalesced the same way and written to `OrderBookCache` (TTL 30 s) at most every `book_flush_s`
per symbol; `on_order_book` itself is one dict store.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import structlog

from livermore_cache.batch import WriteBatch
from livermore_cache.candles import CandleCache
from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.clock import ExchangeClock
from livermore_exchange_core.errors import (
    DataNotReadyError,
    LivermoreExchangeError,
    RetryableError,
)
from livermore_exchange_core.events import AdapterLifecycle, GapNotice
from livermore_exchange_core.orderbook import BookTop
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle, OrderBookTop, Ticker
from livermore_schema.timeframes import duration_ms

log = structlog.get_logger(__name__)

ClosedCandleHook = Callable[[Candle], Awaitable[None]]
BatchedCloseHook = Callable[[Candle, WriteBatch], Awaitable[None]]
LifecycleHook = Callable[[AdapterLifecycle], Awaitable[None]]
Series = tuple[str, Timeframe]


class Repairer(Protocol):
    """Fetches the closed bars of a range over REST (`reconciliation.GapRepairer`)."""

    async def repair(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> Sequence[Candle]:
        """Return the closed bars opening in `[since_ms, until_ms)`, oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class _Revision:
    candle: Candle


@dataclass(frozen=True, slots=True)
class _RepairDone:
    series: Series
    bars: Sequence[Candle]


@dataclass(slots=True)
class _Gate:
    notice: GapNotice
    waiting: list[Candle | GapNotice | _Revision] = field(default_factory=list)


@dataclass(slots=True)
class PipelineStats:
    """Counters a test or the status page can read."""

    delivered: int = 0
    revised: int = 0
    duplicates: int = 0
    repaired: int = 0
    repairs: int = 0
    repair_failures: int = 0
    tickers_flushed: int = 0
    books_flushed: int = 0


_STOP = object()


class CandlePipeline:
    """The worker's `MarketDataSink`; see the module docstring. Run it with `run()`."""

    def __init__(
        self,
        *,
        exchange_id: int,
        exchange_name: str,
        candles: CandleCache,
        tickers: TickerCache,
        publisher: Publisher,
        repairer: Repairer | None,
        clock: ExchangeClock,
        on_closed_candle: ClosedCandleHook | None = None,
        on_closed_batch: BatchedCloseHook | None = None,
        on_lifecycle: LifecycleHook | None = None,
        user_id: int | None = None,
        tier2_users: Mapping[str, int] | None = None,
        ticker_flush_s: float = 0.25,
        order_books: OrderBookCache | None = None,
        book_flush_s: float = 0.25,
        repair_backoff: BackoffPolicy | None = None,
        rest_lag_ms: int = 3_000,
        max_concurrent_repairs: int = 16,
    ) -> None:
        self._exchange_id = exchange_id
        self._exchange_name = exchange_name
        self._candles = candles
        self._tickers = tickers
        self._publisher = publisher
        self._repairer = repairer
        self._clock = clock
        if on_closed_candle is not None and on_closed_batch is not None:
            raise ValueError("give on_closed_candle or on_closed_batch, not both")
        self._hook = on_closed_candle
        self._batch_hook = on_closed_batch
        self._lifecycle_hook = on_lifecycle
        self._user_id = user_id
        self.tier2_users: dict[str, int] = dict(tier2_users or {})
        self._flush_s = ticker_flush_s
        self._books = order_books
        self._book_flush_s = book_flush_s
        self._rest_lag_ms = rest_lag_ms
        # A reconnect gates every series at once; repairs share Redis and the REST limiter.
        self._repair_slots = asyncio.Semaphore(max_concurrent_repairs)
        self._repair_backoff = repair_backoff or BackoffPolicy(
            base_s=0.5, cap_s=10.0, max_attempts=6
        )
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=10_000)
        self._last: dict[Series, int] = {}
        self._gates: dict[Series, _Gate] = {}
        self._gates_open = asyncio.Event()
        self._gates_open.set()
        self._pending_tickers: dict[str, Ticker] = {}
        self._ticker_ready = asyncio.Event()
        self._pending_books: dict[str, BookTop] = {}
        self._book_ready = asyncio.Event()
        self._book_writes = asyncio.Lock()
        self._repairs: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self.stats = PipelineStats()
        self._log = log.bind(exchange=exchange_name)

    # ------------------------------------------------------------------ MarketDataSink

    async def on_candle(self, candle: Candle) -> None:
        """Queue one closed bar."""
        await self._queue.put(candle)

    async def on_candle_revised(self, candle: Candle) -> None:
        """Queue a corrected copy of a closed bar delivered before (see the module docstring)."""
        await self._queue.put(_Revision(candle))

    def on_ticker(self, ticker: Ticker) -> None:
        """Keep the latest ticker of its symbol for the next flush."""
        self._pending_tickers[ticker.symbol] = ticker
        self._ticker_ready.set()

    def on_order_book(self, book: BookTop) -> None:
        """Keep the latest book top of its symbol for the next flush (dropped without a cache)."""
        if self._books is not None:
            self._pending_books[book.symbol] = book
            self._book_ready.set()

    async def drop_order_books(self, symbols: Iterable[str]) -> int:
        """Forget unwritten tops of `symbols`, then delete their keys; return how many existed.

        Call it after the adapter stopped their books: a write already in flight finishes first,
        so no key comes back once this returns.
        """
        names = list(symbols)
        for symbol in names:
            self._pending_books.pop(symbol, None)
        if self._books is None:
            return 0
        async with self._book_writes:
            return await self._books.delete(self._exchange_id, names)

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
        """Process queued items and flush tickers and book tops until `stop()`."""
        loop = asyncio.get_running_loop()
        flushers = [
            loop.create_task(
                self._flush_every(self._ticker_ready, self._flush_s, self._tickers_out)
            ),
            loop.create_task(
                self._flush_every(self._book_ready, self._book_flush_s, self._books_out)
            ),
        ]
        try:
            while True:
                item = await self._queue.get()
                try:
                    if item is _STOP:
                        return
                    await self._handle(item)
                except Exception:
                    self._log.exception("pipeline.item_failed", item=repr(item)[:300])
                finally:
                    self._queue.task_done()
        finally:
            self._stopping.set()
            self._ticker_ready.set()
            self._book_ready.set()
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

    async def _handle(self, item: object) -> None:
        match item:
            case Candle():
                await self._on_live_candle(item)
            case _Revision():
                await self._on_revision(item)
            case GapNotice():
                self._on_notice(item)
            case _RepairDone():
                await self._finish_repair(item)
            case AdapterLifecycle():
                await self._publish_lifecycle(item)

    # ------------------------------------------------------------------ candles

    async def _on_live_candle(self, candle: Candle) -> None:
        gate = self._gates.get((candle.symbol, candle.timeframe))
        if gate is not None:
            gate.waiting.append(candle)
        else:
            await self._deliver(candle)

    async def _on_revision(self, revision: _Revision) -> None:
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
            await self._deliver(candle)  # the first copy never went out: this one is the bar
            return
        self.stats.revised += 1
        self._log.info(
            "pipeline.revised",
            symbol=candle.symbol,
            timeframe=candle.timeframe.value,
            open_time=candle.open_time,
        )
        if self._batch_hook is not None:
            await self._through_batch(candle, self._batch_hook)
            return
        await self._candles.write(candle, user_id=self.tier2_users.get(candle.symbol))
        await self._publisher.publish_candle_close(candle, user_id=self._user_id)
        await self._call_hook(candle)

    async def _call_hook(self, candle: Candle) -> None:
        if self._hook is not None:
            try:
                await self._hook(candle)
            except Exception:
                self._log.exception("pipeline.hook_failed", symbol=candle.symbol)

    async def _deliver(self, candle: Candle) -> None:
        series = (candle.symbol, candle.timeframe)
        last = self._last.get(series)
        if not candle.closed or (last is not None and candle.open_time <= last):
            self.stats.duplicates += 1
            return
        if self._batch_hook is not None:
            await self._deliver_batched(candle, self._batch_hook)
            return
        await self._candles.write(candle, user_id=self.tier2_users.get(candle.symbol))
        await self._publisher.publish_candle_close(candle, user_id=self._user_id)
        self._last[series] = candle.open_time
        self.stats.delivered += 1
        await self._call_hook(candle)

    async def _deliver_batched(self, candle: Candle, hook: BatchedCloseHook) -> None:
        self._last[(candle.symbol, candle.timeframe)] = candle.open_time
        self.stats.delivered += 1
        await self._through_batch(candle, hook)

    async def _through_batch(self, candle: Candle, hook: BatchedCloseHook) -> None:
        """Queue the bar's write and close publish, let the hook add its own, then flush."""
        batch = self._candles.batch()
        self._candles.add_write(batch, candle, user_id=self.tier2_users.get(candle.symbol))
        self._publisher.add_candle_close(batch, candle, user_id=self._user_id)
        try:
            await hook(candle, batch)
        except Exception:
            self._log.exception("pipeline.hook_failed", symbol=candle.symbol)
        await batch.flush()

    # ------------------------------------------------------------------ gaps

    def _on_notice(self, notice: GapNotice) -> None:
        series = (notice.symbol, notice.timeframe)
        gate = self._gates.get(series)
        if gate is not None:
            gate.waiting.append(notice)
            return
        self._gates[series] = _Gate(notice)
        self._gates_open.clear()
        self._start_repair(series, notice)

    def _start_repair(self, series: Series, notice: GapNotice) -> None:
        task = asyncio.get_running_loop().create_task(self._repair(series, notice))
        self._repairs.add(task)
        task.add_done_callback(self._repairs.discard)

    async def _repair(self, series: Series, notice: GapNotice) -> None:
        bars: Sequence[Candle] = ()
        try:
            async with self._repair_slots:
                since = await self._repair_start(series, notice)
            if since is not None and since < notice.until_ms and self._repairer is not None:
                # REST decides "closed" on its own estimate of exchange time; give it a margin.
                await self._clock.wait_until(notice.ready_at_ms + self._rest_lag_ms)
                async with self._repair_slots:
                    bars = await self._fetch(series, since, notice)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.stats.repair_failures += 1
            self._log.exception("pipeline.repair_failed", symbol=series[0], timeframe=series[1])
        await self._queue.put(_RepairDone(series, bars))

    async def _repair_start(self, series: Series, notice: GapNotice) -> int | None:
        step = duration_ms(series[1])
        last = self._last.get(series)
        if last is not None:
            return last + step
        if notice.since_ms is not None:
            return notice.since_ms
        recent = await self._candles.recent(
            self._exchange_id, series[0], series[1], 2, user_id=self.tier2_users.get(series[0])
        )
        closed = [c.open_time for c in recent if c.closed]
        if closed:
            self._last[series] = closed[-1]
            return closed[-1] + step
        return None  # nothing to anchor on: the startup backfill owns history

    async def _fetch(self, series: Series, since: int, notice: GapNotice) -> Sequence[Candle]:
        assert self._repairer is not None
        backoff = Backoff(self._repair_backoff, random.Random())
        self.stats.repairs += 1
        while True:
            try:
                bars = await self._repairer.repair(series[0], series[1], since, notice.until_ms)
                _check_complete(bars, series, since, notice)
            except RetryableError as err:
                if backoff.exhausted():
                    raise
                delay = err.retry_after_s or backoff.next_delay()
                self._log.warning("pipeline.repair_retry", symbol=series[0], delay_s=delay)
                await asyncio.sleep(delay)
                continue
            except LivermoreExchangeError:
                raise
            self._log.info(
                "pipeline.repaired",
                symbol=series[0],
                timeframe=series[1].value,
                since_ms=since,
                until_ms=notice.until_ms,
                bars=len(bars),
                reason=notice.reason,
            )
            return [b for b in bars if b.closed and since <= b.open_time < notice.until_ms]

    async def _finish_repair(self, done: _RepairDone) -> None:
        gate = self._gates[done.series]
        self.stats.repaired += len(done.bars)
        ready: dict[int, Candle] = {bar.open_time: bar for bar in done.bars}
        live: set[int] = set()
        revisions: list[Candle] = []
        rest: list[Candle | GapNotice | _Revision] = []
        for position, item in enumerate(gate.waiting):
            if isinstance(item, GapNotice):
                rest = gate.waiting[position:]
                break
            if isinstance(item, _Revision):
                if item.candle.open_time in live:
                    ready[item.candle.open_time] = item.candle  # its first copy is still here
                else:
                    revisions.append(item.candle)
                continue
            ready[item.open_time] = item  # a live closed bar wins over its REST copy
            live.add(item.open_time)
        for open_time in sorted(ready):
            await self._deliver(ready[open_time])
        for candle in revisions:
            await self._revise(candle)
        if rest:
            notice = rest[0]
            assert isinstance(notice, GapNotice)
            self._gates[done.series] = _Gate(notice, rest[1:])
            self._start_repair(done.series, notice)
            return
        del self._gates[done.series]
        if not self._gates:
            self._gates_open.set()

    # ------------------------------------------------------------------ tickers, books, lifecycle

    async def _flush_every(
        self, ready: asyncio.Event, interval_s: float, flush: Callable[[], Awaitable[None]]
    ) -> None:
        """Once something is pending, wait `interval_s` (coalescing), then flush; until stopped."""
        while not self._stopping.is_set():
            await ready.wait()
            ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), interval_s)
            await flush()

    async def _tickers_out(self) -> None:
        batch, self._pending_tickers = self._pending_tickers, {}
        for ticker in batch.values():
            try:
                await self._tickers.write(ticker)
                await self._publisher.publish_ticker(ticker)
            except Exception:
                self._log.exception("pipeline.ticker_failed", symbol=ticker.symbol)
        self.stats.tickers_flushed += len(batch)

    async def _books_out(self) -> None:
        if self._books is None:
            return
        async with self._book_writes:
            batch, self._pending_books = self._pending_books, {}
            models: list[OrderBookTop] = []
            for book in batch.values():
                try:
                    models.append(book.to_model())
                except ValueError:  # pydantic's ValidationError: one bad book, not the batch
                    self._log.exception("pipeline.book_invalid", symbol=book.symbol)
            try:
                self.stats.books_flushed += await self._books.write_many(models)
            except Exception:
                self._log.exception("pipeline.books_failed", symbols=sorted(batch)[:20])

    async def _publish_lifecycle(self, event: AdapterLifecycle) -> None:
        payload = event.to_event(self._exchange_id, self._exchange_name, datetime.now(UTC))
        await self._publisher.publish_lifecycle(payload)
        if self._lifecycle_hook is not None:
            await self._lifecycle_hook(event)


def _check_complete(bars: Sequence[Candle], series: Series, since: int, notice: GapNotice) -> None:
    """Raise `DataNotReadyError` when a contiguous venue's repair lacks bars of the range."""
    if not notice.contiguous:
        return
    step = duration_ms(series[1])
    wanted = range(since, notice.until_ms, step)
    found = {bar.open_time for bar in bars if bar.closed}
    if any(open_time not in found for open_time in wanted):
        raise DataNotReadyError(f"{series[0]} {series[1].value}: REST lacks bars of the gap yet")
