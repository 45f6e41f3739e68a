"""Commands through the API to a worker's command stream (real Redis, an in-test responder)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_api.views.commands import ADMIN_COMMANDS
from livermore_cache import keys
from livermore_cache.commands import CommandInbox
from livermore_schema.control import Command, CommandResponse, parse_command
from livermore_schema.enums import CommandType, ResponseStatus

from .conftest import World

Answer = Callable[[Command], list[CommandResponse]]


def succeed(command: Command) -> list[CommandResponse]:
    cid = command.correlation_id
    return [
        CommandResponse(correlation_id=cid, status=ResponseStatus.ACK),
        CommandResponse(
            correlation_id=cid,
            status=ResponseStatus.SUCCESS,
            message=f"{command.type} done",
            data={"user_id": command.user_id},
        ),
    ]


@asynccontextmanager
async def responder(
    redis: Redis, exchange_id: int, answer: Answer, seen: list[Command]
) -> AsyncIterator[asyncio.Event]:
    """A tiny worker stand-in: read the command stream, answer each command."""
    inbox = CommandInbox(redis, exchange_id, "test-responder")
    await inbox.ensure_group()
    answered = asyncio.Event()

    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            entry = await inbox.next(timeout=0.2)
            if entry is None:
                continue
            entry_id, raw = entry
            command = parse_command(raw)
            seen.append(command)
            for response in answer(command):
                await inbox.respond(response)
            await inbox.ack(entry_id)
            answered.set()

    task = asyncio.create_task(loop())
    try:
        yield answered
    finally:
        stop.set()  # not a cancel: redis-py can lose one that lands mid-read
        await task


async def test_command_without_worker_times_out_quickly_with_504(
    client: TestClient[Any, Any], world: World
) -> None:
    started = time.monotonic()
    async with client.post(
        "/api/exchanges/coinbase/commands",
        json={"type": "add-symbol", "payload": {"symbol": "DOGE-USD"}, "timeout_s": 0.3},
        headers=World.bearer(world.owner_token),
    ) as response:
        body = await response.json()
    assert response.status == 504
    assert body["error"]["code"] == "worker_timeout"
    assert body["error"]["details"]["correlation_id"]
    assert time.monotonic() - started < 3


async def test_command_returns_the_workers_success(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    seen: list[Command] = []
    async with (
        responder(redis, 1, succeed, seen),
        client.post(
            "/api/exchanges/coinbase/commands",
            json={"type": "add-symbol", "payload": {"symbol": "DOGE-USD"}, "timeout_s": 10},
            headers=World.bearer(world.owner_token),
        ) as response,
    ):
        body = await response.json()
    assert response.status == 200, body
    assert body["status"] == "success" and body["message"] == "add-symbol done"
    assert len(seen) == 1 and seen[0].type == "add-symbol"
    assert seen[0].user_id == world.owner_id
    assert seen[0].payload.symbol == "DOGE-USD"  # type: ignore[union-attr]
    assert body["correlation_id"] == str(seen[0].correlation_id)


async def test_worker_error_is_409_with_the_response(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    def refuse(command: Command) -> list[CommandResponse]:
        return [
            CommandResponse(
                correlation_id=command.correlation_id,
                status=ResponseStatus.ERROR,
                message="not running",
            )
        ]

    async with (
        responder(redis, 1, refuse, []),
        client.post(
            "/api/exchanges/coinbase/commands",
            json={"type": "resume", "timeout_s": 10},
            headers=World.bearer(world.admin_token),
        ) as response,
    ):
        body = await response.json()
    assert response.status == 409
    assert body["error"]["code"] == "command_failed"
    assert body["error"]["message"] == "not running"
    assert body["error"]["details"]["status"] == "error"


async def test_long_command_is_202_then_fetched_by_correlation_id(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    headers = World.bearer(world.admin_token)
    async with client.post(
        "/api/exchanges/coinbase/commands", json={"type": "start"}, headers=headers
    ) as response:
        accepted = await response.json()
    assert response.status == 202
    assert response.headers["Location"] == accepted["result_url"]
    async with client.get(accepted["result_url"], headers=headers) as response:
        assert response.status == 404  # queued, nobody has answered yet
        assert (await response.json())["error"]["code"] == "no_response"
    seen: list[Command] = []
    async with responder(redis, 1, succeed, seen) as answered:
        await asyncio.wait_for(answered.wait(), 10)
        async with client.get(accepted["result_url"], headers=headers) as response:
            result = await response.json()
    assert response.status == 200 and result["status"] == "success"
    assert result["correlation_id"] == accepted["correlation_id"]
    assert [c.type for c in seen] == ["start"]


async def test_user_without_account_cannot_command(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    async with client.post(
        "/api/exchanges/coinbase/commands",
        json={"type": "remove-symbol", "payload": {"symbol": "DOGE-USD"}},
        headers=World.bearer(world.other_token),
    ) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "no_exchange_account"
    assert await redis.exists(keys.command_stream_key(1)) == 0  # nothing was sent


@pytest.mark.parametrize("command_type", sorted(ADMIN_COMMANDS))
async def test_self_made_account_cannot_send_lifecycle_or_cache_commands(
    client: TestClient[Any, Any], world: World, redis: Redis, command_type: CommandType
) -> None:
    headers = World.bearer(world.other_token)
    async with client.post(
        "/api/accounts", json={"exchange": "coinbase"}, headers=headers
    ) as created:
        assert created.status == 201  # anyone may add an account for themselves
    async with client.post(
        "/api/exchanges/coinbase/commands", json={"type": command_type.value}, headers=headers
    ) as response:
        body = await response.json()
    assert response.status == 403
    assert body["error"]["code"] == "admin_command"
    sent = [parse_command(f["command"]) for _, f in await redis.xrange(keys.command_stream_key(1))]
    # the account change itself notifies the worker (reload-settings on the user's behalf)
    assert [c for c in sent if c.type == command_type.value and c.user_id != world.other_id] == []
    assert all(c.type == "reload-settings" for c in sent)


@pytest.mark.parametrize("timeout_s", [1e-9, 1e-3, 0.099])
async def test_tiny_timeouts_are_refused_at_once(
    client: TestClient[Any, Any], world: World, timeout_s: float
) -> None:
    async with client.post(
        "/api/exchanges/coinbase/commands",
        json={"type": "add-symbol", "payload": {"symbol": "DOGE-USD"}, "timeout_s": timeout_s},
        headers=World.bearer(world.owner_token),
    ) as response:
        body = await response.json()
    assert response.status == 422
    assert body["error"]["details"][0]["loc"] == ["timeout_s"]


async def test_many_short_waits_answer_promptly_and_leave_no_subscription(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    before = await subscribed(redis)  # the api's fan-out and the confluence watcher
    started = time.monotonic()
    payload = {"type": "add-symbol", "payload": {"symbol": "DOGE-USD"}, "timeout_s": 0.1}
    sends = [
        client.post(
            "/api/exchanges/coinbase/commands",
            json=payload,
            headers=World.bearer(world.owner_token),
        )
        for _ in range(40)
    ]
    statuses = []
    for response in await asyncio.gather(*sends):
        statuses.append(response.status)
        response.release()
    assert statuses == [504] * 40
    assert time.monotonic() - started < 20
    assert await subscribed(redis) == before  # no wait left a subscription behind


async def subscribed(redis: Redis) -> int:
    """Connections holding a channel or pattern subscription (CLIENT LIST sub=/psub=)."""
    clients = await redis.client_list()
    return sum(1 for c in clients if int(c["sub"]) + int(c["psub"]) > 0)
