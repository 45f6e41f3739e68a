"""The shared subscription: fan-out, slow clients, caps, command waits that never leak."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from livermore_cache import channels, keys
from livermore_cache.commands import CommandBus
from livermore_cache.fanout import ChannelFanout, FanoutFullError, ListenerClosedError
from livermore_cache.pubsub import Publisher
from livermore_schema.alerts import AlertEvent
from livermore_schema.control import CommandResponse
from livermore_schema.enums import ResponseStatus
from livermore_schema.settings import CacheSettings

from .test_pubsub import alert


@pytest.fixture
async def fanout(redis: Redis) -> AsyncIterator[ChannelFanout]:
    async with ChannelFanout(redis, max_per_owner=3, max_total=5, buffer=4) as hub:
        yield hub


async def subscribed_connections(redis: Redis) -> int:
    """Connections holding a channel or pattern subscription (CLIENT LIST sub=/psub=)."""
    clients = await redis.client_list()
    return sum(1 for c in clients if int(c["sub"]) + int(c["psub"]) > 0)


def _id(event: AlertEvent) -> AlertEvent | None:
    return event


async def test_one_subscription_feeds_every_listener_with_its_filter(
    redis: Redis, fanout: ChannelFanout
) -> None:
    every = fanout.listen(1, _id)
    only_two = fanout.listen(2, _id, exchange_ids=frozenset({2}))
    values = fanout.listen(3, lambda e: e.trigger_value if e.trigger_value > 0 else None)
    publisher = Publisher(redis, CacheSettings())
    await publisher.publish_alert(alert(1, value=-150.0))
    await publisher.publish_alert(alert(2, value=150.0))
    assert (await every.next(5)) is not None
    second = await every.next(5)
    assert second is not None and second.exchange_id == 2
    got_two = await only_two.next(5)
    assert got_two is not None and got_two.exchange_id == 2
    assert await values.next(5) == 150.0
    assert await subscribed_connections(redis) == 1


async def test_a_slow_listener_is_dropped_and_never_blocks_the_others(
    redis: Redis, fanout: ChannelFanout
) -> None:
    slow = fanout.listen(1, _id)
    fast = fanout.listen(2, _id)
    publisher = Publisher(redis, CacheSettings())
    received = 0
    for n in range(8):
        await publisher.publish_alert(alert(1, value=float(n)))
        if await fast.next(5) is not None:
            received += 1
    assert received == 8
    assert slow.closed == "slow_client" and fanout.dropped == 1
    with pytest.raises(ListenerClosedError, match="slow_client"):
        await slow.next(5)


async def test_caps_per_owner_and_in_total(fanout: ChannelFanout) -> None:
    mine = [fanout.listen(1, _id) for _ in range(3)]
    with pytest.raises(FanoutFullError) as owner:
        fanout.listen(1, _id)
    assert owner.value.scope == "owner"
    fanout.listen(2, _id)
    fanout.listen(3, _id)
    with pytest.raises(FanoutFullError) as total:
        fanout.listen(4, _id)
    assert total.value.scope == "total"
    fanout.release(mine[0])
    assert fanout.listen(1, _id).owner_id == 1


async def test_malformed_payloads_are_counted_and_skipped(
    redis: Redis, fanout: ChannelFanout
) -> None:
    listener = fanout.listen(1, _id)
    await redis.publish(channels.alerts_channel(1), "{not json")
    await redis.publish(channels.alerts_channel(1), '{"exchange_id": 1}')
    await redis.publish(channels.responses_channel(1), "[]")
    await Publisher(redis, CacheSettings()).publish_alert(alert(1))
    assert (await listener.next(5)) is not None
    assert fanout.malformed == 3


async def test_command_responses_arrive_through_the_shared_subscription(
    redis: Redis, fanout: ChannelFanout
) -> None:
    cid = uuid.uuid4()
    bus = CommandBus(redis, fanout=fanout)
    waiting = asyncio.create_task(bus.await_response(1, cid, 5))
    await asyncio.sleep(0)  # let the waiter register before the worker answers
    for status in (ResponseStatus.ACK, ResponseStatus.SUCCESS):
        response = CommandResponse(correlation_id=cid, status=status)
        await redis.publish(channels.responses_channel(1), response.model_dump_json())
    answer = await asyncio.wait_for(waiting, 5)
    assert answer.status is ResponseStatus.SUCCESS


async def test_a_stored_response_is_found_without_a_publish(
    redis: Redis, fanout: ChannelFanout
) -> None:
    cid = uuid.uuid4()
    done = CommandResponse(correlation_id=cid, status=ResponseStatus.ERROR, message="no")
    await redis.set(keys.response_key(1, str(cid)), done.model_dump_json())
    answer = await CommandBus(redis, fanout=fanout).await_response(1, cid, 5)
    assert answer.message == "no"


@pytest.mark.parametrize("shared", [True, False])
async def test_tiny_timeouts_answer_promptly_and_leave_no_subscription(
    redis: Redis, fanout: ChannelFanout, shared: bool
) -> None:
    bus = CommandBus(redis, fanout=fanout if shared else None)
    started = time.monotonic()
    for timeout in (1e-9, 1e-6, 1e-3) * 20:
        with pytest.raises(TimeoutError):
            await bus.await_response(1, uuid.uuid4(), timeout)
    assert time.monotonic() - started < 5
    assert await subscribed_connections(redis) == 1  # the fan-out's own, nothing leaked
