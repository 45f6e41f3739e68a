from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from livermore_cache import channels
from livermore_cache.pubsub import (
    Publisher,
    Subscription,
    alert_stream,
    lifecycle_stream,
    subscribe,
)
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertDirection, Bias, ConnectionState, Timeframe
from livermore_schema.market import Candle, Ticker
from livermore_schema.settings import CacheSettings
from livermore_schema.status import LifecycleEvent

from ._factories import candle

M = TypeVar("M", Candle, AlertEvent)
NOW = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
EXCHANGE_CLOSE = "channel:exchange:1:candle:close:BTC-USD:5m"
LEGACY_CLOSE = "channel:candle:close:7:1:BTC-USD:5m"


def alert(exchange_id: int, value: float = -150.0) -> AlertEvent:
    return AlertEvent(
        exchange_id=exchange_id,
        symbol="BTCUSDT",
        timeframe=Timeframe.H1,
        trigger_label="level_-150",
        trigger_value=value,
        signal_delta=None,
        price=42000.0,
        triggered_at=NOW,
        timeframes=[],
        bias=Bias.BEARISH,
        source_exchange_id=exchange_id,
        source_exchange_name="binance",
        direction=AlertDirection.DOWN,
    )


async def next_item(sub: Subscription[M]) -> tuple[str, M]:
    return await asyncio.wait_for(anext(aiter(sub)), timeout=5)


async def test_candle_close_round_trip_with_legacy_twin_for_a_user(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings(legacy_channels=True))
    bar = candle(0)
    async with Subscription(redis, model=Candle, channels=[EXCHANGE_CLOSE, LEGACY_CLOSE]) as sub:
        assert await publisher.publish_candle_close(bar, user_id=7) == 2
        got = [await next_item(sub), await next_item(sub)]
    assert got == [(EXCHANGE_CLOSE, bar), (LEGACY_CLOSE, bar)]


async def test_no_legacy_twin_without_user_or_when_disabled(redis: Redis) -> None:
    async with Subscription(redis, model=Candle, patterns=["channel:candle:close:*"]) as legacy:
        on = Publisher(redis, CacheSettings(legacy_channels=True))
        off = Publisher(redis, CacheSettings(legacy_channels=False))
        assert await on.publish_candle_close(candle(0)) == 0
        assert await off.publish_candle_close(candle(1), user_id=7) == 0
        # a marker proves the two publishes above really produced nothing on legacy channels
        assert await on.publish_candle_close(candle(2), user_id=9) == 1
        channel, item = await next_item(legacy)
    assert channel == "channel:candle:close:9:1:BTC-USD:5m"
    assert isinstance(item, Candle) and item.open_time == candle(2).open_time


async def test_unfinished_or_synthetic_candle_is_not_published(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings())
    with pytest.raises(ValueError, match="closed"):
        await publisher.publish_candle_close(candle(0, closed=False))
    with pytest.raises(ValueError, match="synthetic"):
        await publisher.publish_candle_close(candle(0, synthetic=True))


async def test_malformed_payload_is_logged_and_skipped(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings())
    async with alert_stream(redis, [3]) as sub:
        await redis.publish(channels.alerts_channel(3), "{not json")
        await redis.publish(channels.alerts_channel(3), '{"exchange_id": 3}')
        with capture_logs() as logs:
            await publisher.publish_alert(alert(3))
            channel, item = await next_item(sub)
    assert channel == "channel:alerts:3"
    assert item == alert(3).model_copy(update={"id": item.id}) and isinstance(item, AlertEvent)
    malformed = [e for e in logs if e["event"] == "pubsub.malformed_payload"]
    assert len(malformed) == 2
    assert all(e["channel"] == "channel:alerts:3" for e in malformed)
    assert "json" in malformed[0]["reason"].lower()
    assert "field required" in malformed[1]["reason"].lower()


async def test_alert_stream_follows_every_exchange_by_pattern(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings())
    async with alert_stream(redis) as sub:
        for exchange_id in (1, 2, 3):
            await publisher.publish_alert(alert(exchange_id))
        got = [await next_item(sub) for _ in range(3)]
    assert [channel for channel, _ in got] == [
        "channel:alerts:1",
        "channel:alerts:2",
        "channel:alerts:3",
    ]


async def test_alert_stream_with_explicit_exchanges_ignores_others(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings())
    async with alert_stream(redis, [2]) as sub:
        assert await publisher.publish_alert(alert(1)) == 0
        assert await publisher.publish_alert(alert(2, -200.0)) == 1
        channel, item = await next_item(sub)
    assert channel == "channel:alerts:2" and isinstance(item, AlertEvent)
    assert item.trigger_value == -200.0


async def test_lifecycle_and_ticker_round_trip(redis: Redis) -> None:
    publisher = Publisher(redis, CacheSettings())
    event = LifecycleEvent(
        exchange_id=2, exchange_name="binance", state=ConnectionState.CONNECTED, timestamp=NOW
    )
    async with lifecycle_stream(redis) as sub:
        assert await publisher.publish_lifecycle(event) == 1
        assert await asyncio.wait_for(anext(aiter(sub)), 5) == (
            "channel:exchange:2:lifecycle",
            event,
        )
    ticker = Ticker(exchange_id=1, exchange="coinbase", symbol="BTC-USD", price=1.5, timestamp=1)
    gen = subscribe(redis, model=Ticker, channels=[channels.ticker_channel(1, "BTC-USD")])
    waiter = asyncio.ensure_future(anext(gen))
    try:
        async with asyncio.timeout(5):
            # a bare generator has no readiness hook: poll (bounded) until its SUBSCRIBE landed
            while await publisher.publish_ticker(ticker) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0)
            assert await waiter == ("channel:ticker:1:BTC-USD", ticker)
    finally:
        waiter.cancel()
        await gen.aclose()


def test_subscription_requires_a_channel(redis_settings: object) -> None:
    with pytest.raises(ValueError, match="at least one"):
        Subscription(None, model=Candle)  # type: ignore[arg-type]
