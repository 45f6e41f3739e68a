"""One pub/sub connection per process, fanned out in-process to any number of listeners.

`ChannelFanout` pattern-subscribes once to every exchange's alert channel and every exchange's
control-response channel. Each alert listener has a bounded buffer: a listener that falls that
far behind is closed (`slow_client`), never blocking the others. Command waiters are woken by
correlation id and re-read the stored response now and then, so a reconnect never loses an
answer. Malformed payloads are counted, logged and skipped. A subscription whose connection fails
past its retries is replaced by a new one (on a cluster, on any live node: a classic PUBLISH
reaches them all), retried with backoff for as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Any, Generic, TypeVar
from uuid import UUID

import structlog
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster

from livermore_cache import channels, keys
from livermore_cache.client import RedisClient
from livermore_schema.alerts import AlertEvent
from livermore_schema.control import CommandResponse
from livermore_schema.enums import ResponseStatus

log = structlog.get_logger(__name__)

T = TypeVar("T")
Transform = Callable[[AlertEvent], T | None]
"""Per-listener filter and transform: the item to deliver, or None to skip the alert."""

_RECHECK_S = 1.0
_TICK_S = 0.5
_RESUBSCRIBE_S = 2.0
"""How long a new subscription may take to be confirmed before it is tried again."""


class FanoutFullError(Exception):
    """No room for another listener; `scope` is `owner` (per-owner cap) or `total`."""

    def __init__(self, scope: str, limit: int) -> None:
        super().__init__(f"{scope} stream limit of {limit} reached")
        self.scope = scope
        self.limit = limit


class ListenerClosedError(Exception):
    """The listener was closed (`reason`: slow_client, revoked, shutdown ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"stream closed: {reason}")
        self.reason = reason


class AlertListener(Generic[T]):
    """One in-process alert subscriber with a bounded buffer, registered on a `ChannelFanout`."""

    def __init__(
        self,
        owner_id: int,
        token_id: int | None,
        exchange_ids: frozenset[int] | None,
        transform: Transform[T],
        buffer: int,
    ) -> None:
        self.owner_id = owner_id
        self.token_id = token_id
        self.exchange_ids = exchange_ids
        self.transform = transform
        self.closed: str | None = None
        self._buffer = buffer
        self._items: deque[T] = deque()
        self._wake = asyncio.Event()

    def push(self, item: T) -> bool:
        """Buffer an item; return False (and close) when the buffer is full."""
        if len(self._items) >= self._buffer:
            self.close("slow_client")
            return False
        self._items.append(item)
        self._wake.set()
        return True

    def close(self, reason: str) -> None:
        """End the listener: its reader gets `ListenerClosedError(reason)` on the next read."""
        if self.closed is None:
            self.closed = reason
            self._wake.set()

    async def next(self, timeout: float) -> T | None:  # noqa: ASYNC109 - idle ticks are the API
        """Return the next item, or None after `timeout` s idle.

        Raises:
            ListenerClosedError: the listener was closed.
        """
        if self.closed is not None:
            raise ListenerClosedError(self.closed)
        if not self._items:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            if self.closed is not None:
                raise ListenerClosedError(self.closed)
        return self._items.popleft() if self._items else None


class _Waiter:
    def __init__(self, final_only: bool) -> None:
        self.final_only = final_only
        self.future: asyncio.Future[CommandResponse] = asyncio.get_running_loop().create_future()

    def offer(self, response: CommandResponse) -> None:
        if self.future.done() or (self.final_only and response.status is ResponseStatus.ACK):
            return
        self.future.set_result(response)


