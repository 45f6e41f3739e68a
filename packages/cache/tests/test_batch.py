from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.exceptions import ResponseError

from livermore_cache import channels
from livermore_cache.candles import CandleCache
from livermore_cache.indicators import IndicatorCache
from livermore_cache.pubsub import Publisher
from livermore_schema.enums import Timeframe
from livermore_schema.settings import CacheSettings

from ._factories import candle, indicator


async def test_a_batch_writes_and_publishes_in_order_in_one_flush(redis: Any) -> None:
    settings = CacheSettings()
    candles, indicators = CandleCache(redis, settings), IndicatorCache(redis, settings)
    publisher = Publisher(redis, settings)
    bar, value = candle(5, close=123.0), indicator(Timeframe.M5)
    close_channel = channels.candle_close_channel(1, bar.symbol, bar.timeframe)
    seen: list[tuple[str, bool, bool]] = []
    pubsub = redis.pubsub()
    await pubsub.subscribe(
        close_channel, channels.indicator_channel(1, value.symbol, value.timeframe, value.type)
    )

    async def listen() -> None:
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            # what a reader finds in the cache the moment the message arrives
            stored_bar = await candles.latest(1, bar.symbol, bar.timeframe)
            stored_value = await indicators.read(1, value.symbol, value.timeframe)
            seen.append((message["channel"], stored_bar == bar, stored_value == value))
            if len(seen) == 2:
                return

    task = asyncio.create_task(listen())
    batch = candles.batch()
    candles.add_write(batch, bar)
    publisher.add_candle_close(batch, bar)
    indicators.add_write(batch, value)
    publisher.add_indicator(batch, value)
    assert len(batch) == 4
    replies = await batch.flush()
    assert [int(replies[0]), int(replies[1]), replies[2], int(replies[3])] == [1, 1, True, 1]
    assert len(batch) == 0 and await batch.flush() == []
    await asyncio.wait_for(task, 5)
    await pubsub.aclose()
    assert seen == [(close_channel, True, True), (seen[1][0], True, True)]
    assert 0 < await redis.ttl(indicators.write_key(value)) <= settings.indicator_ttl_s


async def test_a_batch_never_needs_the_script_cached(redis: Any) -> None:
    settings = CacheSettings()
    candles = CandleCache(redis, settings)
    await redis.script_flush()
    batch = candles.batch()
    candles.add_write(batch, candle(1), user_id=9)
    candles.add_write(batch, candle(2, synthetic=True))  # synthetic bars are never stored
    assert len(batch) == 1
    assert [int(n) for n in await batch.flush()] == [1]
    assert await candles.latest(1, "BTC-USD", Timeframe.M5, user_id=9) == candle(1)
    assert 0 < await redis.ttl(candles.write_key(candle(1), 9)) <= settings.user_candle_ttl_s


async def test_a_failing_command_raises_and_is_not_sent_again(redis: Any) -> None:
    candles = CandleCache(redis, CacheSettings())
    batch = candles.batch()
    batch.add("NOSUCHCOMMAND")
    with pytest.raises(ResponseError):
        await batch.flush()
    assert await batch.flush() == []


async def test_only_closed_real_candles_can_be_queued_for_publishing(redis: Any) -> None:
    batch = CandleCache(redis, CacheSettings()).batch()
    with pytest.raises(ValueError, match="only real closed candles"):
        Publisher(redis, CacheSettings()).add_candle_close(batch, candle(0, closed=False))
    assert len(batch) == 0
