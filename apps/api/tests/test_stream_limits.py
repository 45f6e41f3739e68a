"""Streams share one subscription: caps answer 429, others stay served, revocation ends them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from sqlalchemy import update

from livermore_api import ApiConfig, create_app
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.settings import DatabaseSettings
from livermore_schema.tables import User

from .conftest import World
from .test_commands import subscribed

STREAMS = 200


@pytest.fixture
async def capped(api_config: ApiConfig, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    api = api_config.api.model_copy(
        update=dict(
            stream_max_per_user=STREAMS,
            stream_max_total=STREAMS + 20,
            stream_recheck_s=0.2,
        )
    )
    config = dataclasses.replace(api_config, api=api, stream_ping_s=15.0)
    async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as test_client:
        yield test_client


async def _ready(response: aiohttp.ClientResponse) -> None:
    while (await response.content.readline()) != b"event: ready\n":
        pass


async def _closed_reason(response: aiohttp.ClientResponse) -> str:
    while (await response.content.readline()) != b"event: closed\n":
        pass
    data = (await response.content.readline()).decode().removeprefix("data: ")
    reason: str = json.loads(data)["reason"]
    return reason


async def test_one_user_with_200_streams_cannot_starve_the_others(
    capped: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    url = capped.make_url("/api/alerts/stream")
    headers = World.bearer(world.owner_token)
    before = await subscribed(redis)  # the api's fan-out and the confluence watcher
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        opened: list[aiohttp.ClientResponse] = []
        try:
            for batch in range(0, STREAMS, 25):
                responses = await asyncio.gather(
                    *[http.get(url, headers=headers) for _ in range(batch, batch + 25)]
                )
                opened.extend(responses)
                await asyncio.wait_for(asyncio.gather(*[_ready(r) for r in responses]), 30)
            assert [r.status for r in opened] == [200] * STREAMS
            async with http.get(url, headers=headers) as refused:
                body = await refused.json()
            assert refused.status == 429
            assert refused.headers["Retry-After"] == "5"
            assert body["error"]["code"] == "too_many_streams"
            others = World.bearer(world.other_token)
            for path in ("/api/exchanges", "/api/me", "/api/alerts", "/api/watchlist"):
                async with capped.get(path, headers=others) as response:
                    assert response.status == 200, path
            async with capped.get("/health") as health:
                assert health.status == 200
            async with http.get(url, headers=others) as other_stream:
                assert other_stream.status == 200  # the cap is per user
            assert await subscribed(redis) == before  # 201 streams, no new subscription
        finally:
            for response in opened:
                response.close()


async def test_a_closed_stream_frees_its_slot_promptly(
    capped: TestClient[Any, Any], world: World
) -> None:
    """Keep-alives are 15 s apart here: the slot must come back long before the next one."""
    headers = World.bearer(world.owner_token)
    url = capped.make_url("/api/alerts/stream")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        opened = list(
            await asyncio.gather(*[http.get(url, headers=headers) for _ in range(STREAMS)])
        )
        await asyncio.wait_for(asyncio.gather(*[_ready(r) for r in opened]), 60)
        async with http.get(url, headers=headers) as refused:
            assert refused.status == 429
        opened.pop().close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3.0
        status = 429
        while status == 429 and loop.time() < deadline:
            async with http.get(url, headers=headers) as retry:
                status = retry.status
            await asyncio.sleep(0.1)  # polling the api: the slot has no event of its own
        assert status == 200
        for response in opened:
            response.close()


async def _issue(capped: TestClient[Any, Any], world: World, user_id: int) -> tuple[int, str]:
    async with capped.post(
        f"/api/users/{user_id}/tokens",
        json={"name": "stream"},
        headers=World.bearer(world.admin_token),
    ) as response:
        issued = await response.json()
    assert response.status == 201
    return issued["token_id"], issued["token"]


async def test_revoking_a_token_ends_its_open_streams(
    capped: TestClient[Any, Any], world: World
) -> None:
    token_id, token = await _issue(capped, world, world.other_id)
    async with capped.get("/api/alerts/stream", headers=World.bearer(token)) as sse:
        await asyncio.wait_for(_ready(sse), 10)
        ws = await capped.ws_connect("/ws/alerts", params={"token": token})
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        async with capped.delete(
            f"/api/tokens/{token_id}", headers=World.bearer(world.admin_token)
        ) as revoked:
            assert revoked.status == 204
        assert await asyncio.wait_for(_closed_reason(sse), 5) == "revoked"
        closing = await ws.receive(timeout=5)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1008
        await ws.close()


async def test_deactivating_a_user_ends_their_streams(
    capped: TestClient[Any, Any], world: World, pg_settings: DatabaseSettings
) -> None:
    kept = await capped.get("/api/alerts/stream", headers=World.bearer(world.owner_token))
    async with capped.get("/api/alerts/stream", headers=World.bearer(world.other_token)) as sse:
        await asyncio.wait_for(_ready(sse), 10)
        await asyncio.wait_for(_ready(kept), 10)
        engine = create_async_engine(pg_settings)
        try:
            async with async_session_factory(engine)() as db:
                await db.exec(update(User).where(User.id == world.other_id).values(is_active=False))  # type: ignore[arg-type]
                await db.commit()
        finally:
            await engine.dispose()
        assert await asyncio.wait_for(_closed_reason(sse), 5) == "revoked"
    assert not kept.content.at_eof()  # the owner's stream goes on
    kept.close()


async def test_chart_streams_are_capped_so_they_never_take_the_pool(
    capped: TestClient[Any, Any], world: World
) -> None:
    url = "/api/exchanges/coinbase/symbols/BTC-USD/stream"
    headers = World.bearer(world.owner_token)
    opened = [await capped.get(url, params={"timeframe": "1m"}, headers=headers) for _ in range(4)]
    try:
        assert [r.status for r in opened] == [200] * 4
        async with capped.get(url, params={"timeframe": "1m"}, headers=headers) as refused:
            status, body = refused.status, await refused.json()
        assert status == 429 and body["error"]["details"] == {"scope": "owner", "limit": 4}
        assert refused.headers["Retry-After"] == "5"
        others = World.bearer(world.other_token)
        async with capped.get(url, params={"timeframe": "1m"}, headers=others) as other:
            assert other.status == 200
    finally:
        for response in opened:
            response.close()
