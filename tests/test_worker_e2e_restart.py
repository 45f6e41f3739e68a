"""End to end: what a plain restart does, and commands that are only PUBLISHed.

SIGTERM is a clean stop: the next plain `livermore-worker --exchange binance` stays idle and opens
no exchange connection. A raw PUBLISH of a `start` command on `livermore:commands:2` (no stream
entry, as any program would send it) is answered on `livermore:responses:2`. kill -9 is a crash:
the next plain start takes the lapsed lease over and resumes streaming on its own.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from livermore_cache import channels
from livermore_cache.pubsub import Subscription
from livermore_cache.status import StatusStore
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.control import CommandResponse, StartCommand
from livermore_schema.enums import ConnectionState, ResponseStatus, StartupPhase
from livermore_schema.status import LifecycleEvent

BINANCE = 2


def _connected(worker_id: str | None = None) -> Callable[[LifecycleEvent], bool]:
    return lambda e: (
        e.exchange_id == BINANCE
        and e.state is ConnectionState.CONNECTED
        and e.progress is not None
        and e.progress.phase is StartupPhase.COMPLETE
        and (worker_id is None or e.worker_id == worker_id)
    )


def _idle_waiting(e: LifecycleEvent) -> bool:
    return (
        e.exchange_id == BINANCE
        and e.state is ConnectionState.IDLE
        and "waiting" in (e.reason or "")
    )


async def test_sigterm_then_plain_restart_is_idle_and_kill_9_then_plain_restart_resumes(
    sim: RunningSim,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., Any],
    redis: Redis,
    lifecycle: Any,
    poll_until: Any,
) -> None:
    first = spawn_worker("binance", "--autostart", sim=sim)
    autostarted = await lifecycle.wait_for(_connected(), 60, "autostarted")
    first.terminate(signal.SIGTERM)
    assert await first.wait_exit(15) == 0, first.tail()
    await sim.faults.wait_connections(Venue.BINANCE, 0, within_s=10)

    second = spawn_worker("binance", sim=sim)
    idle = await lifecycle.wait_for(_idle_waiting, 30, "the plain restart decides to stay idle")
    status = await StatusStore(redis).read(BINANCE)
    assert status is not None and status.worker_id == idle.worker_id
    assert status.connection_state is ConnectionState.IDLE
    assert sim.faults.connections(Venue.BINANCE) == 0, "a cleanly stopped worker resumed"
    assert not any(_connected(idle.worker_id)(e) for _, e in lifecycle.items)

    response = await _raw_publish_start(redis, poll_until)
    assert response.status is ResponseStatus.SUCCESS, response
    assert response.data is not None and response.data["status"] == "started"
    await lifecycle.wait_for(_connected(idle.worker_id), 10, "started by the published command")
    assert sim.faults.connections(Venue.BINANCE) == 1

    second.terminate(signal.SIGKILL)
    assert await second.wait_exit(10) == -signal.SIGKILL
    third = spawn_worker("binance", sim=sim)
    resumed = await lifecycle.wait_for(
        lambda e: _connected()(e) and e.worker_id not in (autostarted.worker_id, idle.worker_id),
        60,
        "the plain restart after a crash resumes",
    )
    status = await StatusStore(redis).read(BINANCE)
    assert status is not None and status.worker_id == resumed.worker_id
    assert status.connection_state is ConnectionState.CONNECTED and status.symbol_count == 2
    await sim.faults.wait_connections(Venue.BINANCE, 1, within_s=10)
    third.terminate(signal.SIGTERM)
    assert await third.wait_exit(15) == 0, third.tail()


async def _raw_publish_start(redis: Redis, poll_until: Any) -> CommandResponse:
    """PUBLISH a start command (no stream entry) and return its final response from the channel."""
    command_channel = channels.commands_channel(BINANCE)

    async def bridge_listening() -> bool:
        [(_, receivers)] = await redis.pubsub_numsub(command_channel)
        return int(receivers) > 0

    await poll_until(bridge_listening, 10, "the worker listening on the commands channel")
    command = StartCommand()
    finals: list[CommandResponse] = []
    acks: list[CommandResponse] = []
    async with Subscription(
        redis, model=CommandResponse, channels=[channels.responses_channel(BINANCE)]
    ) as responses:
        assert await redis.publish(command_channel, command.model_dump_json()) >= 1
        async with asyncio.timeout(60):
            async for _, response in responses:
                if response.correlation_id != command.correlation_id:
                    continue
                (acks if response.status is ResponseStatus.ACK else finals).append(response)
                if finals:
                    break
    assert len(acks) == 1, acks
    return finals[0]
