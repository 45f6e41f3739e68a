from __future__ import annotations

import asyncio
import json
import time
from uuid import uuid4

import pytest
from redis.asyncio import Redis

from livermore_cache import channels, keys
from livermore_cache.client import connect_redis
from livermore_cache.commands import CommandBus, CommandInbox, PublishedCommandBridge
from livermore_cache.fence import LeaseFence
from livermore_schema.control import (
    AddSymbolCommand,
    CommandResponse,
    StartCommand,
    StopCommand,
    SymbolPayload,
    parse_command,
)
from livermore_schema.enums import ResponseStatus
from livermore_schema.settings import RedisSettings


async def test_command_sent_before_any_consumer_is_delivered_later(redis: Redis) -> None:
    bus = CommandBus(redis)
    command = AddSymbolCommand(payload=SymbolPayload(symbol="ETH-USD"))
    assert await bus.send(1, command) == command.correlation_id
    assert await redis.xlen("livermore:commandstream:1") == 1
    inbox = CommandInbox(redis, 1, "host:1")
    got = await inbox.next(timeout=1)
    assert got is not None
    entry_id, raw = got
    assert parse_command(raw) == command
    await inbox.ack(entry_id)
    assert await inbox.next(timeout=0.05) is None
    assert await CommandInbox(redis, 1, "host:2").next(timeout=0.05) is None  # acked for good


async def test_unacked_command_of_a_dead_worker_is_taken_over(redis: Redis) -> None:
    bus = CommandBus(redis)
    command = StartCommand()
    await bus.send(2, command)
    dead = CommandInbox(redis, 2, "host:10")
    first = await dead.next(timeout=1)
    assert first is not None
    # the worker "crashes" before ack; its successor (new pid) recovers the entry
    successor = CommandInbox(redis, 2, "host:11")
    again = await successor.next(timeout=1)
    assert again == first
    await successor.ack(again[0])
    assert await CommandInbox(redis, 2, "host:12").next(timeout=0.05) is None


async def test_inbox_blocks_until_a_command_arrives(redis: Redis) -> None:
    inbox = CommandInbox(redis, 1, "host:1")
    assert await inbox.next(timeout=0.05) is None  # creates the group, nothing queued
    waiter = asyncio.create_task(inbox.next(timeout=5))
    command = StartCommand()
    # the send may land before or after XREADGROUP blocks: both deliver the entry
    await CommandBus(redis).send(1, command)
    got = await asyncio.wait_for(waiter, 5)
    assert got is not None and parse_command(got[1]) == command


async def test_malformed_command_reaches_the_worker_as_raw_text(redis: Redis) -> None:
    bus = CommandBus(redis)
    await bus.send_raw(1, '{"type": "launch-rockets"')
    await redis.xadd(keys.command_stream_key(1), {"other": "x"})
    inbox = CommandInbox(redis, 1, "host:1")
    first = await inbox.next(timeout=1)
    second = await inbox.next(timeout=1)
    assert first is not None and first[1] == '{"type": "launch-rockets"'
    assert second is not None and json.loads(second[1]) == {"other": "x"}


async def test_response_is_published_and_fetchable_by_correlation_id(redis: Redis) -> None:
    bus = CommandBus(redis)
    command = StartCommand()
    await bus.send(1, command)
    inbox = CommandInbox(redis, 1, "host:1", response_ttl_s=600)

    async def worker() -> None:
        got = await inbox.next(timeout=5)
        assert got is not None
        cid = parse_command(got[1]).correlation_id
        await inbox.respond(CommandResponse(correlation_id=cid, status=ResponseStatus.ACK))
        await inbox.respond(
            CommandResponse(correlation_id=cid, status=ResponseStatus.SUCCESS, message="started")
        )
        await inbox.ack(got[0])

    async with asyncio.TaskGroup() as tg:
        waiting = tg.create_task(bus.await_response(1, command.correlation_id, timeout=5))
        tg.create_task(worker())
    final = waiting.result()
    assert final.status is ResponseStatus.SUCCESS and final.message == "started"
    fetched = await bus.fetch_response(1, command.correlation_id)
    assert fetched == final
    key = f"livermore:response:1:{command.correlation_id}"
    assert 590 <= await redis.ttl(key) <= 600
    # a late waiter still gets it from the stored copy, even with final_only=False
    assert await bus.await_response(1, command.correlation_id, 1, final_only=False) == final


