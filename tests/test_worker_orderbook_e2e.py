"""End to end: `switch-mode` to scalper-orderbook and back on a Coinbase and a Binance worker.

Switching in streams every symbol's level-2 book (Coinbase `level2`, Binance `@depth10@100ms`)
into `orderbook:{exchange_id}:{symbol}`; switching back unsubscribes the books and deletes the
keys, and no book is written after that even while the workers keep streaming.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp.web_urldispatcher import PrefixedSubAppResource
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.commands import CommandBus
from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_exchange_sim.binance import BINANCE_HUB
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.control import CommandResponse, SwitchModeCommand
from livermore_schema.enums import ConnectionState, ResponseStatus
from livermore_schema.market import OrderBookTop
from livermore_schema.settings import CacheSettings

COINBASE, BINANCE = 1, 2
SIM_SECOND = 1_000


def _connected(exchange_id: int) -> Callable[[Any], bool]:
    return lambda e: (
        e.exchange_id == exchange_id
        and e.state is ConnectionState.CONNECTED
        and e.progress is not None
        and e.progress.phase == "complete"
    )


def _depth_streams(sim: RunningSim) -> set[str]:
    """The partial book depth streams the simulator serves to live Binance connections."""
    for resource in sim.app.router.resources():
        info = resource.get_info()
        if isinstance(resource, PrefixedSubAppResource) and info["prefix"] == "/binance":
            hub = info["app"][BINANCE_HUB]
            return {n for conn in hub.connections for n in conn.streams.streams if "@depth" in n}
    raise AssertionError("the simulator serves no /binance sub-app")


async def _switch(bus: CommandBus, exchange_id: int, mode: str) -> dict[str, Any]:
    command = SwitchModeCommand.model_validate({"payload": {"mode": mode}})
    response: CommandResponse = await bus.await_response(
        exchange_id, await bus.send(exchange_id, command), 60
    )
    assert response.status is ResponseStatus.SUCCESS, response
    assert response.data is not None and response.data["status"] == "switched", response
    return response.data


def _true(check: Callable[[], bool]) -> Callable[[], Any]:
    async def probe() -> bool:
        return check()

    return probe


def _assert_top(book: OrderBookTop, exchange_id: int, symbol: str) -> None:
    bids = [level.price for level in book.bids]
    asks = [level.price for level in book.asks]
    assert (book.exchange_id, book.symbol) == (exchange_id, symbol)
    assert len(bids) == len(asks) == 10, book
    assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
    assert bids[0] < asks[0]


async def test_scalper_orderbook_streams_books_and_switching_back_stops_them(
    sim: RunningSim,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    poll_until: Any,
) -> None:
    spawn_worker("coinbase", "--autostart", sim=sim)
    spawn_worker("binance", "--autostart", sim=sim)
    await lifecycle.wait_for(_connected(COINBASE), 90, "coinbase connected")
    await lifecycle.wait_for(_connected(BINANCE), 90, "binance connected")
    bus = CommandBus(redis)
    books = OrderBookCache(redis, CacheSettings())
    tickers = TickerCache(redis, CacheSettings())
    assert not _depth_streams(sim)

    for exchange_id, symbols in seeded_symbols.items():
        data = await _switch(bus, exchange_id, "scalper-orderbook")
        assert data["mode"] == "scalper-orderbook"
        assert data["timeframes"] == ["1m", "5m", "15m"]
        assert set(data["removed"]) == {"1h", "4h", "1d"} and data["added"] == []
        assert data["order_books_added"] == sorted(symbols)
        assert data["order_books_removed"] == []
    wanted = {"btcusdt@depth10@100ms", "ethusdt@depth10@100ms"}
    await poll_until(_true(lambda: _depth_streams(sim) == wanted), 10, "depth streams served")

    first = await _wait_books(books, redis, seeded_symbols, poll_until)

    async def refreshed() -> bool:
        latest = await _read_books(books, seeded_symbols)
        return all(b is not None and b.timestamp > first[k].timestamp for k, b in latest.items())

    await poll_until(refreshed, 20, "every book rewritten with a later exchange time")

    for exchange_id, symbols in seeded_symbols.items():
        data = await _switch(bus, exchange_id, "position-monitor")
        assert data["order_books_removed"] == sorted(symbols)
        assert data["order_books_added"] == []
        assert set(data["added"]) == {"1h", "4h", "1d"}
    switched_back_at = sim.clock.now_ms()
    await poll_until(_true(lambda: not _depth_streams(sim)), 10, "depth streams unsubscribed")

    async def tickers_moved_on() -> bool:
        # A simulated minute is one second of wall time at 60x: four 250 ms book flushes.
        horizon = switched_back_at + 60 * SIM_SECOND
        return all(
            ticker is not None and ticker.timestamp >= horizon
            for ticker in [
                await tickers.read(exchange_id, symbol)
                for exchange_id, symbols in seeded_symbols.items()
                for symbol in symbols
            ]
        )

    await poll_until(tickers_moved_on, 20, "tickers still streaming after switching back")
    remaining = [k async for k in redis.scan_iter(match=keys.orderbooks_pattern(COINBASE))]
    remaining += [k async for k in redis.scan_iter(match=keys.orderbooks_pattern(BINANCE))]
    assert remaining == [], "an order book was written after switching back"


async def _read_books(
    books: OrderBookCache, symbols: dict[int, tuple[str, ...]]
) -> dict[tuple[int, str], OrderBookTop | None]:
    return {(ex, sym): await books.read(ex, sym) for ex, syms in symbols.items() for sym in syms}


async def _wait_books(
    books: OrderBookCache, redis: Redis, symbols: dict[int, tuple[str, ...]], poll_until: Any
) -> dict[tuple[int, str], OrderBookTop]:
    """Wait until every symbol's book key exists; check its shape and TTL; return the books."""

    async def all_written() -> dict[tuple[int, str], OrderBookTop] | None:
        found = await _read_books(books, symbols)
        if any(book is None for book in found.values()):
            return None
        return {key: book for key, book in found.items() if book is not None}

    written: dict[tuple[int, str], OrderBookTop] = await poll_until(
        all_written, 20, "an order book for every symbol of both workers"
    )
    for (exchange_id, symbol), book in written.items():
        _assert_top(book, exchange_id, symbol)
        assert 0 < await redis.ttl(keys.orderbook_key(exchange_id, symbol)) <= 30
    return written
