"""One worker per exchange: a Redis lease, and the running state a standby resumes from.

The lease is `SET lease_key NX PX ttl` holding the worker id; the holder extends it on every
heartbeat with a compare-and-extend script, so a worker that lost it (it stalled past the TTL and
another took over) can never extend someone else's lease. The TTL is a few heartbeats: a worker
killed with -9 stops renewing and a standby polling the key takes over when it lapses.

Fencing: every successful acquire or renew extends the client's `LeaseFence` to the send time
plus the TTL minus a margin (monotonic), so the worker's writes stop before the lease can have
lapsed on the server; a renew that finds the key gone (it lapsed while the store failed over and
nobody took it) takes it again, one that finds another holder revokes the fence.

Every acquisition (a free lease taken, or a lapsed one taken back) draws the next lease epoch in
the same script (`lease_epoch_key`, in the lease key's slot): the fencing token the worker's
guarded write scripts carry, so Redis itself rejects a write of an older holder once a newer one
has written into the same slot (`livermore_cache.fence`).

The active worker persists its running state (started, paused, mode, symbol set, user) in
`worker_state_key`, so whoever holds the lease next resumes exactly where it left off; a clean
shutdown saves it as stopped, so that the next worker starts idle.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_cache.fence import LeaseFence, exempt
from livermore_schema.enums import SymbolTier, WorkerMode

_TAKE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {2, redis.call('INCR', KEYS[2])}
end
return {0, 0}
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(raw: Any) -> str | None:
    if raw is None:
        return None
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class ExchangeLease:
    """The lease that makes one worker the active one for an exchange."""

    def __init__(
        self,
        redis: RedisClient,
        exchange_id: int,
        holder: str,
        ttl_s: float,
        fence: LeaseFence | None = None,
    ) -> None:
        self._redis = redis
        self._key = keys.lease_key(exchange_id)
        self._holder = holder
        self._ttl_s = ttl_s
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._epoch_key = keys.lease_epoch_key(self._key)
        self._take = redis.register_script(_TAKE)
        self._release = redis.register_script(_RELEASE)
        self.fence = fence or LeaseFence(hold_s=0)
        self.fence.scope = str(exchange_id)

    @property
    def holder(self) -> str:
        """This worker's id, the value it writes into the lease."""
        return self._holder

    @property
    def margin_s(self) -> float:
        """How long before the server-side expiry the worker stops writing."""
        return max(0.2, self._ttl_s / 4)

    @property
    def epoch(self) -> int | None:
        """The epoch of this worker's latest acquisition (None before the first)."""
        return self.fence.epoch

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or keep it if we do); return whether we hold it."""
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease if we hold it, or take it if it is free (a new epoch).

        Returns whether we hold it; when not, the fence is revoked before returning.
        """
        sent_at = time.monotonic()
        try:
            with exempt():
                code, epoch = await self._take(
                    keys=[self._key, self._epoch_key], args=[self._holder, self._ttl_ms]
                )
        except Exception:
            if not self.fence.valid():
                self.fence.revoke()  # no answer and no validity left: stop waiting writers
            raise
        if int(code):
            self.fence.extend(sent_at, self._ttl_s, self.margin_s, int(epoch))
            return True
        self.fence.revoke()
        return False

    async def release(self) -> None:
        """Give the lease up (only if it is ours) so a standby takes over at once."""
        self.fence.revoke()
        with exempt():
            await self._release(keys=[self._key], args=[self._holder])

    async def current_holder(self) -> str | None:
        """Return who holds the lease now, if anyone."""
        return _text(await self._redis.get(self._key))


class StreamedSymbol(BaseModel):
    """One symbol of the running set, with the tier keys it writes."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    tier: SymbolTier = SymbolTier.TIER_1
    user_id: int | None = None
    manual: bool = False
    """Added by a command (kept by reload-settings) rather than by the symbol sources."""
    holders: tuple[int, ...] = ()
    """Tier 2: every user whose keys the symbol writes (`user_id`, the read owner, first)."""

    def all_holders(self) -> tuple[int, ...]:
        """Return the Tier 2 holders (`user_id` alone for a state persisted without them)."""
        if self.holders:
            return self.holders
        return () if self.user_id is None else (self.user_id,)


class RunningState(BaseModel):
    """What the active worker is doing, persisted so a standby can resume it."""

    model_config = ConfigDict(frozen=True)

    started: bool = False
    paused: bool = False
    mode: WorkerMode = WorkerMode.POSITION_MONITOR
    symbols: tuple[StreamedSymbol, ...] = ()
    username: str | None = None
    holder: str | None = None


class RunningStateStore:
    """`worker_state_key(exchange_id)`: read by a worker taking over, written on every change."""

    def __init__(self, redis: RedisClient, exchange_id: int) -> None:
        self._redis = redis
        self._key = keys.worker_state_key(exchange_id)

    async def read(self) -> RunningState | None:
        """Return the persisted state, if any."""
        raw = await self._redis.get(self._key)
        return None if raw is None else RunningState.model_validate_json(raw)

    async def write(self, state: RunningState) -> None:
        """Persist the state (no TTL: it outlives the worker on purpose)."""
        await self._redis.set(self._key, state.model_dump_json())
