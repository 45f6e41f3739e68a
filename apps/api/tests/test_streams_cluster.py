"""The api's alert fan-out on the 6-node test cluster: an SSE subscriber receives the alerts a
worker publishes through its cluster client, and keeps receiving them after the master its
subscription connection was on is killed (the fan-out subscribes again on a live node).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from livermore_api import ApiConfig, create_app
from livermore_cache.pubsub import Publisher
from livermore_schema.alerts import AlertEvent
from livermore_schema.settings import CacheSettings, RedisSettings

from .conftest import World
from .helpers import alert
from .test_streams import _sse_events


@pytest.fixture
async def cluster_client(
    api_config: ApiConfig, redis_cluster: Any, redis_cluster_settings: RedisSettings
) -> AsyncIterator[TestClient[Any, Any]]:
    """The api on the test cluster."""
    config = dataclasses.replace(api_config, redis=redis_cluster_settings)
    async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as client:
        yield client


async def _subscribed_ports(redis_cluster: Any, dead: int | None = None) -> set[int]:
    """The ports of the nodes holding the api's pattern subscription (CLIENT LIST: psub > 0)."""
    await redis_cluster.nodes_manager.initialize()  # the nodes the cluster has now
    found = set()
    for node in redis_cluster.get_nodes():
        if node.port == dead:
            continue
        clients = await redis_cluster.client_list(target_nodes=node)
        if any(int(c.get("psub", 0)) > 0 for c in clients):
            found.add(int(node.port))
    return found


async def test_sse_alerts_flow_through_the_cluster_and_survive_a_master_kill(
    cluster_client: TestClient[Any, Any],
    world: World,
    redis_cluster: Any,
    redis_cluster_nodes: Any,
) -> None:
    publisher = Publisher(redis_cluster, CacheSettings())
    async with cluster_client.get(
        "/api/alerts/stream",
        params={"exchanges": "coinbase"},
        headers=World.bearer(world.owner_token),
    ) as response:
        assert response.status == 200
        ready = await asyncio.wait_for(_sse_events(response, 1), 10)
        assert ready[0][0] == "ready"
        first = alert(1, "BTC-USD", value=-201.0)
        await publisher.publish_alert(first)
        got = await asyncio.wait_for(_sse_events(response, 1), 10)
        assert AlertEvent.model_validate_json(got[0][1]) == first

        holders = await _subscribed_ports(redis_cluster)
        assert len(holders) == 1, holders
        port = holders.pop()
        master = redis_cluster.get_node(host="127.0.0.1", port=port)
        assert master is not None and master.server_type == "primary"
        redis_cluster_nodes.kill(port)
        killed = time.monotonic()
        try:
            # Pub/sub keeps nothing while the subscription is re-made: publish a fresh alert
            # every half second until one arrives (each is distinct, so any one proves it).
            received: list[AlertEvent] = []
            value = -300.0

            async def keep_publishing() -> None:
                nonlocal value
                while True:
                    value -= 1
                    await publisher.publish_alert(alert(1, "BTC-USD", value=value))
                    await asyncio.sleep(0.5)  # the publishing rate, not a synchronisation

            publishing = asyncio.get_running_loop().create_task(keep_publishing())
            try:
                events = await asyncio.wait_for(_sse_events(response, 1), 60)
            finally:
                publishing.cancel()
                await asyncio.gather(publishing, return_exceptions=True)
            received = [AlertEvent.model_validate_json(data) for name, data in events]
            back_s = time.monotonic() - killed
            assert events[0][0] == "alert" and received[0].trigger_value < -300.0
            assert len(await _subscribed_ports(redis_cluster, dead=port)) == 1
            print(f"api alert stream back {back_s:.1f} s after its master was killed")
        finally:
            redis_cluster_nodes.restart(port)
    assert json.loads(ready[0][1])["exchanges"] == [1]
