"""WriteBatch: commands sent in order in one round trip, for the closed-candle path.

On one Redis node the batch is a non-transactional pipeline on one connection: the server runs
the commands in the order they were queued, so a PUBLISH queued after a write reaches
subscribers only once the write is stored ("published after written"), for the price of one
round trip. A cluster pipeline groups commands by node and sends the groups concurrently, which
would lose that order, so on a cluster the commands are sent one after another instead.

Each queued command touches at most one key (the cache's cluster rule). Scripts are queued as
EVAL with their source, never EVALSHA: an unknown SHA inside a pipeline fails only that command
while the PUBLISH behind it still goes out, which would announce a candle that was not written.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import RedisCluster

from livermore_cache.client import RedisClient


class WriteBatch:
    """Queued Redis commands, sent in order by `flush` (see the module docstring)."""

    __slots__ = ("_commands", "_redis")

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis
        self._commands: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self._commands)

    def add(self, *args: Any) -> None:
        """Queue one command (name first, as `execute_command` takes it)."""
        self._commands.append(args)

    async def flush(self) -> list[Any]:
        """Send what is queued (nothing when empty) and return the replies in order.

        Raises:
            redis.exceptions.RedisError: a command failed or the connection broke; the queue is
                empty afterwards either way (commands are never sent twice).
        """
        commands, self._commands = self._commands, []
        if not commands:
            return []
        if isinstance(self._redis, RedisCluster):
            return [await self._redis.execute_command(*args) for args in commands]
        pipe = self._redis.pipeline(transaction=False)
        for args in commands:
            pipe.execute_command(*args)
        return list(await pipe.execute())
