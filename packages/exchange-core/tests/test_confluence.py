"""Confluence: the window, the grouping, the once-only Redis claim with racing claimers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from redis.asyncio import Redis

from livermore_cache import channels
from livermore_cache.client import connect_redis
from livermore_cache.pubsub import Publisher, Subscription
from livermore_exchange_core.alerts import (
    ConfluenceClaim,
    ConfluenceDetector,
    ConfluenceWatcher,
    confluence_event,
)
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertDirection, AlertType, Bias, Timeframe
from livermore_schema.settings import CacheSettings, RedisSettings

COINBASE, BINANCE, BINANCE_US = 1, 2, 3
NAMES = {COINBASE: "coinbase", BINANCE: "binance", BINANCE_US: "binance_us"}
SYMBOLS = {COINBASE: "BTC-USD", BINANCE: "BTCUSDT", BINANCE_US: "BTCUSD"}
T0 = 1_764_000_000_000 // 60_000 * 60_000
MINUTE = 60_000
UP, DOWN = AlertDirection.UP, AlertDirection.DOWN


def _alert(
    exchange_id: int,
    at_ms: int,
    label: str = "level_-200",
    *,
    asset: str | None = "bitcoin",
    timeframe: Timeframe = Timeframe.M1,
) -> AlertEvent:
    fields: dict[str, Any] = {
        "exchange_id": exchange_id,
        "symbol": SYMBOLS[exchange_id],
        "timeframe": timeframe,
        "trigger_label": label,
        "trigger_value": -210.0 if "-" in label else 210.0,
        "signal_delta": -3.0,
        "price": 90_000.0 + exchange_id,
        "triggered_at": datetime.fromtimestamp(at_ms / 1000, UTC),
        "timeframes": [],
        "bias": Bias.BEARISH,
        "source_exchange_id": exchange_id,
        "source_exchange_name": NAMES[exchange_id],
        "asset": asset,
        "quote": "USD",
        "direction": DOWN if "-" in label or label == "reversal_overbought" else UP,
    }
    return AlertEvent(**fields)


def test_two_exchanges_within_one_bar_make_a_confluence_naming_both() -> None:
    detector = ConfluenceDetector()
    first = _alert(COINBASE, T0)

    assert detector.add(first) is None
    found = detector.add(_alert(BINANCE, T0 + MINUTE))

    assert found is not None
    assert [e.exchange_id for e in found.triggers] == [COINBASE, BINANCE]
    assert (found.group.asset, found.group.kind, found.group.direction) == (
        "bitcoin",
        "level",
        "down",
    )
    assert (found.window_ms, found.quiet_ms) == (MINUTE, 10 * MINUTE)
    assert found.at_ms == T0 + MINUTE
    event = confluence_event(found)
    assert event.alert_type is AlertType.CONFLUENCE
    assert [(v.exchange, v.symbol, v.trigger_label) for v in event.venues or []] == [
        ("coinbase", "BTC-USD", "level_-200"),
        ("binance", "BTCUSDT", "level_-200"),
    ]
    assert (event.exchange_id, event.asset) == (BINANCE, "bitcoin")
    assert event.id != first.id


def test_venues_are_in_exchange_time_order_whichever_worker_reported_first() -> None:
    """A lagging Coinbase worker reports its earlier trigger after Binance's later one."""
    detector = ConfluenceDetector()
    assert detector.add(_alert(BINANCE, T0 + MINUTE)) is None

    found = detector.add(_alert(COINBASE, T0))

    assert found is not None
    assert [e.exchange_id for e in found.triggers] == [COINBASE, BINANCE]
    assert found.at_ms == T0 + MINUTE
    assert confluence_event(found).exchange_id == BINANCE


def test_triggers_more_than_a_window_apart_are_no_confluence() -> None:
    detector = ConfluenceDetector()
    detector.add(_alert(COINBASE, T0))

    assert detector.add(_alert(BINANCE, T0 + 2 * MINUTE)) is None
    wider = ConfluenceDetector(window_bars=2.0)
    wider.add(_alert(COINBASE, T0))
    assert wider.add(_alert(BINANCE, T0 + 2 * MINUTE)) is not None


@pytest.mark.parametrize(
    ("other", "reason"),
    [
        (_alert(BINANCE, T0, "level_200"), "other direction"),
        (_alert(BINANCE, T0, "reversal_oversold"), "other kind"),
        (_alert(BINANCE, T0, asset="ethereum"), "other asset"),
        (_alert(BINANCE, T0, timeframe=Timeframe.M5), "other timeframe"),
        (_alert(COINBASE, T0 + 1000), "same exchange"),
        (_alert(BINANCE, T0, asset=None), "no asset"),
    ],
)
def test_only_the_same_signal_on_another_exchange_joins(other: AlertEvent, reason: str) -> None:
    detector = ConfluenceDetector()
    detector.add(_alert(COINBASE, T0))

    assert detector.add(other) is None, reason


