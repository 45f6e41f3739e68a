"""Pattern deletes with SCAN (never KEYS) and one UNLINK per key (cluster-safe)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from livermore_cache.client import RedisClient


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def iter_matching(redis: RedisClient, pattern: str, batch: int = 500) -> AsyncIterator[str]:
    """Yield every key matching `pattern`, segment for segment.

    A `*` is meant to stand for one `:`-separated segment (symbols never contain `:`), but Redis
    globs let it span several, so `candles:1:*:*` would also match the legacy key
    `candles:1:1:BTC-USD:5m`. Keys with a different number of segments are therefore skipped.
    On a cluster, redis-py's `scan_iter` walks every primary.
    """
    segments = pattern.count(":")
    async for key in redis.scan_iter(match=pattern, count=batch):
        name = _text(key)
        if name.count(":") == segments:
            yield name


async def delete_matching(redis: RedisClient, pattern: str, batch: int = 500) -> int:
    """Delete every key matching `pattern` (see `iter_matching`); return how many were deleted."""
    deleted = 0
    chunk: list[str] = []
    async for key in iter_matching(redis, pattern, batch):
        chunk.append(key)
        if len(chunk) >= batch:
            deleted += await _unlink(redis, chunk)
            chunk = []
    if chunk:
        deleted += await _unlink(redis, chunk)
    return deleted


async def _unlink(redis: RedisClient, names: list[str]) -> int:
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.unlink(name)
    results = await pipe.execute()
    return sum(int(n) for n in results)
