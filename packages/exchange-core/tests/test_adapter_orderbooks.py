"""Order books from both adapters against the simulator, through the pipeline into real Redis."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable
from typing import Any

from livermore_cache import keys
from livermore_cache.tickers import OrderBookCache
from livermore_exchange_core.adapters.binance.adapter import BinanceAdapter
from livermore_exchange_core.adapters.coinbase.adapter import CoinbaseAdapter
from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.config import default_exchange_config
from livermore_exchange_core.websocket import SocketPolicy
from livermore_exchange_sim.coinbase_wire import book_levels
from livermore_exchange_sim.faults import WsAction, WsActionKind
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe
from livermore_schema.market import OrderBookTop
from livermore_schema.settings import CacheSettings

from ._streaming import wired_pipeline

SPEED = 60.0
START = 1_712_181_600_000
FAST = SocketPolicy(
    stall_timeout_s=2.0,
    open_timeout_s=5.0,
    close_timeout_s=0.5,
    messages_per_second=6.0,
    backoff=BackoffPolicy(base_s=0.02, cap_s=0.3),
)


class RecordingBookCache(OrderBookCache):
    """The real cache, plus a record of every batch it wrote and a way to wait for one."""

    def __init__(self, redis: Any) -> None:
        super().__init__(redis, CacheSettings())
        self.written: list[OrderBookTop] = []
        self._changed = asyncio.Event()

    async def write_many(self, books: Iterable[OrderBookTop]) -> int:
        batch = list(books)
        count = await super().write_many(batch)
        self.written.extend(batch)
        self._changed.set()
        return count

    async def wait_for(
        self, predicate: Callable[[list[OrderBookTop]], bool], within_s: float = 10.0
    ) -> None:
        async with asyncio.timeout(within_s):
            while not predicate(self.written):
                self._changed.clear()
                await self._changed.wait()

    async def wait_fresh(self, symbols: Iterable[str], after: int) -> None:
        """Wait until every symbol's top was written again from index `after` on."""
        wanted = set(symbols)
        await self.wait_for(lambda w: wanted <= {b.symbol for b in w[after:]})


async def _assert_cached_book(redis: Any, cache: OrderBookCache, ex_id: int, sym: str) -> None:
    book = await cache.read(ex_id, sym)
    assert book is not None, sym
    bids = [level.price for level in book.bids]
    asks = [level.price for level in book.asks]
    assert len(bids) == len(asks) == 10, book
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == 10
    assert asks == sorted(asks) and len(set(asks)) == 10
    assert bids[0] < asks[0]
    assert 0 < await redis.ttl(keys.orderbook_key(ex_id, sym)) <= 30


def _assert_equals_sim_book(sim: RunningSim, book: OrderBookTop) -> None:
    """The book kept from snapshot + diffs equals the simulator's book at the frame's time."""
    snap = sim.market.ticker(Venue.COINBASE, book.symbol, book.timestamp)
    asset = sim.market.asset_of(Venue.COINBASE, book.symbol)
    assert asset is not None
    truth = book_levels(snap, asset.price_decimals, 10)
    want_bids = [(float(p), float(q)) for side, p, q in truth if side == "bid"]
    want_asks = [(float(p), float(q)) for side, p, q in truth if side == "offer"]
    assert [(b.price, b.quantity) for b in book.bids] == want_bids
    assert [(a.price, a.quantity) for a in book.asks] == want_asks


