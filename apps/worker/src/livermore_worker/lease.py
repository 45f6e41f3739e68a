"""One worker per exchange: a Redis lease, and the running state a standby resumes from.

The lease is `SET lease_key NX PX ttl` holding the worker id; the holder extends it on every
heartbeat with a compare-and-extend script, so a worker that lost it (it stalled past the TTL and
another took over) can never extend someone else's lease. The TTL is a few heartbeats: a worker
killed with -9 stops renewing and a standby polling the key takes over when it lapses.

The active worker persists its running state (started, paused, mode, symbol set, user) in
`worker_state_key`, so whoever holds the lease next resumes exactly where it left off; a clean
shutdown saves it as stopped, so that the next worker starts idle.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_schema.enums import SymbolTier, WorkerMode

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
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

    def __init__(self, redis: RedisClient, exchange_id: int, holder: str, ttl_s: float) -> None:
        self._redis = redis
        self._key = keys.lease_key(exchange_id)
        self._holder = holder
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._extend = redis.register_script(_EXTEND)
        self._release = redis.register_script(_RELEASE)

    @property
    def holder(self) -> str:
        """This worker's id, the value it writes into the lease."""
        return self._holder

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it (or keep it if we do); return whether we hold it."""
        if await self._redis.set(self._key, self._holder, nx=True, px=self._ttl_ms):
            return True
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease if we still hold it; return whether we do."""
        return int(await self._extend(keys=[self._key], args=[self._holder, self._ttl_ms])) == 1

    async def release(self) -> None:
        """Give the lease up (only if it is ours) so a standby takes over at once."""
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
