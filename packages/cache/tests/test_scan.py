from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.scan import delete_matching, iter_matching
from livermore_schema.enums import Timeframe


async def test_delete_matching_removes_only_matching_keys_in_batches(redis: Redis) -> None:
    for index in range(1200):
        await redis.set(keys.ticker_key(1, f"S{index}-USD"), "x")
    await redis.set(keys.ticker_key(2, "BTC-USD"), "keep")
    assert await delete_matching(redis, keys.tickers_pattern(1), batch=100) == 1200
    assert await redis.dbsize() == 1
    assert await redis.get("ticker:2:BTC-USD") == "keep"
    assert await delete_matching(redis, keys.tickers_pattern(1)) == 0


async def test_star_never_spans_segments_so_legacy_keys_survive(redis: Redis) -> None:
    tier1 = keys.candles_key(1, "BTC-USD", Timeframe.M5)
    legacy = keys.legacy_candles_key(1, 1, "BTC-USD", Timeframe.M5)  # candles:1:1:BTC-USD:5m
    for key in (tier1, legacy):
        await redis.zadd(key, {"m": 1})
    assert [k async for k in iter_matching(redis, keys.candles_pattern(1))] == [tier1]
    assert await delete_matching(redis, keys.candles_pattern(1)) == 1
    assert await redis.exists(legacy) == 1
