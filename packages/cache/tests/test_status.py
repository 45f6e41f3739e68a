from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from livermore_cache.status import StatusStore
from livermore_schema.enums import ConnectionState
from livermore_schema.status import ConnectionStatus

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def status(
    state: ConnectionState = ConnectionState.CONNECTED, interval: float = 5.0
) -> ConnectionStatus:
    return ConnectionStatus(
        exchange_id=1,
        exchange_name="coinbase",
        connection_state=state,
        last_heartbeat=T0,
        worker_id="host:123",
        heartbeat_interval_s=interval,
    )


async def test_status_expires_after_three_heartbeat_intervals(redis: Redis) -> None:
    store = StatusStore(redis)
    await store.write(status(interval=5.0))
    assert 14_000 <= await redis.pttl("exchange:status:1") <= 15_000
    assert await store.read(1) == status(interval=5.0)
    await store.write(status(interval=0.5))
    assert 1_000 <= await redis.pttl("exchange:status:1") <= 1_500


async def test_heartbeat_refreshes_timestamp_and_expiry_only(redis: Redis) -> None:
    store = StatusStore(redis)
    assert await store.heartbeat(1, T0) is None
    assert await redis.exists("exchange:status:1") == 0
    await store.write(status(ConnectionState.STARTING))
    await redis.pexpire("exchange:status:1", 100)
    later = T0 + timedelta(seconds=4)
    beat = await store.heartbeat(1, later)
    assert beat == status(ConnectionState.STARTING).model_copy(update={"last_heartbeat": later})
    assert await store.read(1) == beat
    assert 14_000 <= await redis.pttl("exchange:status:1") <= 15_000


async def test_liveness_reports_stale_heartbeat_as_dead(redis: Redis) -> None:
    store = StatusStore(redis)
    assert await store.liveness(1, T0) == (None, False)
    await store.write(status())
    found, alive = await store.liveness(1, T0 + timedelta(seconds=14))
    assert found == status() and alive is True
    found, alive = await store.liveness(1, T0 + timedelta(seconds=16))
    assert found == status() and alive is False


async def test_read_all_and_delete(redis: Redis) -> None:
    store = StatusStore(redis)
    await store.write(status())
    assert await store.read_all([1, 2]) == {1: status(), 2: None}
    assert await store.delete(1) == 1
    assert await store.read(1) is None
