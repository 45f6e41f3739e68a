"""Control-protocol transport: a durable command stream plus channels (SPEC 9).

A command is XADDed to `command_stream_key(ex)` (so it survives a worker restart) and published on
`livermore:commands:{ex}` for observers. The worker reads the stream through a consumer group and
acknowledges each entry after handling it. A response is stored at `response_key(ex, id)` for a
while and then published on `livermore:responses:{ex}`, in that order, so a waiter that subscribes
first and then reads the key can never miss it.

A program that only PUBLISHes a command on `livermore:commands:{ex}` is answered too: the active
worker's `PublishedCommandBridge` adds each published command to the stream unless one of the
stream's newest entries already holds exactly that text (what `CommandBus.send` XADDed before
publishing it), so every command is handled once, through the one stream path. A command
published while no worker listens is not seen (pub/sub keeps nothing); the stream is the durable
way in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from typing import Any
from uuid import UUID

import structlog
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from livermore_cache import channels, keys
from livermore_cache.client import RedisClient
from livermore_cache.fanout import ChannelFanout
from livermore_cache.fence import LeaseFence
from livermore_schema.control import Command, CommandResponse
from livermore_schema.enums import ResponseStatus

COMMAND_FIELD = "command"
"""The stream entry field holding the command JSON."""

DEFAULT_GROUP = "livermore-workers"
STREAM_MAXLEN = 10_000
RESPONSE_TTL_S = 600
BRIDGE_LOOKBACK = 256
"""How many of the stream's newest entries a published command is compared with."""

log = structlog.get_logger(__name__)

