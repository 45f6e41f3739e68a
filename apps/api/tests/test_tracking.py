"""Watchlist / position / account changes reach the worker; symbols are validated; no-client 409."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.status import StatusStore
from livermore_schema.control import Command, parse_command
from livermore_schema.enums import ConnectionState
from livermore_schema.status import AccountSyncStatus, ConnectionStatus

from .conftest import World


async def _commands(redis: Redis, exchange_id: int) -> list[Command]:
    entries = await redis.xrange(keys.command_stream_key(exchange_id))
    return [parse_command(fields["command"]) for _, fields in entries]


async def test_symbol_changes_send_reload_settings_on_the_users_behalf(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    headers = World.bearer(world.owner_token)  # not an admin, no command rights needed
    before = len(await _commands(redis, 1))
    async with client.post(
        "/api/watchlist/coinbase", json={"symbol": "sol"}, headers=headers
    ) as response:
        body = await response.json()
    assert response.status == 200, body
    assert body["watchlist"]["coinbase"] == ["ETH-USD", "SOL-USD"]  # base asset -> product
    async with client.delete(f"/api/positions/{world.position_id}", headers=headers) as reply:
        assert reply.status == 204
    sent = (await _commands(redis, 1))[before:]
    assert [c.type for c in sent] == ["reload-settings", "reload-settings"]
    assert {c.user_id for c in sent} == {world.owner_id}
    async with client.put("/api/watchlist/mexc", json={"symbols": []}, headers=headers) as response:
        assert response.status == 200
    assert await _commands(redis, 6) == []  # no worker runs for mexc: nothing to tell


async def test_a_non_product_is_refused_with_the_reason(
    client: TestClient[Any, Any], world: World
) -> None:
    headers = World.bearer(world.owner_token)
    async with client.put(
        "/api/watchlist/coinbase", json={"symbols": ["BTC-USD", "NOPE-USD"]}, headers=headers
    ) as response:
        body = await response.json()
    assert response.status == 422
    assert body["error"]["code"] == "unknown_symbol"
    assert "NOPE-USD: not an active product of coinbase" in body["error"]["message"]
    assert body["error"]["details"]["symbols"] == ["NOPE-USD"]
    async with client.post(
        "/api/positions",
        json={"exchange": "binance", "symbol": "BTC-USD", "quantity": "1"},
        headers=headers,
    ) as response:
        assert response.status == 422  # a Coinbase spelling is not a Binance product
    async with client.get("/api/watchlist", headers=headers) as response:
        assert (await response.json())["watchlist"] == {"coinbase": ["ETH-USD"]}


async def test_exchanges_without_a_streaming_client_answer_409(
    client: TestClient[Any, Any], world: World
) -> None:
    async with client.post(
        "/api/exchanges/kraken/commands",
        json={"type": "start"},
        headers=World.bearer(world.admin_token),
    ) as response:
        body = await response.json()
    assert response.status == 409
    assert body["error"]["code"] == "no_streaming_client"
    assert "kraken has no streaming client" in body["error"]["message"]
    async with client.get(
        "/api/exchanges/mexc/commands/2b57b54f-05fa-1c58-a83e-395b8e9a0d48",
        headers=World.bearer(world.admin_token),
    ) as response:
        body = await response.json()
    assert response.status == 409 and body["error"]["code"] == "no_streaming_client"
    # The document lists that answer for both command routes (schemathesis found it missing).
    async with client.get("/api/openapi.json", headers=World.bearer(world.admin_token)) as response:
        paths = (await response.json())["paths"]
    assert "409" in paths["/api/exchanges/{exchange}/commands/{correlation_id}"]["get"]["responses"]


async def test_the_account_view_shows_the_workers_last_position_sync(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    now = datetime.now(UTC)
    failed = AccountSyncStatus(
        user_id=world.owner_id,
        outcome="failed",
        message="[coinbase] credentials refused (401): Unauthorized",
        synced_at=now,
    )
    status = ConnectionStatus(
        exchange_id=1,
        exchange_name="coinbase",
        connection_state=ConnectionState.CONNECTED,
        last_heartbeat=now,
        worker_id="test:1",
        position_sync=[failed],
    )
    await StatusStore(redis).write(status)
    headers = World.bearer(world.owner_token)
    async with client.get(f"/api/accounts/{world.account_id}", headers=headers) as reply:
        body = await reply.json()
    assert reply.status == 200
    assert body["position_sync"]["outcome"] == "failed"
    assert "401" in body["position_sync"]["message"]
    async with client.get("/api/accounts", headers=headers) as reply:
        [listed] = (await reply.json())["items"]
    assert listed["position_sync"]["user_id"] == world.owner_id
