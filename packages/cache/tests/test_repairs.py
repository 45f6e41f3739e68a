"""`repairs:{exchange_id}`: pending gap repairs recorded, replaced, removed and loaded."""

from __future__ import annotations

from typing import Any

from livermore_cache import keys
from livermore_cache.repairs import PendingRepair, RepairStore
from livermore_schema.enums import Timeframe

M1, H1 = Timeframe.M1, Timeframe.H1


async def test_pending_repairs_round_trip_one_field_per_series_oldest_first(redis: Any) -> None:
    store = RepairStore(redis, 2)
    late = PendingRepair("BTCUSDT", M1, 60_000, 180_000, 180_000, opened_ms=20, reason="stall")
    early = PendingRepair("ETHUSDT", H1, 0, 3_600_000, 3_600_000, opened_ms=10, contiguous=True)
    await store.record(late, early)
    assert await store.load() == [early, late]
    assert await redis.hlen(keys.repairs_key(2)) == 2
    wider = PendingRepair("BTCUSDT", M1, 0, 240_000, 240_000, opened_ms=20, reason="stall")
    await store.record(wider)  # the same series: replaced, not added
    assert await store.load() == [early, wider]
    await store.remove([("ETHUSDT", H1)])
    assert await store.load() == [wider]
    assert await RepairStore(redis, 3).load() == []  # another exchange's key


async def test_a_malformed_field_is_skipped_and_the_rest_still_load(redis: Any) -> None:
    store = RepairStore(redis, 2)
    good = PendingRepair("BTCUSDT", M1, 0, 60_000, 60_000, opened_ms=1)
    await store.record(good)
    await redis.hset(keys.repairs_key(2), "SOLUSDT|1m", "{not json")
    await redis.hset(keys.repairs_key(2), "SOLUSDT|7m", '{"since_ms": 0}')
    assert await store.load() == [good]