async def test_coinbase_level2_books_through_gaps_reconnects_and_unsubscribe(redis: Any) -> None:
    symbols = ["BTC-USD", "ETH-USD"]
    cache = RecordingBookCache(redis)
    async with (
        running_sim(seed=9, speed=SPEED, symbols=symbols, start_ms=START) as sim,
        wired_pipeline(
            redis, exchange_id=1, exchange_name="coinbase", repairer=None, order_books=cache
        ) as wired,
    ):
        config = default_exchange_config(
            ExchangeName.COINBASE,
            1,
            rest_url=sim.rest_url(Venue.COINBASE),
            ws_url=sim.ws_url(Venue.COINBASE),
        )
        adapter = CoinbaseAdapter(
            config, wired.pipeline, policy=FAST, clock=wired.clock, rng=random.Random(3)
        )
        await adapter.subscribe(symbols, [Timeframe.M5])
        await adapter.subscribe_order_books(symbols)
        assert adapter.order_book_symbols == frozenset(symbols)
        await adapter.connect()
        try:
            await cache.wait_fresh(symbols, 0)
            for symbol in symbols:
                await _assert_cached_book(redis, cache, 1, symbol)
            for book in cache.written:
                _assert_equals_sim_book(sim, book)

            # A lost frame makes every book suspect: fresh snapshots, still the true book.
            sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.SKIP_SEQUENCE))
            await cache.wait_for(lambda _: adapter.book_resyncs >= 1)
            mark = len(cache.written)
            await cache.wait_fresh(symbols, mark)
            # A new connection snapshots every book again.
            sim.faults.inject_ws(Venue.COINBASE, WsAction(WsActionKind.CLOSE, 1011))
            await asyncio.wait_for(adapter.socket.wait_connections(2), 10)
            mark = len(cache.written)
            await cache.wait_fresh(symbols, mark)
            for book in cache.written:
                _assert_equals_sim_book(sim, book)

            await adapter.unsubscribe_order_books(["ETH-USD"])
            assert await wired.pipeline.drop_order_books(["ETH-USD"]) == 1
            mark = len(cache.written)
            await cache.wait_for(lambda w: sum(b.symbol == "BTC-USD" for b in w[mark:]) >= 3)
            assert all(b.symbol == "BTC-USD" for b in cache.written[mark:])
            assert await redis.exists(keys.orderbook_key(1, "ETH-USD")) == 0
        finally:
            await adapter.close()


async def test_binance_partial_depth_books_and_unsubscribe(redis: Any) -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    cache = RecordingBookCache(redis)
    async with (
        running_sim(seed=9, speed=SPEED, symbols=symbols, start_ms=START) as sim,
        wired_pipeline(
            redis, exchange_id=2, exchange_name="binance", repairer=None, order_books=cache
        ) as wired,
    ):
        config = default_exchange_config(
            ExchangeName.BINANCE,
            2,
            rest_url=sim.rest_url(Venue.BINANCE),
            ws_url=sim.ws_url(Venue.BINANCE),
        )
        adapter = BinanceAdapter(
            config, wired.pipeline, policy=FAST, clock=wired.clock, rng=random.Random(3)
        )
        await adapter.subscribe(symbols, [Timeframe.M1])
        await adapter.subscribe_order_books([s.lower() for s in symbols])
        assert adapter.order_book_symbols == frozenset(symbols)
        await adapter.connect()
        try:
            await cache.wait_fresh(symbols, 0)
            for symbol in symbols:
                await _assert_cached_book(redis, cache, 2, symbol)
            stamps = [b.timestamp for b in cache.written if b.symbol == "BTCUSDT"]
            assert stamps == sorted(stamps) and stamps[-1] >= START

            # Books come back after the connection is lost (the stream is resubscribed).
            sim.faults.inject_ws(Venue.BINANCE, WsAction(WsActionKind.DROP))
            await asyncio.wait_for(adapter._connections[0].socket.wait_connections(2), 10)
            await cache.wait_fresh(symbols, len(cache.written))

            await adapter.unsubscribe_order_books(["ETHUSDT"])
            await wired.pipeline.drop_order_books(["ETHUSDT"])
            assert adapter.order_book_symbols == frozenset({"BTCUSDT"})
            mark = len(cache.written)
            await cache.wait_for(lambda w: sum(b.symbol == "BTCUSDT" for b in w[mark:]) >= 3)
            assert all(b.symbol == "BTCUSDT" for b in cache.written[mark:])
            assert await redis.exists(keys.orderbook_key(2, "ETHUSDT")) == 0
            assert adapter.subscriptions == {(s, Timeframe.M1) for s in symbols}  # klines stay
        finally:
            await adapter.close()
