from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache.tickers import OrderBookCache, TickerCache
from livermore_schema.market import OrderBookLevel, OrderBookTop, Ticker
from livermore_schema.settings import CacheSettings


def ticker(symbol: str = "BTC-USD", price: float = 42000.5) -> Ticker:
    return Ticker(exchange_id=1, exchange="coinbase", symbol=symbol, price=price, timestamp=5)


async def test_ticker_written_with_60s_ttl_and_read_back(redis: Redis) -> None:
    cache = TickerCache(redis, CacheSettings())
    await cache.write(ticker())
    assert 55 <= await redis.ttl("ticker:1:BTC-USD") <= 60
    assert await cache.read(1, "BTC-USD") == ticker()
    assert await cache.latest_price(1, "BTC-USD") == 42000.5
    assert await cache.latest_price(1, "ETH-USD") is None
    await cache.write(ticker("ETH-USD", 2000.0))
    assert await cache.read_many(1, ["BTC-USD", "ETH-USD", "SOL-USD"]) == {
        "BTC-USD": ticker(),
        "ETH-USD": ticker("ETH-USD", 2000.0),
    }


async def test_expired_ticker_reads_as_none(redis: Redis) -> None:
    cache = TickerCache(redis, CacheSettings())
    await cache.write(ticker())
    assert await cache.read(1, "BTC-USD") is not None
    await redis.pexpireat("ticker:1:BTC-USD", 1)  # an expiry in the past: the key is gone
    assert await cache.read(1, "BTC-USD") is None


async def test_orderbook_written_with_30s_ttl(redis: Redis) -> None:
    cache = OrderBookCache(redis, CacheSettings())
    book = OrderBookTop(
        exchange_id=2,
        symbol="BTCUSDT",
        bids=[OrderBookLevel(price=99.5, quantity=2.0)],
        asks=[OrderBookLevel(price=100.5, quantity=1.0)],
        timestamp=7,
    )
    await cache.write(book)
    assert 25 <= await redis.ttl("orderbook:2:BTCUSDT") <= 30
    assert await cache.read(2, "BTCUSDT") == book
    assert await cache.read(2, "ETHUSDT") is None


async def test_orderbooks_written_in_one_batch_and_deleted(redis: Redis) -> None:
    cache = OrderBookCache(redis, CacheSettings(orderbook_ttl_s=20))
    books = [
        OrderBookTop(
            exchange_id=2,
            symbol=symbol,
            bids=[OrderBookLevel(price=99.5, quantity=2.0)],
            asks=[OrderBookLevel(price=100.5, quantity=1.0)],
            timestamp=7,
        )
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    assert await cache.write_many(books) == 2
    assert await cache.write_many([]) == 0
    assert 15 <= await redis.ttl("orderbook:2:ETHUSDT") <= 20
    assert await cache.read(2, "ETHUSDT") == books[1]
    assert await cache.delete(2, ["BTCUSDT", "ETHUSDT", "SOLUSDT"]) == 2
    assert await cache.delete(2, []) == 0
    assert await cache.read(2, "BTCUSDT") is None
