from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from livermore_exchange_core.backoff import BackoffPolicy
from livermore_exchange_core.events import AdapterLifecycle
from livermore_exchange_core.websocket import (
    ConnectionAttemptLimiter,
    ReconnectingWebSocket,
    SocketPolicy,
)
from livermore_schema.enums import ConnectionState

POLICY = SocketPolicy(
    stall_timeout_s=0.4,
    close_timeout_s=0.3,
    messages_per_second=50.0,
    backoff=BackoffPolicy(base_s=0.01, cap_s=0.05),
)


class Server:
    """A loopback server whose n-th connection does what the test scripted."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.connections = 0
        self.received: list[tuple[int, float, str]] = []
        self.changed = asyncio.Event()

    async def wait_received(self, count: int) -> None:
        while len(self.received) < count:
            self.changed.clear()
            await self.changed.wait()

    async def handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        action = self.script[number - 1] if number <= len(self.script) else "serve"
        await ws.send("hello")
        if action.startswith("close"):
            await ws.close(int(action.split(":")[1]))
            return
        if action == "drop":
            ws.transport.abort()
            return
        if action == "stall":
            await ws.wait_closed()
            return
        async for message in ws:
            self.received.append((number, time.monotonic(), str(message)))
            self.changed.set()
            await ws.send(f"echo {message}")


@asynccontextmanager
async def running(script: list[str]) -> AsyncIterator[tuple[Server, str]]:
    server = Server(script)
    async with serve(server.handle, "127.0.0.1", 0) as ws_server:
        port = next(iter(ws_server.sockets)).getsockname()[1]
        yield server, f"ws://127.0.0.1:{port}"


def _socket(
    url: str, events: list[AdapterLifecycle], policy: SocketPolicy = POLICY, **kw: Any
) -> ReconnectingWebSocket:
    async def on_lifecycle(event: AdapterLifecycle) -> None:
        events.append(event)

    async def on_message(raw: str) -> None:
        return None

    async def on_open() -> None:
        return None

    return ReconnectingWebSocket(
        url,
        label="test",
        policy=policy,
        attempt_limiter=kw.pop("limiter", ConnectionAttemptLimiter(100, 1.0)),
        on_open=kw.pop("on_open", on_open),
        on_message=kw.pop("on_message", on_message),
        on_lifecycle=on_lifecycle,
        rng=random.Random(1),
    )


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        ("close:1000", "code 1000"),
        ("close:1001", "code 1001"),
        ("close:1011", "code 1011"),
        ("drop", "without a close frame"),
        ("stall", "stalled"),
    ],
)
async def test_every_kind_of_loss_reconnects(action: str, reason: str) -> None:
    events: list[AdapterLifecycle] = []
    async with running([action]) as (_server, url):
        socket = _socket(url, events)
        task = asyncio.create_task(socket.run())
        await asyncio.wait_for(socket.wait_connections(2), 5)
        await socket.close()
        await asyncio.wait_for(task, 5)
    states = [e.state for e in events]
    assert states[:3] == [
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
    ]
    assert reason in (events[2].reason or "")
    assert events[2].attempt == 1 and events[2].delay_s is not None


async def test_lifetime_limit_reconnects_proactively() -> None:
    events: list[AdapterLifecycle] = []
    policy = SocketPolicy(stall_timeout_s=5.0, max_lifetime_s=0.3, backoff=POLICY.backoff)
    async with running([]) as (_server, url):
        received = asyncio.Event()

        async def on_message(raw: str) -> None:
            received.set()

        socket = _socket(url, events, policy, on_message=on_message)
        task = asyncio.create_task(socket.run())
        await asyncio.wait_for(socket.wait_connections(2), 5)
        await socket.close()
        await asyncio.wait_for(task, 5)
    assert any("lifetime" in (e.reason or "") for e in events)


async def test_request_reconnect_and_paced_resubscribe() -> None:
    events: list[AdapterLifecycle] = []
    policy = SocketPolicy(stall_timeout_s=5.0, messages_per_second=5.0, backoff=POLICY.backoff)
    async with running([]) as (server, url):
        holder: list[ReconnectingWebSocket] = []

        async def on_open() -> None:
            for i in range(6):
                await holder[0].send(f"sub {i}")

        socket = _socket(url, events, policy, on_open=on_open)
        holder.append(socket)
        task = asyncio.create_task(socket.run())
        await asyncio.wait_for(socket.wait_connections(1), 5)
        await asyncio.wait_for(server.wait_received(6), 5)
        socket.request_reconnect("serverShutdown")
        await asyncio.wait_for(socket.wait_connections(2), 5)
        await asyncio.wait_for(server.wait_received(12), 5)
        await socket.close()
        await asyncio.wait_for(task, 5)
    assert any(e.reason == "serverShutdown" for e in events)
    for number in (1, 2):
        stamps = [t for n, t, _ in server.received if n == number]
        assert len(stamps) == 6
        # never more than 5 frames inside any one-second window
        assert all(stamps[i + 5] - stamps[i] >= 1.0 - 0.02 for i in range(len(stamps) - 5))


async def test_attempt_limiter_caps_a_reconnect_storm() -> None:
    limiter = ConnectionAttemptLimiter(3, 0.5)
    started = time.monotonic()
    for _ in range(7):
        await limiter.acquire()
    assert time.monotonic() - started >= 1.0 - 0.02  # attempts 4-6 and 7 waited a window each
    assert limiter.attempts_in_window <= 3


async def test_connection_storm_against_a_closing_server_stays_under_the_limit() -> None:
    events: list[AdapterLifecycle] = []
    policy = SocketPolicy(
        stall_timeout_s=5.0, backoff=BackoffPolicy(base_s=0.0, cap_s=0.0, jitter=0.0)
    )
    async with running(["close:1000"] * 1000) as (server, url):
        socket = _socket(url, events, policy, limiter=ConnectionAttemptLimiter(5, 0.5))
        started = time.monotonic()
        task = asyncio.create_task(socket.run())
        await asyncio.wait_for(socket.wait_connections(11), 5)
        elapsed = time.monotonic() - started
        await socket.close()
        await asyncio.wait_for(task, 5)
        stamps = server.connections
    assert elapsed >= 1.0 - 0.02  # 5 per half second: 11 opens need two full windows
    assert 11 <= stamps <= 15
