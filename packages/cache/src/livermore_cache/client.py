"""Redis client factory: one node or Redis Cluster, from `RedisSettings`."""

from __future__ import annotations

from typing import TypeAlias

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from livermore_schema.settings import RedisSettings

RedisClient: TypeAlias = "Redis | RedisCluster"


def connect_redis(
    settings: RedisSettings, *, decode_responses: bool = True
) -> Redis | RedisCluster:
    """Return an asyncio Redis client for `settings` (no I/O happens until first use)."""
    password = settings.secret.get_secret_value() if settings.secret else None
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=3)
    retry_on: list[type[Exception]] = [RedisConnectionError, RedisTimeoutError]
    if settings.cluster:
        return RedisCluster(
            host=settings.host,
            port=settings.port,
            password=password,
            ssl=settings.tls,
            decode_responses=decode_responses,
            retry=retry,
            retry_on_error=retry_on,
        )
    return Redis(
        host=settings.host,
        port=settings.port,
        db=settings.db,
        password=password,
        ssl=settings.tls,
        decode_responses=decode_responses,
        retry=retry,
        retry_on_error=retry_on,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
