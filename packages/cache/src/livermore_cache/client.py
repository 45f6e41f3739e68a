"""Redis client factory: one node or Redis Cluster, from `RedisSettings`.

Both clients retry a command that failed on the store's side (connection lost, timeout, cluster
down, slot moving, master failing over) with capped exponential backoff for up to
`RedisSettings.retry_budget_s`, which outlasts a cluster failover (node timeout plus election),
so a long-running task sees one slow command instead of an error. Past the budget the error
reaches the caller, who decides (a worker steps down to standby).

A process serves one deployment: connecting also sets the namespace every key and channel
name is built under (`keys.set_namespace`).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livermore_cache._namespace import set_namespace
from livermore_cache.fence import LeaseFence
from livermore_schema.settings import RedisSettings

RedisClient: TypeAlias = "Redis | RedisCluster"

BACKOFF_BASE_S = 0.05
BACKOFF_CAP_S = 1.0
STORE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    MasterDownError,
    SlotNotCoveredError,
    TryAgainError,
)
"""Errors of the store itself (not of the command): worth retrying until the budget is spent."""


def is_store_error(err: BaseException) -> bool:
    """Whether `err` means the store is (for now) unreachable rather than the command wrong."""
    if isinstance(err, STORE_ERRORS):
        return True
    # All seeds unreachable while (re)initialising the slot map: the cluster is down for us.
    return type(err) is RedisClusterException and "connect" in str(err).lower()


def backoff_s(attempt: int) -> float:
    """Return the pause before retry number `attempt` (1-based): capped exponential."""
    return float(min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))


def _retries_within(budget_s: float) -> int:
    total, attempts = 0.0, 0
    while total < budget_s:
        attempts += 1
        total += backoff_s(attempts)
    return max(attempts, 1) if budget_s > 0 else 0


class ResilientCluster(RedisCluster):
    """`RedisCluster` whose commands retry store errors with backoff for `retry_budget_s`.

    redis-py's own cluster retries follow each other without a pause (about a second in all),
    shorter than a failover; this loop re-runs the whole command (slot lookup, re-initialisation
    of the slot map from any live seed) until the budget is spent. With a `fence`, every write
    is admitted by it first (see `livermore_cache.fence`).
    """

    def __init__(
        self, *args: Any, retry_budget_s: float, fence: LeaseFence | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.retry_budget_s = retry_budget_s
        self.fence = fence

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run one command, retrying store errors with backoff within the budget."""
        deadline = time.monotonic() + self.retry_budget_s
        attempt = 0
        while True:
            try:
                return await super().execute_command(*args, **kwargs)
            except Exception as err:
                attempt += 1
                left = deadline - time.monotonic()
                if not is_store_error(err) or left <= 0:
                    raise
                self._initialize = True  # re-read the slot map (a replica may be master now)
                await asyncio.sleep(min(backoff_s(attempt), left))

    async def _execute_command(self, target_node: Any, *args: Any, **kwargs: Any) -> Any:
        # Admitted on every attempt: a retry after the deadline is refused like a first try.
        if self.fence is not None:
            await self.fence.admit(str(args[0]))
        return await super()._execute_command(target_node, *args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        """Return a cluster pipeline whose `execute` is admitted by the fence."""
        if shard_hint:
            return super().pipeline(transaction, shard_hint)
        return _FencedClusterPipeline(self, transaction)  # type: ignore[abstract]


class _FencedClusterPipeline(ClusterPipeline):
    def __init__(self, client: ResilientCluster, transaction: Any | None) -> None:
        super().__init__(client, transaction)
        self._fence = client.fence
        self._names: list[str] = []

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self._names.append(str(args[0]))
        return super().execute_command(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        names, self._names = self._names, []
        if self._fence is not None:
            await self._fence.admit_all(names)
        return await super().execute(*args, **kwargs)


class FencedRedis(Redis):
    """A single-node `Redis` whose writes (and pipelines) are admitted by a `LeaseFence`."""

    def __init__(self, *args: Any, fence: LeaseFence, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fence = fence

    async def _send_command_parse_response(
        self, conn: Any, command_name: Any, *args: Any, **options: Any
    ) -> Any:
        # Admitted on every attempt (redis-py retries inside execute_command): a retry after
        # the deadline is refused like a first try.
        await self.fence.admit(str(command_name))
        return await super()._send_command_parse_response(  # type: ignore[no-untyped-call]
            conn, command_name, *args, **options
        )

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        """Return a pipeline whose `execute` is admitted by the fence."""
        return _FencedPipeline(
            self.fence, self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _FencedPipeline(Pipeline):
    def __init__(self, fence: LeaseFence, *args: Any) -> None:
        super().__init__(*args)
        self._fence = fence

    async def _execute_pipeline(self, connection: Any, commands: Any, raise_on_error: bool) -> Any:
        await self._fence.admit_all([args[0] for args, _ in commands])  # on every attempt
        return await super()._execute_pipeline(connection, commands, raise_on_error)


class _LingerlessConnection(Connection):
    """A connection whose close discards unsent data (RST).

    A request stuck in a cut link is then dropped when the read times out, instead of being
    delivered by a retransmission after the fence has lapsed.
    """

    async def _connect(self) -> None:
        await super()._connect()  # type: ignore[no-untyped-call]
        transport = self._writer.transport if self._writer is not None else None
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def connect_redis(
    settings: RedisSettings,
    *,
    decode_responses: bool = True,
    fence: LeaseFence | None = None,
    client_name: str | None = None,
) -> Redis | RedisCluster:
    """Return an asyncio Redis client for `settings` (no I/O happens until first use).

    With `fence`, every write the client sends is admitted by it (a worker's lease);
    `client_name` names its connections in `CLIENT LIST` (who is writing, for an operator).

    The pool holds at most `settings.max_connections` connections (per node); past that a
    command fails fast with a `ConnectionError` instead of opening more.
    """
    set_namespace(settings.namespace)
    password = settings.secret.get_secret_value() if settings.secret else None
    if settings.cluster:
        return ResilientCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in settings.seeds()],
            password=password,
            ssl=settings.tls,
            decode_responses=decode_responses,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            socket_connect_timeout=2,
            socket_timeout=5,
            client_name=client_name,
            retry_budget_s=settings.retry_budget_s,
            fence=fence,
            max_connections=settings.max_connections,
        )
    retries = _retries_within(settings.retry_budget_s)
    # a blackholed link must fail (and be retried) rather than hang a task for ever
    options: dict[str, Any] = {"socket_timeout": 10}
    if fence is not None:
        # A worker's reads never block long (XREADGROUP polls for 0.5 s): a shorter timeout
        # drops a request stuck in a cut link sooner.
        options = {"fence": fence, "socket_timeout": 5}
    client = (Redis if fence is None else FencedRedis)(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        password=password,
        ssl=settings.tls,
        decode_responses=decode_responses,
        retry=Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), retries=retries),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_connect_timeout=5,
        health_check_interval=30,
        client_name=client_name,
        **options,
        max_connections=settings.max_connections,
    )
    if fence is not None and not settings.tls:
        client.connection_pool.connection_class = _LingerlessConnection
    return client
