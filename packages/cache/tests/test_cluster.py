"""The caches on a real 6-node Redis Cluster: scripts per key, pub/sub, seeds, a master failover."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.client import connect_redis, is_store_error
from livermore_cache.commands import CommandInbox, PublishedCommandBridge
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher, Subscription, alert_stream
from livermore_cache.status import StatusStore
from livermore_schema.control import StartCommand
from livermore_schema.enums import ConnectionState, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, RedisSettings
from livermore_schema.status import ConnectionStatus

from ._factories import candle, indicator
from .test_pubsub import alert

SYMBOLS = [f"S{n}-USD" for n in range(24)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _masters_of(client: RedisCluster, names: list[str]) -> set[str]:
    return {client.get_node_from_key(name).name for name in names}  # type: ignore[union-attr]


async def test_write_many_runs_one_script_per_key_on_every_master(redis_cluster: Any) -> None:
    cache = CandleCache(redis_cluster, CacheSettings(candle_retention=50))
    bars = [candle(i, symbol=s, close=100.0 + i) for s in SYMBOLS for i in range(60)]
    written = await cache.write_many(bars)
    assert written == len(bars)
    keys = [cache.write_key(bar) for bar in bars[::60]]
    assert len(_masters_of(redis_cluster, keys)) == 3, "the series must span every master"
    for symbol in SYMBOLS:
        stored = await cache.recent(1, symbol, Timeframe.M5, 100)
        assert [c.open_time for c in stored] == [c.open_time for c in bars[10:60]]
    # older than the retained window: refused by the script, on whichever master holds the key
    assert await cache.write_many(bars[:10]) == 0


async def test_a_write_batch_and_the_status_heartbeat_work_on_the_cluster(
    redis_cluster: Any,
) -> None:
    settings = CacheSettings()
    cache, indicators = (
        CandleCache(redis_cluster, settings),
        IndicatorCache(redis_cluster, settings),
    )
    batch = cache.batch()
    bar, value = candle(3, symbol="ETH-USD"), indicator(Timeframe.M5)
    cache.add_write(batch, bar)
    Publisher(redis_cluster, settings).add_candle_close(batch, bar)
    indicators.add_write(batch, value)
    replies = await batch.flush()
    assert len(replies) == 3 and int(replies[0]) == 1
    assert await cache.latest(1, "ETH-USD", Timeframe.M5) == bar
    statuses = StatusStore(redis_cluster)
    status = ConnectionStatus(
        exchange_id=2,
        exchange_name="binance",
        connection_state=ConnectionState.CONNECTED,
        last_heartbeat=datetime(2026, 1, 1, tzinfo=UTC),
        heartbeat_interval_s=1.0,
        worker_id="host:1:abc",
    )
    await statuses.write(status)
    beat = await statuses.heartbeat(2, status.last_heartbeat.replace(year=2030))
    assert beat is not None and beat.last_heartbeat.year == 2030


async def test_a_batch_is_grouped_per_node_and_publishes_only_what_is_written(
    redis_cluster: Any,
) -> None:
    settings = CacheSettings()
    cache, publisher = CandleCache(redis_cluster, settings), Publisher(redis_cluster, settings)
    bars = [candle(5, symbol=symbol) for symbol in SYMBOLS]
    assert len(_masters_of(redis_cluster, [cache.write_key(b) for b in bars])) == 3
    batch = cache.batch()
    for bar in bars[:12]:
        cache.add_write(batch, bar, announce=publisher.close_channels(bar))
    batch.add("SET", "probe:a", "1")
    batch.add("GET", "probe:a")  # the same key, queued later: runs later on its node
    batch.add("PUBLISH", "probe:half", "12 closes written")
    for bar in bars[12:]:
        cache.add_write(batch, bar, announce=publisher.close_channels(bar))
    pattern = channels.candle_close_channel(1, "*", Timeframe.M5)
    async with Subscription(redis_cluster, model=Candle, patterns=[pattern]) as closes:
        replies = await batch.flush()
        received = aiter(closes)
        got = [await asyncio.wait_for(anext(received), 10) for _ in bars]
    assert [int(r) for r in replies[:12]] == [1] * 12 and replies[12:15] == [True, "1", 0]
    assert [int(r) for r in replies[15:]] == [1] * 12
    assert sorted(c.symbol for _, c in got) == sorted(SYMBOLS)
    for bar in bars:  # every announced close is stored
        assert await cache.latest(1, bar.symbol, Timeframe.M5) == bar


async def test_subscription_on_a_fresh_cluster_client_receives_classic_publish(
    redis_cluster: Any, redis_cluster_settings: RedisSettings
) -> None:
    fresh = connect_redis(redis_cluster_settings)  # has not run a single command
    bar = candle(7, symbol="SOL-USD")
    channel = channels.candle_close_channel(1, bar.symbol, bar.timeframe)
    try:
        async with Subscription(fresh, model=Candle, channels=[channel]) as sub:
            # published through a different node's connection: classic pub/sub crosses the bus
            assert await Publisher(redis_cluster, CacheSettings()).publish_candle_close(bar) >= 1
            async with asyncio.timeout(10):
                got_channel, got = await anext(aiter(sub))
        assert (got_channel, got) == (channel, bar)
    finally:
        await fresh.aclose()


async def test_a_command_published_on_the_cluster_is_bridged_into_its_stream(
    redis_cluster: Any, redis_cluster_settings: RedisSettings
) -> None:
    fresh = connect_redis(redis_cluster_settings)  # the bridge's client has no slot map yet
    bridge = PublishedCommandBridge(fresh, 4)
    stop, ready = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(bridge.serve(stop, 0.05, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        raw = StartCommand().model_dump_json()
        assert await redis_cluster.publish(channels.commands_channel(4), raw) >= 1
        got = await CommandInbox(redis_cluster, 4, "host:1").next(timeout=10)
        assert got is not None and got[1] == raw
    finally:
        stop.set()
        await asyncio.wait_for(serving, 10)
        await fresh.aclose()


async def test_a_dead_first_seed_still_connects(
    redis_cluster_settings: RedisSettings, redis_cluster: Any
) -> None:
    live = ",".join(f"{h}:{p}" for h, p in redis_cluster_settings.seeds())
    settings = RedisSettings(host="127.0.0.1", port=free_port(), cluster=True, cluster_nodes=live)
    client = connect_redis(settings)
    try:
        assert await client.set("probe:seed", "1") is True
        assert await redis_cluster.get("probe:seed") == "1"
    finally:
        await client.aclose()


async def test_every_seed_dead_fails_with_a_store_error_once_the_budget_is_spent() -> None:
    dead = f"127.0.0.1:{free_port()}"
    settings = RedisSettings(port=free_port(), cluster=True, cluster_nodes=dead, retry_budget_s=1)
    client = connect_redis(settings)
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as failed:
            await client.ping()
    finally:
        await client.aclose()
    assert is_store_error(failed.value), repr(failed.value)
    assert 0.9 <= time.monotonic() - started < 10


async def test_writes_survive_the_failover_of_their_master(
    redis_cluster: Any, redis_cluster_nodes: Any
) -> None:
    cache = CandleCache(redis_cluster, CacheSettings())
    bar = candle(1, symbol="FAIL-USD")
    key = cache.write_key(bar)
    master = redis_cluster.get_node_from_key(key)
    assert await cache.write(bar)
    # replication is asynchronous: a write the replica has not received yet dies with its master
    assert await redis_cluster.wait(1, 5000, target_nodes=master) == 1
    redis_cluster_nodes.kill(master.port)
    killed = time.monotonic()
    try:
        following = [candle(i, symbol="FAIL-USD") for i in range(2, 6)]
        for bar in following:  # each waits out the failover inside the retry budget
            assert await cache.write(bar)
        survived = time.monotonic() - killed
        assert redis_cluster.get_node_from_key(key).port != master.port
        stored = await cache.recent(1, "FAIL-USD", Timeframe.M5, 10)
        assert [c.open_time for c in stored] == [candle(i).open_time for i in range(1, 6)]
        assert survived > 1.0, f"the master's failover cannot have been that fast: {survived:.1f}s"
    finally:
        redis_cluster_nodes.restart(master.port)


async def test_a_subscription_made_while_its_master_is_down_uses_another_node(
    redis_cluster: Any, redis_cluster_settings: RedisSettings, redis_cluster_nodes: Any
) -> None:
    channel = channels.alerts_channel(9)
    master = redis_cluster.get_node_from_key(channel)
    redis_cluster_nodes.kill(master.port)
    fresh = connect_redis(redis_cluster_settings)
    try:
        async with alert_stream(fresh, [9]) as alerts:
            # the slot is still the dead master's in the map the subscription was made from
            assert fresh.get_node_from_key(channel).port == master.port
            sent = alert(exchange_id=9)
            await Publisher(redis_cluster, CacheSettings()).publish_alert(sent)
            got = await asyncio.wait_for(anext(aiter(alerts)), 30)
        assert got == (channel, sent)
    finally:
        await fresh.aclose()
        redis_cluster_nodes.restart(master.port)