# KEYS[1] command stream; ARGV: raw command, field name, maxlen, lookback. Adds the command
# unless one of the newest `lookback` entries holds exactly this text. Returns 1 when added.
_ADMIT_PUBLISHED = """
local recent = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[4])
for _, entry in ipairs(recent) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == ARGV[2] and fields[i + 1] == ARGV[1] then return 0 end
  end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', ARGV[2], ARGV[1])
return 1
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CommandBus:
    """The sending side (api, CLI): send commands, wait for or fetch their responses.

    With a `fanout`, responses are awaited through the process's one shared subscription;
    without one, each wait opens (and always closes) a subscription of its own.
    """

    def __init__(
        self,
        redis: RedisClient,
        *,
        maxlen: int = STREAM_MAXLEN,
        response_ttl_s: int = RESPONSE_TTL_S,
        fanout: ChannelFanout | None = None,
    ) -> None:
        self._redis = redis
        self._fanout = fanout
        self._maxlen = maxlen
        self._response_ttl = response_ttl_s

    async def send(self, exchange_id: int, command: Command) -> UUID:
        """Queue a command durably and publish it; return its correlation id."""
        await self.send_raw(exchange_id, command.model_dump_json())
        return command.correlation_id

    async def send_raw(self, exchange_id: int, raw: str) -> str:
        """Queue raw command text as is (the worker validates it); return the stream entry id."""
        entry_id = await self._redis.xadd(
            keys.command_stream_key(exchange_id),
            {COMMAND_FIELD: raw},
            maxlen=self._maxlen,
            approximate=True,
        )
        # Publish only after the XADD: the worker's PublishedCommandBridge finds this entry and
        # does not queue the published copy a second time.
        await self._redis.publish(channels.commands_channel(exchange_id), raw)
        return _text(entry_id)

    async def fetch_response(
        self, exchange_id: int, correlation_id: UUID | str
    ) -> CommandResponse | None:
        """Return the latest stored response to a command, or None."""
        raw = await self._redis.get(keys.response_key(exchange_id, str(correlation_id)))
        return None if raw is None else CommandResponse.model_validate_json(raw)

    async def await_response(
        self,
        exchange_id: int,
        correlation_id: UUID | str,
        timeout: float,  # noqa: ASYNC109 - part of the protocol API the api calls
        *,
        final_only: bool = True,
    ) -> CommandResponse:
        """Wait for a response (by default a final `success`/`error`, skipping `ack`).

        Raises:
            TimeoutError: no matching response arrived within `timeout` seconds.
        """
        wanted = UUID(str(correlation_id))
        if self._fanout is not None:
            return await self._fanout.await_response(
                exchange_id, wanted, timeout, final_only=final_only
            )

        def matches(response: CommandResponse | None) -> bool:
            if response is None or response.correlation_id != wanted:
                return False
            return not final_only or response.status is not ResponseStatus.ACK

        # A deadline, not a cancellation: redis-py can swallow a cancel that lands mid-command,
        # and a subscription set up under it would be left open and waiting forever.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pubsub: Any = self._redis.pubsub()
        try:
            await pubsub.subscribe(channels.responses_channel(exchange_id))
            while True:
                stored = await self.fetch_response(exchange_id, wanted)
                if matches(stored):
                    assert stored is not None
                    return stored
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=min(remaining, 1.0)
                )
                if message is not None and message["type"] == "message":
                    with contextlib.suppress(ValidationError):
                        response = CommandResponse.model_validate_json(message["data"])
                        if matches(response):
                            return response
        finally:
            await pubsub.aclose()
        raise TimeoutError(f"no response to command {wanted} within {timeout:g} s")


class CommandInbox:
    """The worker side: read commands from the stream's consumer group, ack and answer them.

    On first use it also takes over entries another (dead) consumer read but never acknowledged,
    so a command in flight during a restart is handled by the next worker.
    """

    def __init__(
        self,
        redis: RedisClient,
        exchange_id: int,
        consumer: str,
        *,
        group: str = DEFAULT_GROUP,
        claim_idle_ms: int = 0,
        response_ttl_s: int = RESPONSE_TTL_S,
    ) -> None:
        self._redis = redis
        self._exchange_id = exchange_id
        self._stream = keys.command_stream_key(exchange_id)
        self._consumer = consumer
        self._group = group
        self._claim_idle_ms = claim_idle_ms
        self._response_ttl = response_ttl_s
        self._backlog: deque[tuple[str, str]] = deque()
        self._recovered = False

    async def ensure_group(self) -> None:
        """Create the consumer group from the stream's start (commands sent before it count)."""
        try:
            await self._redis.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except ResponseError as err:
            if "BUSYGROUP" not in str(err):
                raise

    async def next(self, timeout: float) -> tuple[str, str] | None:  # noqa: ASYNC109 - XREAD BLOCK
        """Return the next `(entry_id, raw command text)`, or None after `timeout` seconds.

        On a client with a lease fence, commands are read only while the lease is valid, and a
        blocking read ends before the validity does: a worker whose lease may have lapsed never
        takes a command meant for the holder (it stays unread in the stream).
        """
        fence = getattr(self._redis, "fence", None)
        if isinstance(fence, LeaseFence):
            if not await fence.until_valid(timeout):
                return None
            timeout = min(timeout, fence.remaining_s())
            if timeout < 0.001:
                return None
        if not self._recovered:
            await self.ensure_group()
            await self._recover()
            self._recovered = True
        if self._backlog:
            return self._backlog.popleft()
        reply = await self._redis.xreadgroup(
            self._group,
            self._consumer,
            {self._stream: ">"},
            count=1,
            block=max(1, int(timeout * 1000)),
        )
        entries = _entries(reply)
        return entries[0] if entries else None

    async def ack(self, entry_id: str) -> None:
        """Acknowledge a handled entry so it is never delivered again."""
        await self._redis.xack(self._stream, self._group, entry_id)

    async def respond(self, response: CommandResponse) -> None:
        """Store the response under its correlation id, then publish it."""
        payload = response.model_dump_json()
        key = keys.response_key(self._exchange_id, str(response.correlation_id))
        await self._redis.set(key, payload, ex=self._response_ttl)
        await self._redis.publish(channels.responses_channel(self._exchange_id), payload)

    async def _recover(self) -> None:
        own: Any = await self._redis.xreadgroup(
            self._group, self._consumer, {self._stream: "0"}, count=1000
        )
        for _, batch in own or []:
            for entry_id, fields in batch:
                if fields is None:  # trimmed out of the stream while pending: nothing to run
                    await self.ack(_text(entry_id))
                else:
                    self._backlog.append(_decode((entry_id, fields)))
        cursor = "0-0"
        while True:
            reply = await self._redis.xautoclaim(
                self._stream, self._group, self._consumer, self._claim_idle_ms, cursor, count=100
            )
            self._backlog.extend(_decode(entry) for entry in reply[1] if entry[1] is not None)
            cursor = _text(reply[0])
            if cursor == "0-0":
                return


