from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.settings import CacheSettings

from ._factories import BASE_MS, candle

WS, REST = CandleSource.WS, CandleSource.REST
TF = Timeframe.M5
KEY = "candles:1:BTC-USD:5m"


def make_cache(redis: Redis, retention: int = 1000) -> CandleCache:
    return CandleCache(redis, CacheSettings(candle_retention=retention))


async def test_write_stores_json_at_open_time_score(redis: Redis) -> None:
    cache = make_cache(redis)
    bar = candle(3, close=101.0)
    assert await cache.write(bar) is True
    members = await redis.zrange(KEY, 0, -1, withscores=True)
    assert members == [(bar.storage_json(), float(bar.open_time))]
    assert await redis.ttl(KEY) == -1


async def test_one_candle_per_open_time(redis: Redis) -> None:
    cache = make_cache(redis)
    for price in (100.0, 101.0, 102.0):
        assert await cache.write(candle(0, close=price, closed=False))
    assert await redis.zcard(KEY) == 1
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and latest.close == 102.0


async def test_older_sequence_does_not_overwrite_newer(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, close=105.0, closed=False, sequence=10))
    assert await cache.write(candle(0, close=104.0, closed=False, sequence=9)) is False
    assert await cache.write(candle(0, close=106.0, closed=False, sequence=11)) is True
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and (latest.close, latest.sequence) == (106.0, 11)


async def test_rest_never_overwrites_open_ws_bar(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, close=105.0, closed=False, sequence=3))
    assert await cache.write(candle(0, close=99.0, closed=False, source=REST)) is False
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and latest.source is WS and latest.close == 105.0


async def test_closed_rest_bar_replaces_unfinished_ws_bar(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, close=105.0, closed=False, sequence=3))
    assert await cache.write(candle(0, close=107.0, closed=True, source=REST)) is True
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and latest.closed and latest.source is REST


async def test_unfinished_bar_never_replaces_closed_bar(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, close=107.0, closed=True, sequence=5))
    assert await cache.write(candle(0, close=1.0, closed=False, sequence=99)) is False
    assert await cache.write(candle(0, close=1.0, closed=False, source=REST)) is False
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and latest.closed and latest.close == 107.0


async def test_open_rest_bar_replaces_open_rest_bar(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, close=100.0, closed=False, source=REST))
    assert await cache.write(candle(0, close=103.0, closed=False, source=REST))
    latest = await cache.latest(1, "BTC-USD", TF)
    assert latest is not None and latest.close == 103.0


async def test_synthetic_candles_are_never_stored(redis: Redis) -> None:
    cache = make_cache(redis)
    assert await cache.write(candle(0, synthetic=True)) is False
    assert await cache.write_many([candle(1, synthetic=True)]) == 0
    assert await redis.exists(KEY) == 0


async def test_trims_to_retention_keeping_newest(redis: Redis) -> None:
    cache = make_cache(redis, retention=10)
    assert await cache.write_many([candle(i) for i in range(25)]) == 25
    assert await cache.open_times(1, "BTC-USD", TF) == [
        BASE_MS + i * 300_000 for i in range(15, 25)
    ]
    # single writes trim too, and a bar older than everything kept is not stored
    assert await cache.write(candle(25))
    assert await cache.write(candle(2)) is False
    assert await cache.count(1, "BTC-USD", TF) == 10
    assert (await cache.recent(1, "BTC-USD", TF, 1))[0].open_time == BASE_MS + 25 * 300_000


async def test_write_many_applies_rules_in_order_and_groups_per_key(redis: Redis) -> None:
    cache = make_cache(redis)
    batch = [
        candle(0, closed=False, sequence=5, close=100.0),
        candle(0, closed=False, sequence=4, close=90.0),  # older sequence: rejected
        candle(0, closed=True, sequence=6, close=101.0),
        candle(0, closed=False, sequence=7, close=80.0),  # unfinished after closed: rejected
        candle(1, symbol="ETH-USD", close=50.0),
    ]
    assert await cache.write_many(batch) == 3
    btc = await cache.recent(1, "BTC-USD", TF, 10)
    assert [(c.close, c.closed) for c in btc] == [(101.0, True)]
    assert await redis.zcard("candles:1:ETH-USD:5m") == 1


async def test_tier2_ttl_set_and_refreshed(redis: Redis) -> None:
    cache = CandleCache(redis, CacheSettings(user_candle_ttl_s=3600))
    key = keys.user_candles_key(7, 1, "BTC-USD", TF)
    assert key == "usercandles:7:1:BTC-USD:5m"
    assert await cache.write(candle(0), user_id=7)
    assert 3590 <= await redis.ttl(key) <= 3600
    await redis.expire(key, 100)
    assert await cache.write(candle(1), user_id=7)
    assert 3590 <= await redis.ttl(key) <= 3600
    await redis.expire(key, 100)
    assert await cache.write_many([candle(2), candle(3)], user_id=7) == 2
    assert 3590 <= await redis.ttl(key) <= 3600
    assert await redis.exists(KEY) == 0


async def test_dual_read_order_exchange_then_user_then_legacy(redis: Redis) -> None:
    cache = make_cache(redis)
    legacy = keys.legacy_candles_key(7, 1, "BTC-USD", TF)
    await redis.zadd(legacy, {candle(0, close=10.0).storage_json(): BASE_MS})
    assert (await cache.latest(1, "BTC-USD", TF, user_id=7)).close == 10.0  # type: ignore[union-attr]
    assert await cache.latest(1, "BTC-USD", TF) is None  # legacy needs a user
    await cache.write(candle(0, close=20.0), user_id=7)
    assert (await cache.latest(1, "BTC-USD", TF, user_id=7)).close == 20.0  # type: ignore[union-attr]
    await cache.write(candle(0, close=30.0))
    assert (await cache.latest(1, "BTC-USD", TF, user_id=7)).close == 30.0  # type: ignore[union-attr]
    assert await cache.count(1, "BTC-USD", TF, user_id=7) == 1
    assert await cache.delete_series(1, "BTC-USD", TF) == 1
    assert [c.close for c in await cache.recent(1, "BTC-USD", TF, 5, user_id=7)] == [20.0]
    assert await cache.delete_series(1, "BTC-USD", TF, user_id=7) == 1
    assert [c.close for c in await cache.recent(1, "BTC-USD", TF, 5, user_id=7)] == [10.0]
    assert await redis.exists(legacy) == 1  # legacy is never written nor deleted


async def test_between_is_inclusive_by_open_time(redis: Redis) -> None:
    cache = make_cache(redis)
    await cache.write_many([candle(i, close=100.0 + i) for i in range(10)])
    found = await cache.between(1, "BTC-USD", TF, BASE_MS + 2 * 300_000, BASE_MS + 5 * 300_000)
    assert [c.close for c in found] == [102.0, 103.0, 104.0, 105.0]
    recent = await cache.recent(1, "BTC-USD", TF, 3)
    assert [c.close for c in recent] == [107.0, 108.0, 109.0]
    assert await cache.recent(1, "BTC-USD", TF, 0) == []


async def test_write_reloads_script_after_script_flush(redis: Redis) -> None:
    cache = make_cache(redis)
    await redis.script_flush()
    assert await cache.write(candle(0))
    await redis.script_flush()
    assert await cache.write_many([candle(1), candle(2)]) == 2
