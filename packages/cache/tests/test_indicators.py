from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.indicators import IndicatorCache
from livermore_schema.enums import IndicatorType, Timeframe
from livermore_schema.settings import CacheSettings

from ._factories import indicator

H1, H4, D1 = Timeframe.H1, Timeframe.H4, Timeframe.D1


async def test_write_sets_25h_ttl_on_exchange_key(redis: Redis) -> None:
    cache = IndicatorCache(redis, CacheSettings())
    value = indicator(H1)
    await cache.write(value)
    key = "indicator:1:BTC-USD:1h:macd-v"
    assert await redis.get(key) == value.model_dump_json()
    assert 25 * 3600 - 5 <= await redis.ttl(key) <= 25 * 3600
    assert await cache.read(1, "BTC-USD", H1) == value
    assert await cache.read(1, "BTC-USD", H4) is None


async def test_user_write_goes_to_user_key_with_ttl(redis: Redis) -> None:
    cache = IndicatorCache(redis, CacheSettings(indicator_ttl_s=600))
    await cache.write(indicator(H1), user_id=7)
    key = "userindicator:7:1:BTC-USD:1h:macd-v"
    assert 595 <= await redis.ttl(key) <= 600
    assert await redis.exists("indicator:1:BTC-USD:1h:macd-v") == 0
    assert await cache.read(1, "BTC-USD", H1) is None
    assert await cache.read(1, "BTC-USD", H1, user_id=7) == indicator(H1)


async def test_dual_read_order_exchange_then_user_then_legacy(redis: Redis) -> None:
    cache = IndicatorCache(redis, CacheSettings())
    legacy = keys.legacy_indicator_key(7, 1, "BTC-USD", H1, IndicatorType.MACD_V)
    await redis.set(legacy, indicator(H1, macd_v=1.0).model_dump_json())
    read = cache.read
    assert (await read(1, "BTC-USD", H1, user_id=7)).value.macd_v == 1.0  # type: ignore[union-attr]
    await cache.write(indicator(H1, macd_v=2.0), user_id=7)
    assert (await read(1, "BTC-USD", H1, user_id=7)).value.macd_v == 2.0  # type: ignore[union-attr]
    await cache.write(indicator(H1, macd_v=3.0))
    assert (await read(1, "BTC-USD", H1, user_id=7)).value.macd_v == 3.0  # type: ignore[union-attr]


async def test_read_many_mixes_tiers_per_timeframe(redis: Redis) -> None:
    cache = IndicatorCache(redis, CacheSettings())
    await cache.write(indicator(H1, macd_v=1.0))
    await cache.write(indicator(H4, macd_v=4.0), user_id=7)
    legacy = keys.legacy_indicator_key(7, 1, "BTC-USD", D1, IndicatorType.MACD_V)
    await redis.set(legacy, indicator(D1, macd_v=24.0).model_dump_json())
    found = await cache.read_many(1, "BTC-USD", [H1, H4, D1, Timeframe.M5], user_id=7)
    assert {tf: v.value.macd_v if v else None for tf, v in found.items()} == {
        H1: 1.0,
        H4: 4.0,
        D1: 24.0,
        Timeframe.M5: None,
    }
    without_user = await cache.read_many(1, "BTC-USD", [H1, H4])
    assert without_user[H1] is not None and without_user[H4] is None
