"""The Redis namespace: builders prefix it, parsers strip it, deployments stay apart."""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import CandleCache, channels, keys
from livermore_cache.client import connect_redis
from livermore_cache.pubsub import Publisher, alert_stream
from livermore_schema.enums import IndicatorType, Timeframe
from livermore_schema.settings import CacheSettings, RedisSettings

from ._factories import candle
from .test_pubsub import alert

_SAMPLES: dict[str, Any] = {
    "int": 7,
    "str": "BTC-USD",
    "Timeframe": Timeframe.M5,
    "IndicatorType": IndicatorType.MACD_V,
    "int | str": 7,
}


@pytest.fixture
def namespace() -> Iterator[str]:
    keys.set_namespace("tenant-a")
    try:
        yield "tenant-a"
    finally:
        keys.set_namespace("")


def _builders(module: types.ModuleType) -> list[tuple[str, Callable[..., str]]]:
    return [
        (name, fn)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn)
        and not name.startswith(("_", "parse_"))
        and name.endswith(("_key", "_channel", "_pattern"))
    ]


def _call(fn: Callable[..., str]) -> str:
    params = inspect.signature(fn).parameters.values()
    return fn(
        *[_SAMPLES[str(p.annotation)] for p in params if p.default is inspect.Parameter.empty]
    )


@pytest.mark.parametrize("module", [keys, channels])
def test_every_builder_prefixes_the_namespace(module: types.ModuleType, namespace: str) -> None:
    builders = _builders(module)
    assert len(builders) >= 8
    for name, fn in builders:
        keys.set_namespace("")
        bare = _call(fn)
        keys.set_namespace(namespace)
        assert _call(fn) == f"{namespace}:{bare}", name
    assert f"{namespace}:channel:alerts:*" == channels.ALL_ALERTS_PATTERN


def test_parsers_strip_the_namespace(namespace: str) -> None:
    key = keys.candles_key(3, "ETH-USD", Timeframe.H1)
    assert key == f"{namespace}:candles:3:ETH-USD:1h"
    assert keys.parse_candles_key(key) == keys.SeriesKey(3, "ETH-USD", Timeframe.H1)
    assert channels.parse_alerts_channel(channels.alerts_channel(4)) == 4
    with pytest.raises(ValueError, match="not in namespace"):
        keys.parse_candles_key("candles:3:ETH-USD:1h")


def test_empty_namespace_keeps_the_spec_names() -> None:
    assert keys.current_namespace() == ""
    assert keys.status_key(1) == "exchange:status:1"
    assert channels.alerts_channel(2) == "channel:alerts:2"
    assert channels.ALL_ALERTS_PATTERN == "channel:alerts:*"


def test_namespace_rejects_separators_and_globs() -> None:
    for bad in ("a:b", "a*", "a b", "x?"):
        with pytest.raises(ValueError, match="invalid Redis namespace"):
            keys.set_namespace(bad)
    assert keys.current_namespace() == ""


async def test_two_namespaces_on_one_redis_see_neither_keys_nor_alerts(
    redis: Redis, redis_settings: RedisSettings
) -> None:
    other = connect_redis(redis_settings.model_copy(update={"namespace": "tenant-b"}))
    try:
        async with alert_stream(other) as b_stream:  # subscribed under tenant-b
            connect_redis(redis_settings.model_copy(update={"namespace": "tenant-a"}))
            async with alert_stream(redis) as a_stream:
                await CandleCache(redis, CacheSettings()).write(candle(close=1.0))
                await Publisher(redis, CacheSettings()).publish_alert(alert(1))
                _, got = await asyncio.wait_for(anext(aiter(a_stream)), 5)
                assert got.exchange_id == 1
                keys.set_namespace("tenant-b")
                await Publisher(other, CacheSettings()).publish_alert(alert(2))
                keys.set_namespace("tenant-a")
                _, first = await asyncio.wait_for(anext(aiter(b_stream)), 5)
                assert first.exchange_id == 2  # tenant-a's alert never reached tenant-b
        names = [name async for name in redis.scan_iter(match="*")]
        assert names and all(name.startswith("tenant-a:") for name in names)
    finally:
        keys.set_namespace("")
        await other.aclose()