def test_different_levels_in_the_same_direction_are_one_kind() -> None:
    detector = ConfluenceDetector()
    detector.add(_alert(COINBASE, T0, "level_-250"))

    found = detector.add(_alert(BINANCE, T0, "level_-150"))

    assert found is not None and found.group.kind == "level"


async def test_two_racing_claimers_publish_exactly_once(
    redis: Redis, redis_settings: RedisSettings
) -> None:
    other = connect_redis(redis_settings)  # a second process's own connection
    clients: list[Any] = [redis, other]
    try:
        detectors = [ConfluenceDetector(), ConfluenceDetector()]
        claims = [ConfluenceClaim(c) for c in clients]
        found = []
        for detector in detectors:
            detector.add(_alert(COINBASE, T0))
            found.append(detector.add(_alert(BINANCE, T0 + MINUTE)))
        assert found[0] is not None and found[1] is not None

        won = await asyncio.gather(*(c.claim(f) for c, f in zip(claims, found, strict=True)))

        assert sorted(won) == [False, True]
        later = detectors[0].add(_alert(BINANCE_US, T0 + 2 * MINUTE))
        assert later is not None  # the same excursion reaching a third venue a bar later
        assert await claims[1].claim(later) is False
        detectors[0].add(_alert(COINBASE, T0 + 5 * MINUTE, "level_-250"))
        deeper = detectors[0].add(_alert(BINANCE, T0 + 6 * MINUTE, "level_-300"))
        assert deeper is not None  # a later window of the same excursion: within the quiet period
        assert await claims[0].claim(deeper) is False
        detectors[0].add(_alert(COINBASE, T0 + 17 * MINUTE))
        fresh = detectors[0].add(_alert(BINANCE, T0 + 17 * MINUTE))
        assert fresh is not None and await claims[1].claim(fresh) is True  # quiet since T0+6
    finally:
        await other.aclose()


class Heard:
    """Confluence alerts heard on `channel:alerts:confluence`, with a wait on a predicate."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []
        self._changed = asyncio.Event()

    def add(self, event: AlertEvent) -> None:
        """Record one event."""
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, asset: str, within_s: float = 5.0) -> None:
        """Return once a confluence for `asset` was heard."""
        async with asyncio.timeout(within_s):
            while not any(e.asset == asset for e in self.events):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def heard(redis: Redis) -> AsyncIterator[Heard]:
    """Everything published on the confluence channel during the test."""
    recorder = Heard()
    async with Subscription(
        redis, model=AlertEvent, channels=[channels.confluence_channel()]
    ) as sub:

        async def pump() -> None:
            async for _, event in sub:
                recorder.add(event)

        task = asyncio.create_task(pump())
        yield recorder
        task.cancel()


async def test_two_watchers_racing_on_every_alert_publish_one_confluence(
    redis: Redis, heard: Heard
) -> None:
    publisher = Publisher(redis, CacheSettings())
    watchers = [ConfluenceWatcher(redis, publisher) for _ in range(2)]
    published: list[AlertEvent] = []
    for event in (
        _alert(COINBASE, T0),
        _alert(BINANCE, T0 + MINUTE),
        _alert(COINBASE, T0 + MINUTE, "level_-250"),
        _alert(COINBASE, T0 + MINUTE, asset="ethereum"),
    ):
        results = await asyncio.gather(*(w.handle(event) for w in watchers))
        published.extend(r for r in results if r is not None)
    sentinel = _alert(COINBASE, T0, asset="sentinel")
    await publisher.publish_alert(sentinel.model_copy(update={"alert_type": AlertType.CONFLUENCE}))
    await heard.wait_for("sentinel")

    assert [e.asset for e in published] == ["bitcoin"]
    assert [e.id for e in heard.events if e.asset == "bitcoin"] == [published[0].id]
    assert {v.exchange for v in published[0].venues or []} == {"coinbase", "binance"}


async def test_a_running_watcher_follows_every_exchange_channel(redis: Redis, heard: Heard) -> None:
    publisher = Publisher(redis, CacheSettings())
    ready = asyncio.Event()
    task = asyncio.create_task(ConfluenceWatcher(redis, publisher).run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await publisher.publish_alert(_alert(BINANCE, T0))
        await publisher.publish_alert(_alert(COINBASE, T0 + MINUTE))
        await heard.wait_for("bitcoin")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    (event,) = heard.events
    assert [v.exchange for v in event.venues or []] == ["binance", "coinbase"]
    assert event.source_exchange_name == "coinbase"
