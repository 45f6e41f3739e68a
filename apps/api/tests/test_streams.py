"""SSE and WebSocket streams deliver alerts published on two exchanges to one client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_cache.pubsub import Publisher
from livermore_schema.alerts import AlertEvent
from livermore_schema.settings import CacheSettings

from .conftest import World
from .helpers import alert


async def _sse_events(response: Any, count: int) -> list[tuple[str, str]]:
    """Read `count` SSE events (skipping keep-alive comments) as (event, data)."""
    events: list[tuple[str, str]] = []
    event, data = "", ""
    while len(events) < count:
        line = (await response.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data = line.removeprefix("data: ")
        elif line == "" and event:
            events.append((event, data))
            event, data = "", ""
    return events


async def test_sse_delivers_alerts_from_two_exchanges(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    sent = [alert(1, "BTC-USD"), alert(2, "ETHUSDT", value=251.0), alert(3, "SOLUSD")]
    async with client.get(
        "/api/alerts/stream",
        params={"exchanges": "coinbase,binance"},
        headers=World.bearer(world.other_token),
    ) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        ready = await asyncio.wait_for(_sse_events(response, 1), 10)
        assert ready[0][0] == "ready" and json.loads(ready[0][1])["exchanges"] == [1, 2]
        for event in sent:
            await publisher.publish_alert(event)
        got = await asyncio.wait_for(_sse_events(response, 2), 10)
    received = [AlertEvent.model_validate_json(data) for _, data in got]
    assert [name for name, _ in got] == ["alert", "alert"]
    assert received == sent[:2]  # binance_us (3) was not asked for
    assert {e.source_exchange_name for e in received} == {"coinbase", "binance"}


async def test_sse_sends_keepalives_while_idle(client: TestClient[Any, Any], world: World) -> None:
    async with client.get(
        "/api/alerts/stream", headers=World.bearer(world.owner_token)
    ) as response:
        await asyncio.wait_for(_sse_events(response, 1), 10)
        line = await asyncio.wait_for(response.content.readline(), 10)
    assert line == b": ping\n"


async def test_websocket_delivers_alerts_from_two_exchanges_with_query_token(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    sent = [alert(2, "BTCUSDT"), alert(1, "BTC-USD", value=-305.0)]
    ws = await client.ws_connect(
        "/ws/alerts", params={"exchanges": "binance,1", "token": world.owner_token}
    )
    try:
        ready = await ws.receive_json(timeout=10)
        assert ready == {"type": "ready", "exchanges": [2, 1]}
        for event in sent:
            await publisher.publish_alert(event)
        frames = [await ws.receive_json(timeout=10) for _ in sent]
    finally:
        await ws.close()
    assert [f["type"] for f in frames] == ["alert", "alert"]
    assert [AlertEvent.model_validate(f["alert"]) for f in frames] == sent


async def test_websocket_without_exchanges_follows_every_exchange(
    client: TestClient[Any, Any], world: World, redis: Redis
) -> None:
    publisher = Publisher(redis, CacheSettings())
    ws = await client.ws_connect("/ws/alerts", headers=World.bearer(world.other_token))
    try:
        assert (await ws.receive_json(timeout=10))["type"] == "ready"
        await publisher.publish_alert(alert(3, "ADAUSD"))
        await publisher.publish_alert(alert(1, "ADA-USD"))
        frames = [await ws.receive_json(timeout=10) for _ in range(2)]
    finally:
        await ws.close()
    assert [f["alert"]["source_exchange_name"] for f in frames] == ["binance_us", "coinbase"]
