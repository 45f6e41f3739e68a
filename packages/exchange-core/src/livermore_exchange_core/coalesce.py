"""Tickers and order-book tops, coalesced: the latest per symbol, written every flush interval.

A trader needs the latest price, not every match: `TickerCoalescer` keeps the newest ticker of
each symbol and writes and publishes the lot every `flush_s` as one pipelined round trip.
`BookCoalescer` does the same for order-book tops (`OrderBookCache`, TTL 30 s). Offering an item
is one dict store; neither touches the closed-bar path.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable

import structlog

from livermore_cache.pubsub import Publisher
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_core.orderbook import BookTop
from livermore_schema.market import OrderBookTop, Ticker

log = structlog.get_logger(__name__)


class _Coalescer(ABC):
    """Once something is pending, wait `flush_s` (coalescing), then flush; until stopped."""

    def __init__(self, flush_s: float) -> None:
        self._flush_s = flush_s
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self.flushed = 0
        """Items written so far."""

    async def run(self) -> None:
        """Flush pending items every interval until `stop()`, then flush what is left.

        A `stop()` that comes before this task first runs still ends it (a pipeline stopped as
        soon as it started); the stop is consumed on return, so `run()` can be started again.
        """
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                if not self._stopping.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self._flush_s)
                await self._flush()
                if self._stopping.is_set():
                    return
        finally:
            self._stopping.clear()

    def stop(self) -> None:
        """Make `run()` flush once more and return."""
        self._stopping.set()
        self._ready.set()

    @abstractmethod
    async def _flush(self) -> None:
        """Write what is pending."""


class TickerCoalescer(_Coalescer):
    """The latest ticker per symbol, written (`TickerCache`) and published every `flush_s`."""

    def __init__(self, tickers: TickerCache, publisher: Publisher, flush_s: float = 0.25) -> None:
        super().__init__(flush_s)
        self._tickers = tickers
        self._publisher = publisher
        self._pending: dict[str, Ticker] = {}

    def offer(self, ticker: Ticker) -> None:
        """Keep the latest ticker of its symbol for the next flush."""
        self._pending[ticker.symbol] = ticker
        self._ready.set()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        batch = self._tickers.batch()
        for ticker in pending.values():
            payload = ticker.model_dump_json()
            self._tickers.add_write(batch, ticker, payload)
            self._publisher.add_ticker(batch, ticker, payload)
        try:
            await batch.flush()
        except Exception:
            log.exception("pipeline.ticker_failed", symbols=sorted(pending)[:20])
            return
        self.flushed += len(pending)


class BookCoalescer(_Coalescer):
    """The latest book top per symbol, written to `OrderBookCache` every `flush_s`."""

    def __init__(self, books: OrderBookCache, flush_s: float = 0.25) -> None:
        super().__init__(flush_s)
        self._books = books
        self._pending: dict[str, BookTop] = {}
        self._writes = asyncio.Lock()

    def offer(self, book: BookTop) -> None:
        """Keep the latest book top of its symbol for the next flush."""
        self._pending[book.symbol] = book
        self._ready.set()

    async def drop(self, exchange_id: int, symbols: Iterable[str]) -> int:
        """Forget unwritten tops of `symbols`, then delete their keys; return how many existed.

        Call it after the adapter stopped their books: a write already in flight finishes first,
        so no key comes back once this returns.
        """
        names = list(symbols)
        for symbol in names:
            self._pending.pop(symbol, None)
        async with self._writes:
            return await self._books.delete(exchange_id, names)

    async def _flush(self) -> None:
        async with self._writes:
            pending, self._pending = self._pending, {}
            models: list[OrderBookTop] = []
            for book in pending.values():
                try:
                    models.append(book.to_model())
                except ValueError:  # pydantic's ValidationError: one bad book, not the batch
                    log.exception("pipeline.book_invalid", symbol=book.symbol)
            try:
                self.flushed += await self._books.write_many(models)
            except Exception:
                log.exception("pipeline.books_failed", symbols=sorted(pending)[:20])