class PublishedCommandBridge:
    """Feeds commands PUBLISHed on `livermore:commands:{ex}` into the durable stream once each."""

    def __init__(
        self,
        redis: RedisClient,
        exchange_id: int,
        *,
        maxlen: int = STREAM_MAXLEN,
        lookback: int = BRIDGE_LOOKBACK,
    ) -> None:
        self._redis = redis
        self._exchange_id = exchange_id
        self._stream = keys.command_stream_key(exchange_id)
        self._maxlen = maxlen
        self._lookback = lookback
        self._admit = redis.register_script(_ADMIT_PUBLISHED)
        self.bridged = 0

    async def admit(self, raw: str) -> bool:
        """Add one published command to the stream unless it is there already; return if added."""
        args: list[str | int] = [raw, COMMAND_FIELD, self._maxlen, self._lookback]
        added = int(await self._admit(keys=[self._stream], args=args)) == 1
        self.bridged += int(added)
        return added

    async def serve(
        self, stop: asyncio.Event, poll_s: float = 0.5, *, ready: asyncio.Event | None = None
    ) -> None:
        """Bridge published commands until `stop` is set; `ready` is set once subscribed."""
        channel = channels.commands_channel(self._exchange_id)
        while not stop.is_set():
            try:
                await self._bridge(channel, stop, poll_s, ready)
            except (RedisError, OSError) as err:  # Redis restarted or failed over: subscribe again
                log.warning("commands.bridge_reconnect", error=repr(err))
                await asyncio.sleep(poll_s)
            except Exception:  # the stream path still works: never take the worker down
                log.exception("commands.bridge_crashed")
                await asyncio.sleep(poll_s)

    async def _bridge(
        self, channel: str, stop: asyncio.Event, poll_s: float, ready: asyncio.Event | None
    ) -> None:
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()  # the cluster pubsub needs the slot map
        pubsub: Any = self._redis.pubsub()
        try:
            await pubsub.subscribe(channel)
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=False, timeout=poll_s)
                if message is None:
                    continue
                if message["type"] == "subscribe" and ready is not None:
                    ready.set()
                elif message["type"] == "message":
                    raw = _text(message["data"])
                    try:
                        await self.admit(raw)
                    except RedisError:
                        raise
                    except Exception:  # one bad message never stops the bridge
                        log.exception("commands.bridge_failed", raw=raw[:300])
        finally:
            await pubsub.aclose()


def _decode(entry: Any) -> tuple[str, str]:
    entry_id, fields = entry
    decoded = {_text(k): _text(v) for k, v in (fields or {}).items()}
    raw = decoded.get(COMMAND_FIELD)
    return _text(entry_id), raw if raw is not None else json.dumps(decoded)


def _entries(reply: Any) -> list[tuple[str, str]]:
    # RESP2 shape (what connect_redis speaks): [[stream, [(id, fields), ...]], ...]
    return [_decode(entry) for _, batch in reply or [] for entry in batch]


async def command_queue_depth(
    redis: RedisClient, exchange_id: int, *, group: str = DEFAULT_GROUP
) -> int:
    """Return the commands of an exchange not yet handled: unread by the group plus unacked."""
    stream = keys.command_stream_key(exchange_id)
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:  # no stream yet: nothing was ever sent
        return 0
    for info in groups:
        name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
        if name == group:
            # `lag` is null when Redis cannot tell (entries deleted): count the whole stream.
            lag = info.get("lag")
            unread = int(lag) if lag is not None else int(await redis.xlen(stream))
            return unread + int(info["pending"])
    return int(await redis.xlen(stream))  # no worker has created the group: every entry waits
