"""Lease epochs: Redis itself rejects the writes of an older lease holder (one node and cluster).

The old holder's client-side deadline is still valid in these tests (as for a process frozen with
a write in flight), so only the epoch carried by the write scripts stands between it and the data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from livermore_cache import CandleCache, IndicatorCache, keys
from livermore_cache.client import RedisClient, connect_redis
from livermore_cache.fence import LeaseFence, StaleEpoch, fence_record_key
from livermore_exchange_core.alerts.claims import COOLDOWN_SCRIPT
from livermore_schema.enums import CandleSource, IndicatorType, Liquidity, Stage, Timeframe
from livermore_schema.indicators import IndicatorValue, MacdVValues
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings, RedisSettings
from livermore_worker.lease import ExchangeLease

EXCHANGE = 5
OPEN_MS = 1_700_000_100_000 - (1_700_000_100_000 % 300_000)


def _candle(close: float, index: int = 0) -> Candle:
    open_time = OPEN_MS + index * 300_000
    return Candle(
        exchange_id=EXCHANGE, exchange="binance", symbol="BTC-USDT", timeframe=Timeframe.M5,
        open_time=open_time, close_time=open_time + 299_999, open=close, high=close + 1,
        low=close - 1, close=close, volume=1.0, closed=False, source=CandleSource.WS,
    )  # fmt: skip


def _reading(macd_v: float) -> IndicatorValue:
    return IndicatorValue(
        exchange_id=EXCHANGE, symbol="BTC-USDT", timeframe=Timeframe.M5, open_time=OPEN_MS,
        value=MacdVValues(
            macd_v=macd_v, signal=1.0, histogram=1.0, fast_ema=1.0, slow_ema=1.0, atr=1.0
        ),
        stage=Stage.RANGING, liquidity=Liquidity.HIGH, gap_ratio=0.0, seeded=True, n_eff=26,
    )  # fmt: skip


class Holder:
    """A worker's store side: its fenced client, lease and caches."""

    def __init__(self, settings: RedisSettings, name: str) -> None:
        self.fence = LeaseFence(hold_s=5)
        self.redis: RedisClient = connect_redis(settings, fence=self.fence, client_name=name)
        self.lease = ExchangeLease(self.redis, EXCHANGE, name, ttl_s=5, fence=self.fence)
        self.candles = CandleCache(self.redis, CacheSettings())
        self.indicators = IndicatorCache(self.redis, CacheSettings())

    async def write_all(self, close: float) -> None:
        """Write one candle (alone and in bulk), one reading and one cooldown in one batch."""
        await self.candles.write(_candle(close))
        await self.candles.write_many([_candle(close, 1), _candle(close, 2)])
        await self.flush_batch(close)

    async def flush_batch(self, close: float) -> None:
        """Write a reading and a cooldown in one `WriteBatch`, as the pipeline does."""
        batch = self.candles.batch()
        self.indicators.add_write(batch, _reading(close))
        batch.add_script(COOLDOWN_SCRIPT, _cooldown_key(), int(close), 1, 60_000)
        await batch.flush()


def _cooldown_key() -> str:
    return keys.alert_cooldown_key(EXCHANGE, "BTC-USDT", Timeframe.M5, "label")


async def _snapshot(redis: Any) -> dict[str, Any]:
    candles = keys.candles_key(EXCHANGE, "BTC-USDT", Timeframe.M5)
    reading = await redis.get(
        keys.indicator_key(EXCHANGE, "BTC-USDT", Timeframe.M5, IndicatorType.MACD_V)
    )
    return {
        "candles": await redis.zrange(candles, 0, -1),
        "indicator": reading,
        "cooldown": await redis.get(_cooldown_key()),
    }


async def test_redis_rejects_a_stale_holder_s_writes_on_one_node(
    redis: Any, redis_settings: RedisSettings
) -> None:
    await _stale_writes_are_rejected(redis_settings)


async def test_redis_rejects_a_stale_holder_s_writes_on_the_cluster(
    redis_cluster: Any, redis_cluster_settings: RedisSettings
) -> None:
    await _stale_writes_are_rejected(redis_cluster_settings)


async def _stale_writes_are_rejected(store: RedisSettings) -> None:
    """Old holder (epoch N) writes after the new one (N+1) wrote: rejected, keys unchanged."""
    old, new = Holder(store, "worker-old"), Holder(store, "worker-new")
    plain = connect_redis(store)
    try:
        assert await old.lease.acquire()
        first = old.lease.epoch
        assert first is not None
        await old.write_all(100.0)
        # The old holder stalls: its lease lapses on the server (deleted here) and the standby
        # takes it, while the old one's deadline is still valid on its own clock.
        await plain.delete(keys.lease_key(EXCHANGE))
        assert await new.lease.acquire()
        assert new.lease.epoch == first + 1
        await new.write_all(200.0)
        before = await _snapshot(plain)
        assert old.fence.valid() and not old.fence.stale.is_set()

        with pytest.raises(StaleEpoch):
            await old.candles.write(_candle(300.0))
        assert old.fence.rejected == 1 and old.fence.stale.is_set() and not old.fence.valid()
        # the client fence refuses from now on; with its validity given back, Redis still
        # rejects each kind of write by itself
        writes: list[Callable[[], Awaitable[Any]]] = [
            lambda: old.candles.write_many([_candle(300.0, 1)]),
            lambda: old.indicators.write(_reading(300.0)),
            lambda: COOLDOWN_SCRIPT.run(old.redis, _cooldown_key(), 300, 1, 60_000),
            lambda: old.flush_batch(300.0),
        ]
        for write in writes:
            old.fence.valid_until = float("inf")  # as if its deadline were still ahead
            with pytest.raises(StaleEpoch):
                await write()
        old.fence.valid_until = float("inf")
        with pytest.raises(StaleEpoch):
            await old.write_all(300.0)  # a batch: the first rejected script raises
        assert old.fence.rejected == 6
        assert await _snapshot(plain) == before
        record = await plain.hgetall(fence_record_key(keys.candles_key(EXCHANGE, "BTC-USDT",
                                     Timeframe.M5), cluster=store.cluster))  # fmt: skip
        assert record == {str(EXCHANGE): str(first + 1)}
        # the new holder writes on; the old one, once it holds the lease again, gets a newer epoch
        await new.write_all(400.0)
        await new.lease.release()
        assert await old.lease.acquire() and old.lease.epoch == first + 2
        assert not old.fence.stale.is_set()
        await old.write_all(500.0)
        assert (await _snapshot(plain))["cooldown"] == "500"
    finally:
        for client in (old.redis, new.redis, plain):
            await client.aclose()
