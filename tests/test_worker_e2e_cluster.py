"""End to end on a 6-node Redis Cluster: startup backfill, streaming, commands, a master failover.

The worker reaches the cluster through three seed nodes; the test kills the master that holds
the lease slot mid-stream and checks the worker is serving again afterwards and the cache equals
the simulator's ground truth, with no missing and no duplicate bar.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from livermore_cache import keys
from livermore_cache.candles import CandleCache
from livermore_cache.commands import CommandBus
from livermore_cache.status import StatusStore
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import running_sim
from livermore_schema.control import SwitchModeCommand
from livermore_schema.enums import (
    RUNTIME_TIMEFRAMES,
    ConnectionState,
    ResponseStatus,
    Timeframe,
    WorkerMode,
    WorkerRole,
)
from livermore_schema.settings import CacheSettings

BINANCE = 2
MINUTE_MS = 60_000
HISTORY = 60
"""LIVERMORE_BACKFILL_CANDLES of the test workers (tests/conftest.py)."""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_every_seed_dead_is_a_one_line_exit(spawn_cluster_worker: Callable[..., Any]) -> None:
    dead = ",".join(f"127.0.0.1:{_closed_port()}" for _ in range(2))
    worker = spawn_cluster_worker(
        "binance",
        LIVERMORE_REDIS_PORT=str(_closed_port()),
        LIVERMORE_REDIS_CLUSTER_NODES=dead,
    )
    code = await worker.wait_exit(30)
    output = worker.log_path.read_text()
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and "Redis unavailable" in lines[0], output
    assert "Traceback" not in output


async def _truth_matches(
    sim: Any, candles: CandleCache, symbol: str, since_ms: int, poll_until: Any
) -> int:
    """Wait until the cached closed 1m bars since `since_ms` equal the simulator's; return count."""
    end = (sim.clock.now_ms() // MINUTE_MS - 1) * MINUTE_MS
    truth = sim.truth(Venue.BINANCE, symbol, MINUTE_MS, since_ms, end)

    async def cached() -> Any:
        got = await candles.between(BINANCE, symbol, Timeframe.M1, since_ms, end)
        closed = [c for c in got if c.closed and c.open_time < end]
        return closed if len(closed) >= len(truth) else None

    found = await poll_until(cached, 20, f"{symbol} 1m bars since the failover")
    assert [c.open_time for c in found] == [b.open_time for b in truth], "missing or extra bars"
    for got, want in zip(found, truth, strict=True):
        assert (got.open, got.high, got.low, got.close) == (
            want.open,
            want.high,
            want.low,
            want.close,
        )
    return len(found)


async def test_worker_on_the_cluster_backfills_streams_answers_alerts_and_hands_over(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_cluster_worker: Callable[..., Any],
    redis_cluster: Any,
    cluster_lifecycle: Any,
    cluster_alerts: Any,
    poll_until: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    excursion = macdv_excursion("BTC", start_ms + 6 * MINUTE_MS, timeframe_ms=MINUTE_MS)
    async with running_sim(
        seed=3, speed=60.0, symbols=["BTC", "ETH"], scenarios=[excursion], start_ms=start_ms
    ) as sim:
        worker = spawn_cluster_worker("binance", "--autostart", sim=sim)
        await cluster_lifecycle.wait_for(
            lambda e: (
                e.exchange_id == BINANCE
                and e.state is ConnectionState.CONNECTED
                and e.progress is not None
                and e.progress.phase == "complete"
            ),
            90,
            "connected on the cluster",
        )
        connected_ms = sim.clock.now_ms()
        candles = CandleCache(redis_cluster, CacheSettings())
        for symbol in seeded_symbols[BINANCE]:
            for timeframe in RUNTIME_TIMEFRAMES:
                count = await candles.count(BINANCE, symbol, timeframe)
                assert count >= HISTORY, f"{symbol} {timeframe.value}: {count} < {HISTORY}"

        await poll_until(  # streamed bars (closed after the start) reach the cluster
            lambda: candles.between(
                BINANCE, "BTCUSDT", Timeframe.M1, connected_ms + MINUTE_MS, 2**50
            ),
            20,
            "a streamed 1m bar",
        )
        since = (connected_ms // MINUTE_MS - 5) * MINUTE_MS
        for symbol in seeded_symbols[BINANCE]:
            await _truth_matches(sim, candles, symbol, since, poll_until)
        bus = CommandBus(redis_cluster)
        switched = await bus.await_response(
            BINANCE,
            await bus.send(
                BINANCE, SwitchModeCommand.model_validate({"payload": {"mode": "scalper-macdv"}})
            ),
            30,
        )
        assert switched.status is ResponseStatus.SUCCESS, switched
        statuses = StatusStore(redis_cluster)
        before = await statuses.read(BINANCE)
        assert before is not None and before.mode is WorkerMode.SCALPER_MACDV

        standby = spawn_cluster_worker("binance", sim=sim)
        await cluster_lifecycle.wait_for(
            lambda e: e.exchange_id == BINANCE and (e.reason or "").startswith("standby"),
            30,
            "standby announced",
        )
        worker.terminate(signal.SIGKILL)
        killed_at = time.monotonic()

        async def taken_over() -> Any:
            status = await statuses.read(BINANCE)
            ok = (
                status is not None
                and status.worker_id != before.worker_id
                and status.connection_state is ConnectionState.CONNECTED
            )
            return status if ok else None

        after = await poll_until(taken_over, 15, "the standby serving on the cluster")
        took_s = time.monotonic() - killed_at
        assert took_s < 10, f"takeover took {took_s:.1f}s"
        assert after.mode is WorkerMode.SCALPER_MACDV
        await cluster_alerts.wait_for(lambda a: a.symbol == "BTCUSDT", 40, "the scripted alert")
        seen = [
            (a.symbol, a.timeframe, a.trigger_label, a.triggered_at)
            for _, a in cluster_alerts.items
        ]
        assert len(seen) == len(set(seen)), f"an alert fired twice: {seen}"
        print(f"cluster takeover after kill -9: {took_s:.1f} s")
        standby.terminate()
        assert await standby.wait_exit(20) == 0, standby.tail()


async def test_killing_the_master_of_the_lease_slot_mid_stream_loses_no_bar(
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_cluster_worker: Callable[..., Any],
    redis_cluster: Any,
    redis_cluster_nodes: Any,
    poll_until: Any,
) -> None:
    start_ms = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
    statuses = StatusStore(redis_cluster)
    async with running_sim(seed=5, speed=60.0, symbols=["BTC", "ETH"], start_ms=start_ms) as sim:
        worker = spawn_cluster_worker("binance", "--autostart", sim=sim)

        async def serving(since: float) -> Any:
            status = await statuses.read(BINANCE)
            ok = (
                status is not None
                and status.connection_state is ConnectionState.CONNECTED
                and status.role is WorkerRole.ACTIVE
                and status.last_heartbeat.timestamp() > since
            )
            return status if ok else None

        first = await poll_until(lambda: serving(0), 90, "connected on the cluster")
        master = redis_cluster.get_node_from_key(keys.lease_key(BINANCE))
        redis_cluster_nodes.kill(master.port)
        killed_at, killed_wall = time.monotonic(), time.time()
        killed_sim_ms = sim.clock.now_ms()
        try:
            after = await poll_until(lambda: serving(killed_wall + 1), 60, "serving again")
            back_s = time.monotonic() - killed_at
            assert worker.proc.poll() is None, worker.tail()
            assert after.worker_id == first.worker_id
            since = (killed_sim_ms // MINUTE_MS - 10) * MINUTE_MS
            for symbol in seeded_symbols[BINANCE]:
                await _truth_matches(sim, candles_of(redis_cluster), symbol, since, poll_until)
            print(f"failover of the lease master survived; serving again after {back_s:.1f} s")
        finally:
            redis_cluster_nodes.restart(master.port)
        worker.terminate()
        assert await worker.wait_exit(20) == 0, worker.tail()


def candles_of(redis: Any) -> CandleCache:
    """A candle cache reader on `redis`."""
    return CandleCache(redis, CacheSettings())
