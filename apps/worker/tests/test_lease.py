"""ExchangeLease and RunningStateStore against the private Redis."""

from __future__ import annotations

from redis.asyncio import Redis

from livermore_cache import keys
from livermore_schema.enums import SymbolTier, WorkerMode
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
