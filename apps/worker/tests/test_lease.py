"""ExchangeLease and RunningStateStore against the private Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.client import connect_redis
from livermore_cache.fence import FenceExpired, LeaseFence
from livermore_schema.enums import SymbolTier, WorkerMode
from livermore_schema.settings import RedisSettings
from livermore_worker.lease import ExchangeLease, RunningState, RunningStateStore, StreamedSymbol


async def test_only_one_holder_and_only_the_holder_extends_or_releases(redis: Redis) -> None:
    first = ExchangeLease(redis, 7, "worker-a", ttl_s=5)
    second = ExchangeLease(redis, 7, "worker-b", ttl_s=5)
    assert await first.acquire()
    assert not await second.acquire()
    assert not await second.renew()
    await second.release()  # not its lease: a no-op
    assert await first.current_holder() == "worker-a"
    assert await first.renew()
    assert 4000 < await redis.pttl(keys.lease_key(7)) <= 5000
    await first.release()
    assert await second.acquire()
    assert await second.current_holder() == "worker-b"


async def test_a_lapsed_lease_goes_to_the_standby(redis: Redis) -> None:
    first = ExchangeLease(redis, 8, "worker-a", ttl_s=5)
    assert await first.acquire()
    await redis.delete(keys.lease_key(8))  # what expiry does after a kill -9
    standby = ExchangeLease(redis, 8, "worker-b", ttl_s=5)
    assert await standby.acquire()
    assert not await first.renew()  # the old holder can never take it back by renewing


async def test_running_state_round_trips(redis: Redis) -> None:
    store = RunningStateStore(redis, 9)
    assert await store.read() is None
    state = RunningState(
        started=True,
        mode=WorkerMode.SCALPER_MACDV,
        symbols=(
            StreamedSymbol(symbol="BTCUSDT"),
            StreamedSymbol(symbol="X", tier=SymbolTier.TIER_2, user_id=4, manual=True),
        ),
        holder="worker-a",
    )
    await store.write(state)
    assert await store.read() == state


async def test_the_fence_refuses_writes_unless_the_lease_is_held(
    redis: Redis, redis_settings: RedisSettings
) -> None:
    fence = LeaseFence(hold_s=5)
    fenced = connect_redis(redis_settings, fence=fence)
    try:
        lease = ExchangeLease(fenced, 10, "worker-a", ttl_s=5, fence=fence)
        with pytest.raises(FenceExpired):
            await fenced.set("probe", "before")
        with pytest.raises(FenceExpired):  # a pipeline is admitted as a whole
            await fenced.pipeline(transaction=False).set("probe", "x").execute()
        assert await fenced.get("probe") is None  # reads are never fenced; nothing was sent
        assert await lease.acquire()
        assert 3.5 < fence.remaining_s() <= 5 - lease.margin_s
        assert await fenced.set("probe", "held") is True
        await redis.set(keys.lease_key(10), "worker-b")  # another worker holds it now
        assert not await lease.renew()
        with pytest.raises(FenceExpired):
            await fenced.publish("channel:probe", "stale")
        assert await redis.get("probe") == "held" and fence.refused == 3
    finally:
        await fenced.aclose()


async def test_a_write_waits_for_a_pending_renew_and_a_lapsed_lease_is_taken_back(
    redis: Redis, redis_settings: RedisSettings
) -> None:
    fence = LeaseFence(hold_s=5)
    fenced = connect_redis(redis_settings, fence=fence)
    try:
        lease = ExchangeLease(fenced, 11, "worker-a", ttl_s=5, fence=fence)
        assert await lease.acquire()
        fence.valid_until = time.monotonic() - 1  # lapsed on our side, renew not answered yet
        write = asyncio.get_running_loop().create_task(fenced.set("probe", "late"))
        for _ in range(20):
            await asyncio.sleep(0)  # let the write reach the fence (yielding, not waiting)
        assert not write.done() and await redis.get("probe") is None
        await redis.delete(keys.lease_key(11))  # it lapsed on the server too, nobody took it
        assert await lease.renew()  # taken back
        assert await write is True
        assert await redis.get(keys.lease_key(11)) == "worker-a"
    finally:
        await fenced.aclose()
