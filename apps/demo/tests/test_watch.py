from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from redis.asyncio import Redis

from livermore_cache.pubsub import Publisher, alert_stream, lifecycle_stream
from livermore_cache.status import StatusStore
from livermore_demo.console import Console
from livermore_demo.runner import demo_exchange_ids
from livermore_demo.watch import WorkerWatch, follow_lifecycle, poll_status, print_alerts
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertDirection, Bias, ConnectionState, StartupPhase, Timeframe
from livermore_schema.settings import CacheSettings
from livermore_schema.status import ConnectionStatus, LifecycleEvent, StartupProgress

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class LineQueue(Console):
    def __init__(self) -> None:
        super().__init__()
        self.lines: asyncio.Queue[str] = asyncio.Queue()

    def say(self, line: str) -> None:
        self.lines.put_nowait(line)

    def drain(self) -> list[str]:
        out = []
        while not self.lines.empty():
            out.append(self.lines.get_nowait())
        return out


def _progress(phase: StartupPhase, percent: float) -> StartupProgress:
    return StartupProgress(phase=phase, percent=percent)


def test_demo_exchanges_are_coinbase_1_and_binance_2() -> None:
    assert demo_exchange_ids() == {1: "coinbase", 2: "binance"}


def test_watch_prints_only_news_and_knows_when_every_worker_is_connected() -> None:
    console = LineQueue()
    watch = WorkerWatch({1: "coinbase", 2: "binance"}, console)
    watch.observe(1, ConnectionState.STARTING, _progress(StartupPhase.BACKFILL, 10))
    watch.observe(1, ConnectionState.STARTING, _progress(StartupPhase.BACKFILL, 15))  # same step
    watch.observe(1, ConnectionState.STARTING, None)  # a lifecycle event without progress
    watch.observe(1, ConnectionState.STARTING, _progress(StartupPhase.BACKFILL, 45))
    watch.observe(1, ConnectionState.CONNECTED, None)
    watch.observe(1, ConnectionState.CONNECTING, _progress(StartupPhase.ALERTS, 92))  # late news
    watch.observe(1, ConnectionState.CONNECTED, _progress(StartupPhase.COMPLETE, 100))
    watch.observe(6, ConnectionState.CONNECTED, None)  # not a demo exchange
    assert not watch.all_connected.is_set()
    assert "binance no status" in watch.describe()
    watch.observe(2, ConnectionState.CONNECTED, None)
    assert watch.all_connected.is_set()
    assert console.drain() == [
        "[coinbase] starting: backfill 10%",
        "[coinbase] starting: backfill 45%",
        "[coinbase] connected",
        "[binance] connected",
    ]
    assert watch.describe() == "coinbase connected, binance connected"
    watch.observe(2, ConnectionState.RECONNECTING, None, "closed by server: code 1001")
    watch.observe(2, ConnectionState.CONNECTED)
    assert console.drain() == [
        "[binance] reconnecting - closed by server: code 1001",
        "[binance] connected",
    ]


def _alert(exchange_id: int, name: str, symbol: str) -> AlertEvent:
    return AlertEvent(
        exchange_id=exchange_id,
        symbol=symbol,
        timeframe=Timeframe.M1,
        trigger_label="level_-150",
        trigger_value=-151.0,
        signal_delta=-2.0,
        price=3400.0,
        triggered_at=NOW,
        timeframes=[],
        bias=Bias.BEARISH,
        source_exchange_id=exchange_id,
        source_exchange_name=name,
        direction=AlertDirection.DOWN,
    )


async def test_alerts_from_every_exchange_are_printed_as_they_arrive(redis: Redis) -> None:
    console = LineQueue()
    publisher = Publisher(redis, CacheSettings())
    async with alert_stream(redis) as alerts:
        printer = asyncio.create_task(print_alerts(alerts, console))
        try:
            await publisher.publish_alert(_alert(1, "coinbase", "ETH-USD"))
            await publisher.publish_alert(_alert(2, "binance", "ETHUSDT"))
            first = await asyncio.wait_for(console.lines.get(), 5)
            second = await asyncio.wait_for(console.lines.get(), 5)
        finally:
            printer.cancel()
    assert first.split()[1:3] == ["coinbase", "ETH-USD"]
    assert second.split()[1:3] == ["binance", "ETHUSDT"]


async def test_lifecycle_events_drive_the_watch(redis: Redis) -> None:
    console = LineQueue()
    watch = WorkerWatch({1: "coinbase"}, console)
    publisher = Publisher(redis, CacheSettings())
    async with lifecycle_stream(redis, [1]) as events:
        follower = asyncio.create_task(follow_lifecycle(events, watch))
        try:
            for state in (ConnectionState.STARTING, ConnectionState.CONNECTED):
                event = LifecycleEvent(
                    exchange_id=1, exchange_name="coinbase", state=state, timestamp=NOW
                )
                await publisher.publish_lifecycle(event)
            await asyncio.wait_for(watch.all_connected.wait(), 5)
        finally:
            follower.cancel()
    assert console.drain() == ["[coinbase] starting", "[coinbase] connected"]


async def test_status_keys_drive_the_watch(redis: Redis) -> None:
    console = LineQueue()
    watch = WorkerWatch({2: "binance"}, console)
    status = ConnectionStatus(
        exchange_id=2,
        exchange_name="binance",
        connection_state=ConnectionState.CONNECTED,
        last_heartbeat=datetime.now(UTC),
        worker_id="host:1",
    )
    await StatusStore(redis).write(status)
    poller = asyncio.create_task(poll_status(StatusStore(redis), watch))
    try:
        await asyncio.wait_for(watch.all_connected.wait(), 5)
    finally:
        poller.cancel()
    assert console.drain() == ["[binance] connected"]


async def test_a_stale_status_does_not_undo_a_connected_lifecycle_event(redis: Redis) -> None:
    console = LineQueue()
    watch = WorkerWatch({2: "binance"}, console)
    watch.observe(2, ConnectionState.CONNECTED)
    stale = ConnectionStatus(
        exchange_id=2,
        exchange_name="binance",
        connection_state=ConnectionState.CONNECTING,
        last_heartbeat=datetime.now(UTC),
        worker_id="host:1",
        progress=_progress(StartupPhase.ALERTS, 92),
    )
    await StatusStore(redis).write(stale)
    await poll_status_once(redis, watch)
    assert watch.state(2) is ConnectionState.CONNECTED
    assert console.drain() == ["[binance] connected"]


async def poll_status_once(redis: Redis, watch: WorkerWatch) -> None:
    """Run the poller until it has read the keys once (its first read happens before it sleeps)."""
    reads = 0

    class CountingStore(StatusStore):
        async def read_all(self, exchange_ids: list[int]) -> dict[int, ConnectionStatus | None]:
            nonlocal reads
            result = await super().read_all(exchange_ids)
            reads += 1
            done.set()
            return result

    done = asyncio.Event()
    poller = asyncio.create_task(poll_status(CountingStore(redis), watch))
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        poller.cancel()
    assert reads >= 1
