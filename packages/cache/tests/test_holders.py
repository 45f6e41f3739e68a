from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.holders import Tier2Holders
from livermore_cache.indicators import IndicatorCache
from livermore_schema.enums import IndicatorType, Timeframe
from livermore_schema.settings import CacheSettings

from ._factories import candle, indicator

TF = Timeframe.M5
SETTINGS = CacheSettings(user_candle_ttl_s=86_400, indicator_ttl_s=90_000)


def test_map_reads_as_the_first_holder_and_fans_out_only_holders() -> None:
    holders = Tier2Holders(1, {"SOL-USD": [7, 9, 7], "ADA-USD": []})
    assert dict(holders) == {"SOL-USD": 7}
    assert holders.holders("SOL-USD") == (7, 9)
    assert holders.users() == {7, 9}
    assert holders.targets(1, "SOL-USD", 9) == (7, 9)
    assert holders.targets(1, "SOL-USD", 5) == (5,)
    assert holders.targets(2, "SOL-USD", 7) == (7,)
    assert holders.targets(1, "SOL-USD", None) == (None,)


async def test_a_shared_tier2_candle_reaches_every_holder_with_ttl(redis: Redis) -> None:
    holders = Tier2Holders(1, {"SOL-USD": [7, 9]})
    cache = CandleCache(redis, SETTINGS, holders=holders)
    bar = candle(0, symbol="SOL-USD")
    assert await cache.write(bar, user_id=7)
    await cache.write_many([candle(1, symbol="SOL-USD")], user_id=7)
    batch = cache.batch()
    cache.add_write(batch, candle(2, symbol="SOL-USD"), user_id=9)
    await batch.flush()
    for user_id in (7, 9):
        key = keys.user_candles_key(user_id, 1, "SOL-USD", TF)
        assert await redis.zcard(key) == 3
        assert 86_000 < await redis.ttl(key) <= 86_400
    assert await redis.exists(keys.candles_key(1, "SOL-USD", TF)) == 0


async def test_a_dropped_holder_is_no_longer_written(redis: Redis) -> None:
    holders = Tier2Holders(1, {"SOL-USD": [7, 9]})
    cache = CandleCache(redis, SETTINGS, holders=holders)
    await cache.write(candle(0, symbol="SOL-USD"), user_id=7)
    holders.replace({"SOL-USD": [7]})
    await cache.write(candle(1, symbol="SOL-USD"), user_id=7)
    assert await redis.zcard(keys.user_candles_key(7, 1, "SOL-USD", TF)) == 2
    assert await redis.zcard(keys.user_candles_key(9, 1, "SOL-USD", TF)) == 1


async def test_indicator_writes_reach_every_holder(redis: Redis) -> None:
    holders = Tier2Holders(1, {"SOL-USD": [7, 9]})
    cache = IndicatorCache(redis, SETTINGS, holders=holders)
    value = indicator(symbol="SOL-USD")
    await cache.write(value, user_id=9)
    for user_id in (7, 9):
        key = keys.user_indicator_key(user_id, 1, "SOL-USD", value.timeframe, IndicatorType.MACD_V)
        assert await redis.get(key) == value.model_dump_json()
        assert 0 < await redis.ttl(key) <= 90_000
    assert (
        await redis.exists(keys.indicator_key(1, "SOL-USD", value.timeframe, IndicatorType.MACD_V))
        == 0
    )