class ChannelFanout:
    """The process's one pub/sub connection, shared by every alert stream and command waiter."""

    def __init__(
        self, redis: RedisClient, *, max_per_owner: int, max_total: int, buffer: int = 1000
    ) -> None:
        self._redis = redis
        self.max_per_owner = max_per_owner
        self.max_total = max_total
        self._buffer = buffer
        self._listeners: list[AlertListener[Any]] = []
        self._waiters: dict[UUID, list[_Waiter]] = {}
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False
        self.malformed = 0
        self.dropped = 0

    async def __aenter__(self) -> ChannelFanout:
        self._pubsub = await self._subscribe(None)
        self._reader = asyncio.create_task(self._read(), name="channel-fanout")
        return self

    async def _subscribe(self, within_s: float | None, node: Any = None) -> Any:
        """Return a new pub/sub connection (on `node` of a cluster) once both patterns hold."""
        if isinstance(self._redis, RedisCluster):
            # the cluster pubsub picks its node from the slot map (KeyError before it is read)
            await self._redis.initialize()
        pubsub: Any = self._redis.pubsub() if node is None else self._redis.pubsub(node=node)
        deadline = None if within_s is None else time.monotonic() + within_s
        try:
            await pubsub.psubscribe(channels.ALL_ALERTS_PATTERN, channels.responses_pattern())
            pending = 2
            while pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("pattern subscriptions not confirmed")
                message = await pubsub.get_message(timeout=left)
                if message is not None and message["type"] == "psubscribe":
                    pending -= 1
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for listener in self._listeners:
            listener.close("shutdown")
        self._stopping = True
        if self._reader is not None:
            # no cancel: redis-py may swallow one mid-read; the reader sees the flag within a tick
            await self._reader
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None

    @property
    def listeners(self) -> list[AlertListener[Any]]:
        """The open listeners (a copy)."""
        return list(self._listeners)

    def listen(
        self,
        owner_id: int,
        transform: Transform[T],
        *,
        token_id: int | None = None,
        exchange_ids: frozenset[int] | None = None,
    ) -> AlertListener[T]:
        """Register a listener for alerts of `exchange_ids` (None = every exchange).

        Raises:
            FanoutFullError: the owner's or the process's listener cap is reached.
        """
        if len(self._listeners) >= self.max_total:
            raise FanoutFullError("total", self.max_total)
        if sum(1 for lst in self._listeners if lst.owner_id == owner_id) >= self.max_per_owner:
            raise FanoutFullError("owner", self.max_per_owner)
        listener = AlertListener(owner_id, token_id, exchange_ids, transform, self._buffer)
        self._listeners.append(listener)
        return listener

    def release(self, listener: AlertListener[Any]) -> None:
        """Unregister a listener (idempotent); it counts against no cap afterwards."""
        listener.close("released")
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def await_response(
        self,
        exchange_id: int,
        correlation_id: UUID,
        timeout: float,  # noqa: ASYNC109 - part of the protocol API the api calls
        *,
        final_only: bool = True,
    ) -> CommandResponse:
        """Wait for a response to a command (by default a final one, skipping `ack`).

        Raises:
            TimeoutError: no matching response arrived within `timeout` seconds.
        """
        waiter = _Waiter(final_only)
        self._waiters.setdefault(correlation_id, []).append(waiter)
        # A deadline, not a cancellation: redis-py can swallow a cancel that lands mid-command,
        # which is how a tiny timeout used to wait forever.
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while not waiter.future.done():
                raw = await self._redis.get(keys.response_key(exchange_id, str(correlation_id)))
                if raw is not None:
                    with contextlib.suppress(ValidationError):
                        waiter.offer(CommandResponse.model_validate_json(raw))
                remaining = deadline - asyncio.get_running_loop().time()
                if waiter.future.done() or remaining <= 0:
                    break
                await asyncio.wait({waiter.future}, timeout=min(remaining, _RECHECK_S))
            if waiter.future.done():
                return waiter.future.result()
            raise TimeoutError(f"no response to command {correlation_id} within {timeout:g} s")
        finally:
            self._forget(correlation_id, waiter)

    def _forget(self, correlation_id: UUID, waiter: _Waiter) -> None:
        found = self._waiters.get(correlation_id, [])
        with contextlib.suppress(ValueError):
            found.remove(waiter)
        if not found:
            self._waiters.pop(correlation_id, None)
        waiter.future.cancel()

    async def _read(self) -> None:
        backoff = 0.1
        while not self._stopping:
            try:
                if self._pubsub is None:
                    self._pubsub = await self._resubscribe()
                    log.info("fanout.resubscribed")
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=_TICK_S
                )
            except Exception as err:  # the connection failed past its retries: retry forever
                log.warning("fanout.read_failed", error=repr(err), retry_in_s=backoff)
                await self._drop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.1
            if message is not None and message["type"] == "pmessage":
                self._dispatch(_text(message["channel"]), message["data"])

    async def _resubscribe(self) -> Any:
        if not isinstance(self._redis, RedisCluster):
            return await self._subscribe(_RESUBSCRIBE_S)
        # A classic PUBLISH reaches every node of a cluster, replicas too: any live node will do,
        # so the subscription is back before the failed master's slots have moved.
        failure: Exception = ConnectionError("the cluster has no known node")
        for node in self._redis.get_nodes():
            try:
                return await self._subscribe(_RESUBSCRIBE_S, node)
            except Exception as err:
                failure = err
        raise failure

    async def _drop(self) -> None:
        """Close a failed subscription; the next one is made anew, on a live node.

        On a cluster the old one is bound to its node, which may be gone (a killed master):
        the slot map is read again, so the new one is tried on the nodes the cluster has now.
        """
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
        if isinstance(self._redis, RedisCluster):
            with contextlib.suppress(Exception):
                await self._redis.nodes_manager.initialize()

    def _dispatch(self, channel: str, data: Any) -> None:
        try:
            if _is_responses(channel):
                self._deliver_response(CommandResponse.model_validate_json(data))
            else:  # an exchange's alert channel, or the confluence one
                self._deliver_alert(AlertEvent.model_validate_json(data))
        except ValueError as err:  # pydantic's ValidationError included
            self.malformed += 1
            log.warning("fanout.malformed_payload", channel=channel, reason=str(err)[:300])

    def _deliver_response(self, response: CommandResponse) -> None:
        for waiter in self._waiters.get(response.correlation_id, []):
            waiter.offer(response)

    def _deliver_alert(self, event: AlertEvent) -> None:
        for listener in list(self._listeners):
            if listener.closed is not None:
                continue
            if listener.exchange_ids is not None and event.exchange_id not in listener.exchange_ids:
                continue
            try:
                item = listener.transform(event)
            except Exception:  # one listener's transform must not starve the others
                log.exception("fanout.transform_failed", owner_id=listener.owner_id)
                continue
            if item is not None and not listener.push(item):
                self.dropped += 1
                log.warning("fanout.slow_client_dropped", owner_id=listener.owner_id)


def _is_responses(channel: str) -> bool:
    try:
        channels.parse_responses_channel(channel)
    except ValueError:
        return False
    return True


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
