"""`RepairStore`: the gap repairs of an exchange that are not finished yet, durable in Redis.

One hash per exchange (`keys.repairs_key`), one field per series (`symbol|timeframe`) holding the
missing open-time range and when the repair began. The worker records a range before it relies on
it being repaired and removes it once the bars are written, so whoever serves the exchange next
(the same worker restarted, or a standby taking over) loads the ranges at start and repairs them.
Every command touches the one key (cluster-safe); a field that does not parse is skipped and logged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import structlog

from livermore_cache import keys
from livermore_cache.client import RedisClient
from livermore_schema.enums import Timeframe

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PendingRepair:
    """A series' missing closed bars: open times in `[since_ms, until_ms)`."""

    symbol: str
    timeframe: Timeframe
    since_ms: int
    until_ms: int
    ready_at_ms: int
    """Exchange time from which REST has the whole range closed."""
    opened_ms: int
    """Wall-clock time (epoch ms) the repair began: its age on the status page."""
    reason: str = "inherited"
    contiguous: bool = False
    """The venue has a bar for every interval, so REST must return every one of them."""


def _field(symbol: str, timeframe: Timeframe) -> str:
    return f"{symbol}|{timeframe.value}"


def _body(repair: PendingRepair) -> str:
    fields = asdict(repair)
    return json.dumps({k: v for k, v in fields.items() if k not in ("symbol", "timeframe")})


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _parse(field: str, raw: str) -> PendingRepair | None:
    try:
        symbol, timeframe = field.rsplit("|", 1)
        body = json.loads(raw)
        return PendingRepair(
            symbol=symbol,
            timeframe=Timeframe(timeframe),
            since_ms=int(body["since_ms"]),
            until_ms=int(body["until_ms"]),
            ready_at_ms=int(body["ready_at_ms"]),
            opened_ms=int(body["opened_ms"]),
            reason=str(body.get("reason", "inherited")),
            contiguous=bool(body.get("contiguous", False)),
        )
    except (ValueError, KeyError, TypeError) as err:
        log.warning("repairs.malformed", field=field, reason=str(err)[:200])
        return None


class RepairStore:
    """`repairs:{exchange_id}`: record, remove and load an exchange's unfinished repairs."""

    def __init__(self, redis: RedisClient, exchange_id: int) -> None:
        self._redis = redis
        self._key = keys.repairs_key(exchange_id)

    async def record(self, *repairs: PendingRepair) -> None:
        """Store (or replace) series' pending ranges: one HSET."""
        if not repairs:
            return
        mapping: dict[str | bytes, str | bytes] = {
            _field(r.symbol, r.timeframe): _body(r) for r in repairs
        }
        await self._redis.hset(self._key, mapping=mapping)  # type: ignore[arg-type]

    async def remove(self, series: Sequence[tuple[str, Timeframe]]) -> None:
        """Forget the pending ranges of `series` (repaired and written)."""
        if series:
            fields = [_field(symbol, timeframe) for symbol, timeframe in series]
            await self._redis.hdel(self._key, *fields)

    async def load(self) -> list[PendingRepair]:
        """Return every pending range, oldest repair first."""
        raw = await self._redis.hgetall(self._key)
        found = [_parse(_text(f), _text(v)) for f, v in raw.items()]
        return sorted((r for r in found if r is not None), key=lambda r: r.opened_ms)
