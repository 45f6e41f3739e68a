"""Candle sorted sets: tiered writes with the SPEC 3.2 replacement rules, and dual-read."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import structlog
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from livermore_cache import keys
from livermore_cache._lua import CANDLE_CLOSE, CANDLE_WRITE
from livermore_cache.batch import WriteBatch
from livermore_cache.client import RedisClient
from livermore_cache.fence import stale_error
from livermore_cache.holders import Tier2Holders, write_targets
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

log = structlog.get_logger(__name__)

_BATCH = 500
"""Candles per script call in `write_many`, so one call never blocks Redis for long."""
_CLUSTER_CONCURRENCY = 32
"""Script calls of one `write_many` in flight at once on a cluster."""


def _candle_args(candle: Candle) -> tuple[int, str, int, int, str]:
    seq = -1 if candle.sequence is None else candle.sequence
    return (candle.open_time, candle.storage_json(), int(candle.closed), seq, candle.source.value)


def _parse(members: Sequence[Any]) -> list[Candle]:
    return [Candle.model_validate_json(member) for member in members]


class CandleCache:
    """Candles of every (exchange, symbol, timeframe) series, one member per open time.

    Writes go to the Tier 1 key, or to the user's Tier 2 key (with TTL) when `user_id` is given;
    with a `Tier2Holders` map, a write to a holder's key goes to every holder of that symbol.
    Reads try the exchange key, then the user key, then the legacy user-scoped key.
    """

    def __init__(
        self, redis: RedisClient, settings: CacheSettings, *, holders: Tier2Holders | None = None
    ) -> None:
        self._redis = redis
        self._retention = settings.candle_retention
        self._user_ttl = settings.user_candle_ttl_s
        self._holders = holders

    def _targets(self, candle: Candle, user_id: int | None) -> tuple[int | None, ...]:
        return write_targets(self._holders, candle.exchange_id, candle.symbol, user_id)

    # ------------------------------------------------------------------ writes

    def write_key(self, candle: Candle, user_id: int | None = None) -> str:
        """Return the key a candle is written to (Tier 1, or Tier 2 for a user)."""
        if user_id is None:
            return keys.candles_key(candle.exchange_id, candle.symbol, candle.timeframe)
        return keys.user_candles_key(user_id, candle.exchange_id, candle.symbol, candle.timeframe)

    async def write(self, candle: Candle, *, user_id: int | None = None) -> bool:
        """Write one candle under the replacement rules; return whether it was stored."""
        if candle.synthetic:
            return False
        ttl = 0 if user_id is None else self._user_ttl
        stored = False
        for owner in self._targets(candle, user_id):
            written = await CANDLE_WRITE.run(
                self._redis,
                self.write_key(candle, owner),
                self._retention,
                ttl,
                *_candle_args(candle),
            )
            stored = stored or int(written) > 0
        return stored

    def add_write(
        self,
        batch: WriteBatch,
        candle: Candle,
        *,
        user_id: int | None = None,
        announce: Sequence[str] = (),
    ) -> None:
        """Queue `write` of one candle on `batch` (nothing for a synthetic bar).

        `announce`: channels that get the stored JSON right after the write, in the same script
        (`Publisher.close_channels`): one command per closed bar instead of two.
        """
        if candle.synthetic:
            return
        ttl = 0 if user_id is None else self._user_ttl
        args = _candle_args(candle)
        for index, owner in enumerate(self._targets(candle, user_id)):
            said = announce if index == 0 else ()  # announced once, however many holders
            script = CANDLE_CLOSE if said else CANDLE_WRITE
            key = self.write_key(candle, owner)
            batch.add_script(script, key, self._retention, ttl, *args, *said)

    def batch(self) -> WriteBatch:
        """Return an empty `WriteBatch` on this cache's client."""
        return WriteBatch(self._redis)

    async def write_many(self, candles: Sequence[Candle], *, user_id: int | None = None) -> int:
        """Write a batch (one script call per series, pipelined); return how many were stored."""
        ttl = 0 if user_id is None else self._user_ttl
        grouped: dict[str, list[Any]] = {}
        for candle in candles:
            if not candle.synthetic:
                for owner in self._targets(candle, user_id):
                    key = self.write_key(candle, owner)
                    grouped.setdefault(key, []).extend(_candle_args(candle))
        if not grouped:
            return 0
        try:
            try:
                return await self._run_batches(grouped, ttl)
            except NoScriptError:
                await CANDLE_WRITE.load(self._redis)
                await CANDLE_WRITE.guarded.load(self._redis)
                return await self._run_batches(grouped, ttl)
        except ResponseError as err:  # a stale lease epoch is a `StaleEpoch`
            raise stale_error(self._redis, err) from None

    async def _run_batches(self, grouped: dict[str, list[Any]], ttl: int) -> int:
        step = 5 * _BATCH
        calls = [
            (key, args[start : start + step])
            for key, args in grouped.items()
            for start in range(0, len(args), step)
        ]
        if isinstance(self._redis, RedisCluster):
            # A cluster pipeline refuses EVALSHA: each call goes to its key's node on its own,
            # a bounded number at a time (the client spreads them over per-node connections).
            gate = asyncio.Semaphore(_CLUSTER_CONCURRENCY)

            async def one(key: str, chunk: list[Any]) -> int:
                async with gate:
                    return int(
                        await CANDLE_WRITE.run(self._redis, key, self._retention, ttl, *chunk)
                    )

            return sum(await asyncio.gather(*(one(key, chunk) for key, chunk in calls)))
        pipe = self._redis.pipeline(transaction=False)
        for key, chunk in calls:
            script, full = CANDLE_WRITE.invocation(self._redis, key, self._retention, ttl, *chunk)
            pipe.evalsha(script.sha, script.numkeys, *full)
        results = await pipe.execute()
        return sum(int(n) for n in results)

    async def delete_series(
        self, exchange_id: int, symbol: str, timeframe: Timeframe, *, user_id: int | None = None
    ) -> int:
        """Delete the Tier 1 series, or the user's Tier 2 series; legacy keys are left alone."""
        if user_id is None:
            key = keys.candles_key(exchange_id, symbol, timeframe)
        else:
            key = keys.user_candles_key(user_id, exchange_id, symbol, timeframe)
        return int(await self._redis.unlink(key))

    # ------------------------------------------------------------------ reads

    def read_keys(
        self, exchange_id: int, symbol: str, timeframe: Timeframe, user_id: int | None = None
    ) -> list[str]:
        """Return the keys a read tries, in dual-read order."""
        found = [keys.candles_key(exchange_id, symbol, timeframe)]
        if user_id is not None:
            found.append(keys.user_candles_key(user_id, exchange_id, symbol, timeframe))
            found.append(keys.legacy_candles_key(user_id, exchange_id, symbol, timeframe))
        return found

    async def recent(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        count: int,
        *,
        user_id: int | None = None,
    ) -> list[Candle]:
        """Return the newest `count` candles, oldest first."""
        if count <= 0:
            return []
        for key in self.read_keys(exchange_id, symbol, timeframe, user_id):
            members = await self._redis.zrange(key, -count, -1)
            if members:
                return _parse(members)
        return []

    async def between(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        start_ms: int,
        end_ms: int,
        *,
        user_id: int | None = None,
    ) -> list[Candle]:
        """Return candles whose open time is in [start_ms, end_ms], oldest first."""
        for key in self.read_keys(exchange_id, symbol, timeframe, user_id):
            members = await self._redis.zrangebyscore(key, start_ms, end_ms)
            if members:
                return _parse(members)
        return []

    async def latest(
        self, exchange_id: int, symbol: str, timeframe: Timeframe, *, user_id: int | None = None
    ) -> Candle | None:
        """Return the newest candle (closed or not), or None."""
        found = await self.recent(exchange_id, symbol, timeframe, 1, user_id=user_id)
        return found[-1] if found else None

    async def open_times(
        self, exchange_id: int, symbol: str, timeframe: Timeframe, *, user_id: int | None = None
    ) -> list[int]:
        """Return every cached open time (ms), ascending."""
        for key in self.read_keys(exchange_id, symbol, timeframe, user_id):
            pairs: list[Any] = await self._redis.zrange(key, 0, -1, withscores=True)
            if pairs:
                return [int(pair[1]) for pair in pairs]
        return []

    async def count(
        self, exchange_id: int, symbol: str, timeframe: Timeframe, *, user_id: int | None = None
    ) -> int:
        """Return how many candles the first non-empty key holds."""
        for key in self.read_keys(exchange_id, symbol, timeframe, user_id):
            size = int(await self._redis.zcard(key))
            if size:
                return size
        return 0
