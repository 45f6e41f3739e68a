"""A WebSocket that stays connected: reconnects, watchdog, paced sends and attempt limiting.

The SDK sockets give up or go quiet in exactly the cases that lose data (reference A3 #1, #4,
#5): a "normal" close 1000/1001 ends them silently, a stalled-but-open socket is never noticed,
and a resubscribe burst after a reconnect trips the exchange's message limit (close 1008). This
socket treats every end of a connection, whatever its close code, as a reason to reconnect
until `close()` is called, and:

- a watchdog closes a connection that received no data frame for `stall_timeout_s`, or that has
  lived `max_lifetime_s` (Binance drops connections after 24 h; we leave first);
- reconnects wait a jittered, capped exponential backoff, and every attempt first takes a slot
  from a `ConnectionAttemptLimiter` shared by every socket to the exchange, so a storm cannot
  exceed the exchange's connection limit;
- outgoing frames are paced by a per-connection `MessagePacer` (Binance counts 5 incoming
  messages per second, PONGs included, so we stay well below it).

Wall clock (monotonic) is used here only for timeouts and pacing, never for market time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.errors import TransientNetworkError
from livermore_exchange_core.events import AdapterLifecycle, connected, connecting, reconnecting
from livermore_exchange_core.telemetry import traffic

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SocketPolicy:
    """Timeouts, pacing and backoff of one reconnecting socket."""

    stall_timeout_s: float = 15.0
    max_lifetime_s: float | None = None
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    messages_per_second: float = 4.0
    backoff: BackoffPolicy = field(default_factory=lambda: BackoffPolicy(base_s=0.5, cap_s=30.0))
    max_frame_bytes: int = 16 * 1024 * 1024


class ConnectionAttemptLimiter:
    """At most `max_attempts` connection attempts in any sliding `window_s` (one per exchange)."""

    def __init__(self, max_attempts: int, window_s: float) -> None:
        if max_attempts < 1 or window_s <= 0:
            raise ValueError("a limiter needs max_attempts >= 1 and window_s > 0")
        self._max = max_attempts
        self._window = window_s
        self._stamps: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    @property
    def attempts_in_window(self) -> int:
        """Return how many attempts the current window holds."""
        self._expire(time.monotonic())
        return len(self._stamps)

    def _expire(self, now: float) -> None:
        while self._stamps and now - self._stamps[0] >= self._window:
            self._stamps.popleft()

    async def acquire(self) -> None:
        """Wait until an attempt is allowed, then count it."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._expire(now)
                if len(self._stamps) < self._max:
                    self._stamps.append(now)
                    return
                await asyncio.sleep(self._stamps[0] + self._window - now)


class MessagePacer:
    """Spaces outgoing frames of one connection at least `1 / per_second` apart."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return when the next frame may be sent, reserving its slot."""
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = time.monotonic()
            self._next = max(now, self._next) + self._interval


OnOpen = Callable[[], Awaitable[None]]
OnMessage = Callable[[str], Awaitable[None]]
OnLifecycle = Callable[[AdapterLifecycle], Awaitable[None]]


