"""Worker connection status with heartbeat-driven expiry (SPEC 3.4)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from pydantic import TypeAdapter

from livermore_cache import keys
from livermore_cache._lua import STATUS_HEARTBEAT
from livermore_cache.client import RedisClient
from livermore_schema.status import ConnectionStatus

log = structlog.get_logger(__name__)

MISSED_BEATS = 3
"""Heartbeats a worker may miss before its status is stale and its key expires."""

_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _ttl_ms(status: ConnectionStatus, missed_beats: int) -> int:
    return max(1, math.ceil(missed_beats * status.heartbeat_interval_s * 1000))


def _parse(exchange_id: int, raw: Any) -> ConnectionStatus | None:
    """The stored status, or None (logged) when the payload is malformed: readers never fail."""
    if raw is None:
        return None
    try:
        return ConnectionStatus.model_validate_json(raw)
    except ValueError as err:
        log.warning("status.malformed", exchange_id=exchange_id, reason=str(err)[:300])
        return None


class StatusStore:
    """`exchange:status:{id}`: written by the worker, refreshed by its heartbeat, read by anyone.

    The key expires after `missed_beats` heartbeat intervals, so a dead worker's status vanishes.
    """

    def __init__(self, redis: RedisClient, *, missed_beats: int = MISSED_BEATS) -> None:
        self._redis = redis
        self._missed = missed_beats

    async def write(self, status: ConnectionStatus) -> None:
        """Store a status, expiring after `missed_beats` times its heartbeat interval."""
        key = keys.status_key(status.exchange_id)
        await self._redis.set(key, status.model_dump_json(), px=_ttl_ms(status, self._missed))

    async def read(self, exchange_id: int) -> ConnectionStatus | None:
        """Return the status, or None when no live worker wrote one."""
        return _parse(exchange_id, await self._redis.get(keys.status_key(exchange_id)))

    async def read_all(self, exchange_ids: Sequence[int]) -> dict[int, ConnectionStatus | None]:
        """Return each exchange's status (one pipelined GET per key)."""
        pipe = self._redis.pipeline(transaction=False)
        for exchange_id in exchange_ids:
            pipe.get(keys.status_key(exchange_id))
        raws: list[Any] = await pipe.execute()
        return {
            exchange_id: _parse(exchange_id, raw)
            for exchange_id, raw in zip(exchange_ids, raws, strict=True)
        }

    async def heartbeat(self, exchange_id: int, now: datetime) -> ConnectionStatus | None:
        """Set `last_heartbeat = now` and renew the expiry; None when there is no status."""
        beat = _DATETIME.dump_json(now).decode()
        raw = await STATUS_HEARTBEAT.run(
            self._redis, keys.status_key(exchange_id), beat, self._missed
        )
        return None if raw is None else ConnectionStatus.model_validate_json(raw)

    async def liveness(
        self, exchange_id: int, now: datetime
    ) -> tuple[ConnectionStatus | None, bool]:
        """Return the status and whether its worker is alive (present and heartbeat not stale)."""
        status = await self.read(exchange_id)
        alive = status is not None and not status.is_stale(now, self._missed)
        return status, alive

    async def delete(self, exchange_id: int) -> int:
        """Remove the status (a clean shutdown may leave a final `stopped` status instead)."""
        return int(await self._redis.unlink(keys.status_key(exchange_id)))
