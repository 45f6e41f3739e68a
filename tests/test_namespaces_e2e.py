"""Two deployments on one Redis, told apart only by LIVERMORE_REDIS_NAMESPACE (two api processes).

Each sees its own alerts and none of the other's, and every key either writes is under its
namespace (pub/sub ignores DB indexes, so the namespace is what keeps a demo off a trader's feed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import aiohttp

from livermore_cache import keys
from livermore_cache.client import connect_redis
from livermore_cache.pubsub import Publisher
from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import AlertDirection, Bias, Stage, Timeframe
from livermore_schema.settings import CacheSettings, DatabaseSettings, RedisSettings

from .conftest import ApiProcess, worker_env


def _alert(exchange_id: int, symbol: str) -> AlertEvent:
    return AlertEvent(
        exchange_id=exchange_id,
        symbol=symbol,
        timeframe=Timeframe.M15,
        trigger_label="level_-200",
        trigger_value=-212.5,
        signal_delta=3.5,
        price=101.25,
        triggered_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        timeframes=[TimeframeContext(timeframe=Timeframe.M15, macd_v=-212.5, stage=Stage.OVERSOLD)],
        bias=Bias.BEARISH,
        direction=AlertDirection.DOWN,
        source_exchange_id=exchange_id,
        source_exchange_name="coinbase",
    )


async def _token(redis_settings: RedisSettings, pg_settings: DatabaseSettings) -> str:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "livermore_api", "create-user", f"ns-{uuid.uuid4().hex[:8]}"),
        "--admin",
        env=worker_env(redis_settings, pg_settings, None),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()[-1].strip()


async def _next_alert(stream: aiohttp.ClientResponse) -> AlertEvent:
    event = ""
    while True:
        line = (await stream.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "alert":
            return AlertEvent.model_validate(json.loads(line.removeprefix("data: ")))


async def _publish(redis_settings: RedisSettings, namespace: str, event: AlertEvent) -> None:
    client = connect_redis(redis_settings.model_copy(update={"namespace": namespace}))
    try:
        await Publisher(client, CacheSettings()).publish_alert(event)
    finally:
        keys.set_namespace("")
        await client.aclose()


async def test_two_namespaces_on_one_redis_see_neither_the_others_alerts_nor_keys(
    redis_settings: RedisSettings,
    pg_settings: DatabaseSettings,
    spawn_api: Callable[..., ApiProcess],
) -> None:
    bare = connect_redis(redis_settings)
    try:  # the shared test Redis holds other tests' keys: only what this test adds counts
        before = {name async for name in bare.scan_iter(match="*")}
    finally:
        await bare.aclose()
    first = spawn_api(LIVERMORE_REDIS_NAMESPACE="deploy-a")
    second = spawn_api(LIVERMORE_REDIS_NAMESPACE="deploy-b")
    token, _, _ = await asyncio.gather(
        _token(redis_settings, pg_settings), first.wait_ready(60), second.wait_ready(60)
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http,
        http.get(f"{first.base_url}/api/alerts/stream", headers=headers) as a_stream,
        http.get(f"{second.base_url}/api/alerts/stream", headers=headers) as b_stream,
    ):
        for stream in (a_stream, b_stream):
            assert stream.status == 200
            assert await asyncio.wait_for(stream.content.readline(), 10) == b"event: ready\n"
        await _publish(redis_settings, "deploy-a", _alert(1, "AAA-USD"))
        await _publish(redis_settings, "deploy-b", _alert(1, "BBB-USD"))
        got_a = await asyncio.wait_for(_next_alert(a_stream), 10)
        got_b = await asyncio.wait_for(_next_alert(b_stream), 10)
        for api in (first, second):  # each api queues a command: a key under its namespace
            async with http.post(
                f"{api.base_url}/api/exchanges/coinbase/commands",
                json={"type": "start"},
                headers=headers,
            ) as queued:
                assert queued.status == 202
    assert got_a.symbol == "AAA-USD"
    assert got_b.symbol == "BBB-USD"  # deploy-a's alert, published first, never reached b
    bare = connect_redis(redis_settings)
    try:
        names = [name async for name in bare.scan_iter(match="*")]
    finally:
        await bare.aclose()
    stream = "livermore:commandstream:1"
    assert {f"deploy-a:{stream}", f"deploy-b:{stream}"} <= set(names)
    added = [n for n in names if n not in before]
    assert [n for n in added if not n.startswith(("deploy-a:", "deploy-b:"))] == []
