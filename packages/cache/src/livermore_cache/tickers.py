"""Latest tickers (TTL 60 s) and order-book tops (TTL 30 s)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from livermore_cache import keys
from livermore_cache.batch import WriteBatch
from livermore_cache.client import RedisClient
from livermore_schema.market import OrderBookTop, Ticker
from livermore_schema.settings import CacheSettings


class TickerCache:
    """The latest ticker of each symbol; an entry expires when the stream stops refreshing it."""

    def __init__(self, redis: RedisClient, settings: CacheSettings) -> None:
        self._redis = redis
        self._ttl = settings.ticker_ttl_s

    async def write(self, ticker: Ticker) -> None:
        """Store a ticker with the ticker TTL."""
        key = keys.ticker_key(ticker.exchange_id, ticker.symbol)
        await self._redis.set(key, ticker.model_dump_json(), ex=self._ttl)

    def batch(self) -> WriteBatch:
        """Return an empty `WriteBatch` on this cache's client."""
        return WriteBatch(self._redis)

    def add_write(self, batch: WriteBatch, ticker: Ticker, payload: str | None = None) -> None:
        """Queue `write` of one ticker on `batch` (`payload`: its JSON, if already made)."""
        key = keys.ticker_key(ticker.exchange_id, ticker.symbol)
        batch.add("SET", key, payload or ticker.model_dump_json(), "EX", self._ttl)

    async def read(self, exchange_id: int, symbol: str) -> Ticker | None:
        """Return the latest ticker, or None when absent or expired."""
        raw = await self._redis.get(keys.ticker_key(exchange_id, symbol))
        return None if raw is None else Ticker.model_validate_json(raw)

    async def read_many(self, exchange_id: int, symbols: Sequence[str]) -> dict[str, Ticker]:
        """Return the tickers present for `symbols` (one pipelined GET per key)."""
        pipe = self._redis.pipeline(transaction=False)
        for symbol in symbols:
            pipe.get(keys.ticker_key(exchange_id, symbol))
        raws: list[Any] = await pipe.execute()
        return {
            symbol: Ticker.model_validate_json(raw)
            for symbol, raw in zip(symbols, raws, strict=True)
            if raw is not None
        }

    async def latest_price(self, exchange_id: int, symbol: str) -> float | None:
        """Return the latest traded price, or None."""
        ticker = await self.read(exchange_id, symbol)
        return None if ticker is None else ticker.price


class OrderBookCache:
    """Top levels of each symbol's book (scalper-orderbook mode)."""

    def __init__(self, redis: RedisClient, settings: CacheSettings) -> None:
        self._redis = redis
        self._ttl = settings.orderbook_ttl_s

    async def write(self, book: OrderBookTop) -> None:
        """Store a book top with the order-book TTL."""
        key = keys.orderbook_key(book.exchange_id, book.symbol)
        await self._redis.set(key, book.model_dump_json(), ex=self._ttl)

    async def write_many(self, books: Iterable[OrderBookTop]) -> int:
        """Store several book tops in one round trip (one SET per key); return how many."""
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for book in books:
            key = keys.orderbook_key(book.exchange_id, book.symbol)
            pipe.set(key, book.model_dump_json(), ex=self._ttl)
            count += 1
        if count:
            await pipe.execute()
        return count

    async def delete(self, exchange_id: int, symbols: Iterable[str]) -> int:
        """Delete the book tops of `symbols` (one DEL per key); return how many existed."""
        pipe = self._redis.pipeline(transaction=False)
        count = 0
        for symbol in symbols:
            pipe.delete(keys.orderbook_key(exchange_id, symbol))
            count += 1
        if not count:
            return 0
        results: list[Any] = await pipe.execute()
        return sum(int(r) for r in results)

    async def read(self, exchange_id: int, symbol: str) -> OrderBookTop | None:
        """Return the book top, or None when absent or expired."""
        raw = await self._redis.get(keys.orderbook_key(exchange_id, symbol))
        return None if raw is None else OrderBookTop.model_validate_json(raw)
