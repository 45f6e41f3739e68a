"""Indicator values: tiered writes with TTL and dual-read (SPEC 3.2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livermore_cache import keys
from livermore_cache._lua import SET_PUBLISH
from livermore_cache.batch import WriteBatch
from livermore_cache.client import RedisClient
from livermore_cache.holders import Tier2Holders, write_targets
from livermore_schema.enums import IndicatorType, Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.settings import CacheSettings


class IndicatorCache:
    """The latest indicator reading of each series, expiring after `indicator_ttl_s` (25 h).

    With a `Tier2Holders` map, a write to a holder's key goes to every holder of that symbol.
    """

    def __init__(
        self, redis: RedisClient, settings: CacheSettings, *, holders: Tier2Holders | None = None
    ) -> None:
        self._redis = redis
        self._ttl = settings.indicator_ttl_s
        self._holders = holders

    def _targets(self, value: IndicatorValue, user_id: int | None) -> tuple[int | None, ...]:
        return write_targets(self._holders, value.exchange_id, value.symbol, user_id)

    def write_key(self, value: IndicatorValue, user_id: int | None = None) -> str:
        """Return the key a value is written to (Tier 1, or Tier 2 for a user)."""
        if user_id is None:
            return keys.indicator_key(value.exchange_id, value.symbol, value.timeframe, value.type)
        return keys.user_indicator_key(
            user_id, value.exchange_id, value.symbol, value.timeframe, value.type
        )

    async def write(self, value: IndicatorValue, *, user_id: int | None = None) -> None:
        """Store a reading with the indicator TTL."""
        payload = value.model_dump_json()
        for owner in self._targets(value, user_id):
            await SET_PUBLISH.run(self._redis, self.write_key(value, owner), payload, self._ttl)

    def add_write(
        self,
        batch: WriteBatch,
        value: IndicatorValue,
        *,
        user_id: int | None = None,
        announce: Sequence[str] = (),
    ) -> None:
        """Queue `write` of one reading on `batch`; then its PUBLISH to `announce`, if given.

        A reading of a Tier 2 symbol held by several users goes to each holder's key and is
        announced once.
        """
        self.add_payload(
            batch,
            (value.exchange_id, value.symbol, value.timeframe, value.type),
            value.model_dump_json(),
            user_id=user_id,
            announce=announce,
        )

    def add_payload(
        self,
        batch: WriteBatch,
        series: tuple[int, str, Timeframe, IndicatorType],
        payload: str,
        *,
        user_id: int | None = None,
        announce: Sequence[str] = (),
    ) -> None:
        """`add_write` of a reading already serialised (`payload`: the model's exact JSON).

        `series`: the reading's (exchange id, symbol, timeframe, indicator type).
        """
        exchange_id, symbol, timeframe, indicator = series
        targets = write_targets(self._holders, exchange_id, symbol, user_id)
        for index, owner in enumerate(targets):
            if owner is None:
                key = keys.indicator_key(exchange_id, symbol, timeframe, indicator)
            else:
                key = keys.user_indicator_key(owner, exchange_id, symbol, timeframe, indicator)
            said = announce if index == 0 else ()  # a script: the lease epoch is checked
            batch.add_script(SET_PUBLISH, key, payload, self._ttl, *said)

    def read_keys(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        indicator: IndicatorType = IndicatorType.MACD_V,
        user_id: int | None = None,
    ) -> list[str]:
        """Return the keys a read tries, in dual-read order."""
        found = [keys.indicator_key(exchange_id, symbol, timeframe, indicator)]
        if user_id is not None:
            found.append(
                keys.user_indicator_key(user_id, exchange_id, symbol, timeframe, indicator)
            )
            found.append(
                keys.legacy_indicator_key(user_id, exchange_id, symbol, timeframe, indicator)
            )
        return found

    async def read(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        indicator: IndicatorType = IndicatorType.MACD_V,
        *,
        user_id: int | None = None,
    ) -> IndicatorValue | None:
        """Return the first reading found in dual-read order, or None."""
        for key in self.read_keys(exchange_id, symbol, timeframe, indicator, user_id):
            raw = await self._redis.get(key)
            if raw is not None:
                return IndicatorValue.model_validate_json(raw)
        return None

    async def read_many(
        self,
        exchange_id: int,
        symbol: str,
        timeframes: Sequence[Timeframe],
        indicator: IndicatorType = IndicatorType.MACD_V,
        *,
        user_id: int | None = None,
    ) -> dict[Timeframe, IndicatorValue | None]:
        """Return each timeframe's reading (None when absent); pipelined GETs, one per key."""
        found: dict[Timeframe, IndicatorValue | None] = dict.fromkeys(timeframes)
        tiers = 3 if user_id is not None else 1
        for tier in range(tiers):
            missing = [tf for tf, value in found.items() if value is None]
            if not missing:
                break
            pipe = self._redis.pipeline(transaction=False)
            for timeframe in missing:
                pipe.get(self.read_keys(exchange_id, symbol, timeframe, indicator, user_id)[tier])
            raws: list[Any] = await pipe.execute()
            for timeframe, raw in zip(missing, raws, strict=True):
                if raw is not None:
                    found[timeframe] = IndicatorValue.model_validate_json(raw)
        return found
