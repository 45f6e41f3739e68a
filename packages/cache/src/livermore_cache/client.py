"""Redis client factory: one node or Redis Cluster, from `RedisSettings`.

Both clients retry a command that failed on the store's side (connection lost, timeout, cluster
down, slot moving, master failing over) with capped exponential backoff for up to
`RedisSettings.retry_budget_s`, which outlasts a cluster failover (node timeout plus election),
so a long-running task sees one slow command instead of an error. Past the budget the error
reaches the caller, who decides (a worker steps down to standby).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
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
    of the slot map from any live seed) until the budget is spent.
    """

    def __init__(self, *args: Any, retry_budget_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_budget_s = retry_budget_s

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


def connect_redis(
    settings: RedisSettings, *, decode_responses: bool = True
) -> Redis | RedisCluster:
    """Return an asyncio Redis client for `settings` (no I/O happens until first use)."""
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
            retry_budget_s=settings.retry_budget_s,
        )
    retries = _retries_within(settings.retry_budget_s)
    return Redis(
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
    )