class ReconnectingWebSocket:
    """One logical stream connection that reconnects until closed; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        label: str,
        policy: SocketPolicy,
        attempt_limiter: ConnectionAttemptLimiter,
        on_open: OnOpen,
        on_message: OnMessage,
        on_lifecycle: OnLifecycle,
        rng: random.Random | None = None,
        exchange: str | None = None,
    ) -> None:
        self.url = url
        self.label = label
        self._traffic = traffic(exchange or label)
        self._policy = policy
        self._limiter = attempt_limiter
        self._on_open = on_open
        self._on_message = on_message
        self._on_lifecycle = on_lifecycle
        self._backoff = Backoff(policy.backoff, rng or random.Random())
        self._ws: ClientConnection | None = None
        self._pacer = MessagePacer(policy.messages_per_second)
        self._stopping = asyncio.Event()
        self._reconnect_reason: str | None = None
        self._last_rx = 0.0
        self.connections = 0
        self.frames_sent = 0
        self._opened = asyncio.Event()

    @property
    def is_open(self) -> bool:
        """Return whether a connection is currently open."""
        return self._ws is not None

    async def send(self, text: str) -> None:
        """Send one frame, paced under the per-connection message limit.

        Raises:
            TransientNetworkError: no connection is open (the next one resubscribes anyway).
        """
        await self._pacer.wait()
        ws = self._ws
        if ws is None:
            raise TransientNetworkError(f"{self.label}: not connected")
        try:
            await ws.send(text)
        except ConnectionClosed as err:
            raise TransientNetworkError(f"{self.label}: connection closed during send") from err
        self.frames_sent += 1

    async def wait_connections(self, count: int) -> None:
        """Return once `count` connections have been opened in total."""
        while self.connections < count:
            self._opened.clear()
            await self._opened.wait()

    def request_reconnect(self, reason: str) -> None:
        """Drop the current connection and reconnect (serverShutdown, sequence loss, ...)."""
        ws = self._ws
        if ws is None or self._reconnect_reason is not None:
            return
        self._reconnect_reason = reason
        ws.close_transport()  # the read loop sees the loss at once and reconnects

    async def close(self) -> None:
        """Stop reconnecting and close the connection; `run()` then returns."""
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            await ws.close(1000, "client closing")

    async def run(self) -> None:
        """Connect, read and reconnect until `close()`."""
        first = True
        while not self._stopping.is_set():
            await self._limiter.acquire()
            if self._stopping.is_set():
                break
            if first:
                await self._on_lifecycle(connecting(self.label))
                first = False
            reason = await self._connect_once()
            if self._stopping.is_set():
                break
            delay = self._backoff.next_delay()
            self._traffic.reconnects += 1
            log.info("ws.reconnecting", socket=self.label, reason=reason, delay_s=round(delay, 3))
            await self._on_lifecycle(
                reconnecting(self._backoff.attempt, delay, reason, connection=self.label)
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _connect_once(self) -> str:
        """Run one connection to its end and return why it ended."""
        policy = self._policy
        try:
            ws = await connect(
                self.url,
                open_timeout=policy.open_timeout_s,
                close_timeout=policy.close_timeout_s,
                ping_interval=None,  # server pings are answered; our own would count as messages
                compression=None,
                max_size=policy.max_frame_bytes,
                max_queue=4096,
            )
        except (OSError, TimeoutError, InvalidHandshake) as err:
            return f"connect failed: {type(err).__name__}: {err}"
        self._ws = ws
        self._reconnect_reason = None
        self._pacer = MessagePacer(policy.messages_per_second)
        self._last_rx = time.monotonic()
        self.connections += 1
        self._opened.set()
        watchdog = asyncio.get_running_loop().create_task(self._watch(ws))
        try:
            await self._on_lifecycle(connected(self.label))
            opener = asyncio.get_running_loop().create_task(self._open(ws))
            try:
                return await self._read(ws)
            finally:
                opener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await opener
        finally:
            self._ws = None
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            await ws.close()

    async def _open(self, ws: ClientConnection) -> None:
        try:
            await self._on_open()
        except TransientNetworkError:
            return  # the connection died while subscribing; the next one subscribes again
        except Exception as err:
            log.exception("ws.open_failed", socket=self.label)
            self._reconnect_reason = f"subscribe failed: {err}"
            await ws.close(1000, "subscribe failed")

    async def _read(self, ws: ClientConnection) -> str:
        on_message = self._on_message
        counts = self._traffic
        clock = time.monotonic
        got_data = False
        while True:
            try:
                raw = await ws.recv()
            except ConnectionClosed as err:
                return self._reconnect_reason or _describe_close(err)
            self._last_rx = clock()
            counts.messages += 1
            if not got_data:
                got_data = True
                self._backoff.reset()
            try:
                await on_message(raw if isinstance(raw, str) else raw.decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ws.frame_failed", socket=self.label, frame=str(raw)[:500])

    async def _watch(self, ws: ClientConnection) -> None:
        policy = self._policy
        opened = time.monotonic()
        step = min(policy.stall_timeout_s / 4, 1.0)
        while True:
            await asyncio.sleep(step)
            now = time.monotonic()
            if now - self._last_rx > policy.stall_timeout_s:
                reason = f"stalled: no data for {now - self._last_rx:.1f}s"
            elif policy.max_lifetime_s is not None and now - opened > policy.max_lifetime_s:
                reason = f"lifetime: reconnecting after {now - opened:.0f}s"
            else:
                continue
            log.warning("ws.watchdog", socket=self.label, reason=reason)
            self._reconnect_reason = reason
            # A stalled peer may never answer the closing handshake: drop the transport.
            ws.close_transport()
            return


def _describe_close(err: ConnectionClosed) -> str:
    frame = err.rcvd
    if frame is None:
        return "connection dropped without a close frame"
    return f"closed by server: code {frame.code} {frame.reason}".rstrip()
