"""Lease fencing on the client: no write leaves a worker whose lease may have lapsed.

The lease holder extends `LeaseFence.valid_until` (monotonic) after every successful renew,
counted from *before* the renew was sent, minus a safety margin, so it always ends before the
server-side TTL can. A client built with a fence (`connect_redis(..., fence=...)`) checks it
before every write command, pipeline and publish:

- valid: the command goes out;
- lapsed while a renew is still pending (the store is slow or failing over): the command waits
  for the renew's outcome, at most `hold_s`;
- revoked (the lease was lost or never held), or the wait ran out: `FenceExpired`, nothing sent.

Reads are never fenced. The lease's own commands and a standby's status run inside `exempt()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

from redis.exceptions import RedisError

_EXEMPT: ContextVar[bool] = ContextVar("livermore_fence_exempt", default=False)

UNFENCED = frozenset(
    {
        "GET",
        "MGET",
        "EXISTS",
        "TTL",
        "PTTL",
        "TYPE",
        "STRLEN",
        "HGET",
        "HGETALL",
        "HMGET",
        "HLEN",
        "HKEYS",
        "HVALS",
        "ZCARD",
        "ZCOUNT",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREVRANGE",
        "ZREVRANGEBYSCORE",
        "ZSCORE",
        "SMEMBERS",
        "SISMEMBER",
        "SCARD",
        "LRANGE",
        "LLEN",
        "XLEN",
        "XRANGE",
        "XREVRANGE",
        "XREAD",
        "XREADGROUP",
        "XPENDING",
        "XINFO",
        "SCAN",
        "PING",
        "INFO",
        "CLUSTER",
        "COMMAND",
        "SCRIPT",
        "CLIENT",
        "READONLY",
        "ASKING",
    }
)
"""Commands that never change data (or only a consumer group's read position)."""


class FenceExpired(RedisError):
    """A write was refused on the client: this worker's lease may have lapsed."""


class LeaseFence:
    """The validity deadline of this worker's lease, checked before every write it sends."""

    def __init__(self, *, hold_s: float) -> None:
        self.hold_s = hold_s
        self.valid_until = -math.inf
        self.held = False
        self.refused = 0
        self._changed = asyncio.Event()

    def extend(self, sent_at: float, ttl_s: float, margin_s: float) -> None:
        """Record a successful acquire/renew sent at monotonic `sent_at`."""
        self.valid_until = sent_at + ttl_s - margin_s
        self.held = True
        self._pulse()

    def revoke(self) -> None:
        """The lease is not ours (lost, released or never held): refuse every write from now."""
        self.valid_until = -math.inf
        self.held = False
        self._pulse()

    def valid(self) -> bool:
        """Whether a write may go out right now."""
        return time.monotonic() < self.valid_until

    def remaining_s(self) -> float:
        """Seconds of validity left (negative once lapsed)."""
        return self.valid_until - time.monotonic()

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def admit(self, command: str) -> None:
        """Return when `command` may be sent; raise `FenceExpired` when it may not."""
        if command.upper() in UNFENCED or _EXEMPT.get() or self.valid():
            return
        deadline = time.monotonic() + self.hold_s
        while self.held and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())
            if self.valid():
                return
        self.refused += 1
        raise FenceExpired(f"{command} refused: the lease is not held (fenced)")

    async def admit_all(self, commands: Sequence[Any]) -> None:
        """`admit` each command name of a pipeline (the first fenced one decides)."""
        for name in {str(c).upper() for c in commands}:
            await self.admit(name)


@contextlib.contextmanager
def exempt() -> Iterator[None]:
    """Let the commands sent inside this block through (the lease's own, a standby's status)."""
    token = _EXEMPT.set(True)
    try:
        yield
    finally:
        _EXEMPT.reset(token)