async def test_await_response_skips_ack_unless_asked(redis: Redis) -> None:
    bus = CommandBus(redis)
    inbox = CommandInbox(redis, 1, "host:1")
    cid = uuid4()
    await inbox.respond(CommandResponse(correlation_id=cid, status=ResponseStatus.ACK))
    ack = await bus.await_response(1, cid, 1, final_only=False)
    assert ack.status is ResponseStatus.ACK
    with pytest.raises(TimeoutError, match=str(cid)):
        await bus.await_response(1, cid, 0.2)
    assert await bus.fetch_response(1, uuid4()) is None


async def test_stream_is_trimmed(redis: Redis) -> None:
    bus = CommandBus(redis, maxlen=10)
    for _ in range(600):
        await bus.send(1, StartCommand())
    assert await redis.xlen(keys.command_stream_key(1)) < 300


async def test_a_published_command_reaches_the_stream_once_and_a_bus_command_is_not_doubled(
    redis: Redis,
) -> None:
    bridge = PublishedCommandBridge(redis, 3)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(bridge.serve(stop, 0.05, ready=ready))
    await asyncio.wait_for(ready.wait(), 5)
    inbox = CommandInbox(redis, 3, "host:1")
    raw = StartCommand().model_dump_json()
    assert await redis.publish(channels.commands_channel(3), raw) == 1  # a plain PUBLISH
    got = await inbox.next(timeout=5)
    assert got is not None and got[1] == raw
    await inbox.ack(got[0])
    sent = AddSymbolCommand(payload=SymbolPayload(symbol="ETH-USD"))
    await CommandBus(redis).send(3, sent)  # XADD, then PUBLISH: the bridge finds its entry
    got = await inbox.next(timeout=5)
    assert got is not None and parse_command(got[1]) == sent
    await inbox.ack(got[0])
    assert await bridge.admit(sent.model_dump_json()) is False  # what the bridge just saw
    assert await redis.publish(channels.commands_channel(3), raw) == 1  # the same text again
    marker = StopCommand().model_dump_json()  # published after it, so bridged after it
    assert await redis.publish(channels.commands_channel(3), marker) == 1
    got = await inbox.next(timeout=5)
    assert got is not None and got[1] == marker  # the repeated text was not queued again
    stop.set()
    await asyncio.wait_for(serving, 5)
    assert bridge.bridged == 2 and await redis.xlen(keys.command_stream_key(3)) == 3


async def test_a_worker_without_a_valid_lease_reads_no_command(
    redis: Redis, redis_settings: RedisSettings
) -> None:
    fence = LeaseFence(hold_s=1)
    fenced = connect_redis(redis_settings, fence=fence)
    try:
        command = StopCommand()
        await CommandBus(redis).send(3, command)
        stale = CommandInbox(fenced, 3, "host:stale")
        assert await stale.next(timeout=0.2) is None  # never held: nothing read
        fence.extend(time.monotonic() - 10, 5, 1)  # held once, lapsed since
        assert await stale.next(timeout=0.2) is None
        holder = CommandInbox(redis, 3, "host:holder")
        await holder.ensure_group()
        pending = await redis.xpending(keys.command_stream_key(3), "livermore-workers")
        assert pending["pending"] == 0  # still unread: the holder gets it
        got = await holder.next(timeout=1)
        assert got is not None and parse_command(got[1]) == command
        await holder.ack(got[0])
        await CommandBus(redis).send(3, StartCommand())

        async def renew_soon() -> None:
            await asyncio.sleep(0)  # yield once: the read is waiting for validity by now
            fence.extend(time.monotonic(), 5, 1)

        renewing = asyncio.get_running_loop().create_task(renew_soon())
        got = await stale.next(timeout=5)  # a renew makes the lease valid: read at once
        await renewing
        assert got is not None and parse_command(got[1]).type == "start"
    finally:
        await fenced.aclose()
