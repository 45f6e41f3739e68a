"""Every alert and lifecycle event the soak's Redis carries, across Redis restarts.

A pub/sub subscription dies with its connection; the listener subscribes again as soon as Redis
answers, and counts the reconnects. Alerts published while it was away are read back from
alert_history afterwards, so the union of both is what was published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livermore_cache import channels
from livermore_exchange_sim.clock import SimClock
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import ConnectionState
from livermore_schema.settings import RedisSettings
from livermore_schema.status import LifecycleEvent


@dataclass(frozen=True, slots=True)
class Seen:
    """A lifecycle event and when (simulated ms, monotonic s) it was received."""

    event: LifecycleEvent
    sim_ms: int
    mono: float


@dataclass
class Listener:
    """Background subscriber to `channel:alerts:*` and every lifecycle channel."""

    settings: RedisSettings
    clock: SimClock
    alerts: list[AlertEvent] = field(default_factory=list)
    lifecycle: list[Seen] = field(default_factory=list)
    reconnects: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.get_running_loop().create_task(self._run())
        async with asyncio.timeout(20):
            await self._ready.wait()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            client = Redis(host=self.settings.host, port=self.settings.port, socket_timeout=5)
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN, channels.lifecycle_pattern())
                self._ready.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        self._take(message)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                self.reconnects += 1
                await asyncio.sleep(0.2)  # Redis is down: try again shortly
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()

    def _take(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        body = json.loads(message["data"])
        if channel.endswith(":lifecycle"):
            event = LifecycleEvent.model_validate(body)
            self.lifecycle.append(Seen(event, self.clock.now_ms(), time.monotonic()))
        elif body.get("alert_type") == "macdv":
            self.alerts.append(AlertEvent.model_validate(body))
        self._changed.set()

    async def wait_connected(self, exchange_id: int, after: float, within_s: float) -> Seen | None:
        """The first `connected` event of `exchange_id` received after monotonic `after`."""
        try:
            async with asyncio.timeout(within_s):
                while True:
                    for seen in self.lifecycle:
                        if (
                            seen.mono > after
                            and seen.event.exchange_id == exchange_id
                            and seen.event.state is ConnectionState.CONNECTED
                        ):
                            return seen
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return None
