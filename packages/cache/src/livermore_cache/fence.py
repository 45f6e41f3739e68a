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

The deadline relies on the worker's own clock and on nothing being delayed between the check and
the server (a process frozen with a request in flight, a retransmission). Behind it, Redis fences
too: every acquisition of the lease draws a strictly increasing *epoch* (`lease_epoch_key`, INCR
in the same script that takes the lease), and the candle, indicator and alert-state scripts
(`LuaScript` with `fenced=True`) run, for a client with a fence, as a guarded variant that first
compares the writer's epoch with the newest one recorded in a small fence record in the *same
slot* as the written key (`fence_record_key`: on a cluster one hash per slot, named with a hash
tag that maps to that slot; on one node a single hash), field = exchange id:

- an older epoch than the record: the script writes nothing and answers `STALEEPOCH`; the client
  counts it (`LeaseFence.rejected`), logs it, revokes the fence and sets `stale` (the worker steps
  down), and raises `StaleEpoch`;
- otherwise the record is raised to the writer's epoch (if lower) and the script runs.

So once a new holder has written into a slot, no write of an older holder reaches a key of that
slot, whatever its clock or its network did. A `WriteBatch` on one node checks the epoch once per
dispatcher call, before any of its commands (plain ones too) runs. Elsewhere plain commands
(PUBLISH of tickers, ticker and order-book SETs outside a batch on a cluster) are guarded by the
deadline only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import structlog
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from livermore_cache import keys

log = structlog.get_logger(__name__)

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


class StaleEpoch(FenceExpired):
    """A write was rejected by Redis: a holder with a newer lease epoch wrote into its slot."""


STALE_REPLY = "STALEEPOCH"
"""The error a guarded script answers to a stale writer."""


class LeaseFence:
    """The validity deadline of this worker's lease, checked before every write it sends."""

    def __init__(self, *, hold_s: float, scope: str = "") -> None:
        self.hold_s = hold_s
        self.scope = scope
        """What the lease is for (the exchange id): the field of the fence records."""
        self.valid_until = -math.inf
        self.held = False
        self.epoch: int | None = None
        """The epoch of the current (or last) acquisition; None before the first."""
        self.refused = 0
        """Writes refused on the client (deadline passed or lease not held)."""
        self.rejected = 0
        """Writes rejected by Redis (a newer epoch had written into their slot)."""
        self.stale = asyncio.Event()
        """Set by a rejected write: a newer holder exists, this one must step down."""
        self._changed = asyncio.Event()

    def extend(
        self, sent_at: float, ttl_s: float, margin_s: float, epoch: int | None = None
    ) -> None:
        """Record a successful acquire/renew sent at monotonic `sent_at` (with its epoch)."""
        if epoch is not None and epoch != self.epoch:
            self.epoch = epoch
            self.stale.clear()  # a new term: earlier rejections were of the old one
        self.valid_until = sent_at + ttl_s - margin_s
        self.held = True
        self._pulse()

    def reject(self, detail: str) -> StaleEpoch:
        """Count a write Redis rejected as stale and return the error.

        When it carried the current epoch, a newer holder exists: every write is refused from
        now and `stale` is set (a late reply to a write of an earlier term changes nothing).
        """
        self.rejected += 1
        log.error("fence.write_rejected", epoch=self.epoch, scope=self.scope, detail=detail[:200])
        words = detail.split()
        sent = int(words[3]) if len(words) > 3 and words[3].isdigit() else self.epoch
        if sent == self.epoch:
            self.revoke()
            self.stale.set()
        return StaleEpoch(detail)

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

    async def until_valid(self, within_s: float) -> bool:
        """Wait up to `within_s` for the lease to be valid; return whether it is."""
        deadline = time.monotonic() + within_s
        while not self.valid():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return True

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


def guard_of(redis: Any) -> tuple[LeaseFence, int] | None:
    """Return the fence and epoch `redis`'s guarded scripts carry now (None: run them plain)."""
    fence = getattr(redis, "fence", None)
    if not isinstance(fence, LeaseFence) or fence.epoch is None or _EXEMPT.get():
        return None
    return fence, fence.epoch


def stale_error(redis: Any, err: BaseException) -> BaseException:
    """Return `err`, or the `StaleEpoch` it means (counted on `redis`'s fence)."""
    text = str(err)
    at = text.find(STALE_REPLY)  # a pipeline quotes the reply inside its own message
    if not isinstance(err, ResponseError) or at < 0:
        return err
    detail = text[at:].removesuffix("',)")
    fence = getattr(redis, "fence", None)
    return fence.reject(detail) if isinstance(fence, LeaseFence) else StaleEpoch(detail)


_SLOT_TAGS: list[str] = []


def _slot_tags() -> list[str]:
    """Return a short hash tag for every cluster slot (built once: ~0.1 s)."""
    if not _SLOT_TAGS:
        tags: list[str | None] = [None] * 16384
        left, n = 16384, 0
        while left:
            tag = format(n, "x")
            slot = key_slot(tag.encode())
            if tags[slot] is None:
                tags[slot] = tag
                left -= 1
            n += 1
        _SLOT_TAGS.extend(t for t in tags if t is not None)
    return _SLOT_TAGS


def fence_record_key(key: str, *, cluster: bool) -> str:
    """Return the fence record guarding `key`: in its slot on a cluster, one record otherwise."""
    if not cluster:
        return keys.fence_key("0")
    return keys.fence_key(_slot_tags()[key_slot(key.encode())])


@contextlib.contextmanager
def exempt() -> Iterator[None]:
    """Let the commands sent inside this block through (the lease's own, a standby's status)."""
    token = _EXEMPT.set(True)
    try:
        yield
    finally:
        _EXEMPT.reset(token)
