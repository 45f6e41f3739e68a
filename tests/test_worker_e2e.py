"""End to end: a worker process against the simulator, real Redis and real PostgreSQL.

Idle start opens no exchange connection; `start` runs every phase of the start sequence and
connects; `stop` returns to idle and closes the connection; SIGTERM leaves status `stopped` and
exit code 0; bad arguments and unreachable stores exit non-zero with one line.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_cache.commands import CommandBus
from livermore_cache.status import StatusStore
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.control import StartCommand, StopCommand
from livermore_schema.enums import (
    ConnectionState,
    ResponseStatus,
    StartupPhase,
    Timeframe,
    WorkerRole,
)
from livermore_schema.settings import CacheSettings
from livermore_schema.status import LifecycleEvent

COINBASE = 1
ALL_PHASES = {
    StartupPhase.RESOLVE,
    StartupPhase.SYMBOLS,
    StartupPhase.BACKFILL,
    StartupPhase.WARMUP,
    StartupPhase.CONNECT,
    StartupPhase.BOUNDARY,
    StartupPhase.ALERTS,
    StartupPhase.COMPLETE,
}


def _is(exchange_id: int, state: ConnectionState) -> Callable[[LifecycleEvent], bool]:
    return lambda e: e.exchange_id == exchange_id and e.state is state and e.worker_id is not None


async def test_idle_start_then_start_stop_and_sigterm(
    sim: RunningSim,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    poll_until: Any,
) -> None:
    worker = spawn_worker("coinbase", sim=sim)
    await lifecycle.wait_for(_is(COINBASE, ConnectionState.IDLE), 30, "idle")
    status = await StatusStore(redis).read(COINBASE)
    assert status is not None and status.connection_state is ConnectionState.IDLE
    assert status.role is WorkerRole.ACTIVE
    assert sim.faults.connections(Venue.COINBASE) == 0, "an idle worker opened a connection"
    beat = status.last_heartbeat
    later = await poll_until(lambda: _newer_status(redis, beat), 10, "a second heartbeat")
    assert later.connection_state is ConnectionState.IDLE

    bus = CommandBus(redis)
    started = await bus.await_response(COINBASE, await bus.send(COINBASE, StartCommand()), 60)
    assert started.status is ResponseStatus.SUCCESS, started
    # Tier 1 is the two seeded products; users made by other tests may add Tier 2 symbols.
    assert started.data is not None and started.data["tier1_count"] == 2
    symbol_count = started.data["symbol_count"]
    assert symbol_count == 2 + started.data["tier2_count"]
    phases = {
        e.progress.phase for _, e in lifecycle.items if e.exchange_id == COINBASE and e.progress
    }
    assert phases >= ALL_PHASES, f"missing phases: {ALL_PHASES - phases}"
    connected = await StatusStore(redis).read(COINBASE)
    assert connected is not None and connected.connection_state is ConnectionState.CONNECTED
    assert connected.symbol_count == symbol_count
    assert sim.faults.connections(Venue.COINBASE) == 1
    candles = CandleCache(redis, CacheSettings())
    assert await candles.count(COINBASE, "BTC-USD", Timeframe.H1) >= 60  # backfilled from REST

    again = await bus.await_response(COINBASE, await bus.send(COINBASE, StartCommand()), 30)
    assert again.data is not None and again.data["status"] == "already_started"

    stopped = await bus.await_response(COINBASE, await bus.send(COINBASE, StopCommand()), 30)
    assert stopped.data is not None and stopped.data["status"] == "stopped"
    await sim.faults.wait_connections(Venue.COINBASE, 0, within_s=10)
    idle = await StatusStore(redis).read(COINBASE)
    assert idle is not None and idle.connection_state is ConnectionState.IDLE

    worker.terminate(signal.SIGTERM)
    assert await worker.wait_exit(10) == 0, worker.tail()
    final = await StatusStore(redis).read(COINBASE)
    assert final is not None and final.connection_state is ConnectionState.STOPPED
    await lifecycle.wait_for(_is(COINBASE, ConnectionState.STOPPED), 5, "stopped event")


async def _newer_status(redis: Redis, than: Any) -> Any:
    status = await StatusStore(redis).read(COINBASE)
    return status if status is not None and status.last_heartbeat > than else None
