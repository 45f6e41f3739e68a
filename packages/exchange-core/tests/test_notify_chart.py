"""Discord embeds with a chart: a PNG of the last bars and MACD-V, posted to the simulator's sink.

The candles are written to the private Redis; the notifier renders the alert's chart in a thread
and posts `payload_json` + `files[0]`. A chart that times out, or has no bars, leaves the embed
to go alone as plain JSON.
"""

from __future__ import annotations

import io
import random
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from PIL import Image
from pydantic import SecretStr
from redis.asyncio import Redis

from livermore_cache.candles import CandleCache
from livermore_exchange_core.alerts import chart
from livermore_exchange_core.alerts.chart import CHART_BARS, AlertChartRenderer, render_alert_chart
from livermore_exchange_core.alerts.notify import CHART_FILENAME, DiscordNotifier
from livermore_exchange_core.indicators.macdv import MacdVPoint
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import CandleSource, Timeframe
from livermore_schema.market import Candle
from livermore_schema.settings import CacheSettings

from .test_notify import LEVEL, make_event

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIVE_MIN_MS = 300_000
FIRED_OPEN_MS = int(datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
"""make_event()'s bar: a 5m bar that closed at 12:05 UTC."""


def _candles(count: int, seed: int = 3) -> list[Candle]:
    """A seeded random walk of closed 5m ETHUSDT bars ending with the alert's bar."""
    rng = random.Random(seed)
    price, bars = 3000.0, []
    for index in range(count):
        open_time = FIRED_OPEN_MS - (count - 1 - index) * FIVE_MIN_MS
        close = price * (1 + rng.gauss(0, 0.004))
        high, low = max(price, close) * 1.002, min(price, close) * 0.998
        bars.append(
            Candle(
                exchange_id=2, exchange="binance", symbol="ETHUSDT", timeframe=Timeframe.M5,
                open_time=open_time, close_time=open_time + FIVE_MIN_MS - 1, open=price,
                high=high, low=low, close=close, volume=10.0, closed=True,
                source=CandleSource.REST,
            )
        )  # fmt: skip
        price = close
    return bars


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_an_alert_embed_carries_a_png_chart(
    sim: RunningSim, http: aiohttp.ClientSession, redis: Redis
) -> None:
    cache = CandleCache(redis, CacheSettings())
    await cache.write_many(_candles(200))
    renderer = AlertChartRenderer(cache, timeout_s=30)
    async with DiscordNotifier(http, SecretStr(sim.webhook_url), charts=renderer) as notifier:
        await notifier.submit(make_event(), LEVEL)
        [post] = await sim.webhooks.wait_for("livermore", 1, within_s=30)

    [embed] = post["embeds"]
    assert embed["title"] == "ETHUSDT: MACD-V crossed below -200 (5m)"
    assert embed["image"] == {"url": f"attachment://{CHART_FILENAME}"}
    assert post["attachments"] == [{"id": 0, "filename": CHART_FILENAME}]
    [attached] = post["_files"]
    assert attached["field"] == "files[0]"
    assert (attached["filename"], attached["content_type"]) == (CHART_FILENAME, "image/png")
    png = sim.webhooks.file("livermore", 0)
    assert png is not None and png.startswith(PNG_SIGNATURE)
    assert attached["size"] == len(png)
    assert 5_000 < len(png) < 300_000
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (800, 450)
        # the alert's bar is marked in orange (#f5a623) somewhere on the chart
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert any(abs(r - 0xF5) < 12 and abs(g - 0xA6) < 12 and b < 70 for _, (r, g, b) in colours)


async def test_the_chart_draws_the_last_bars_only(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CandleCache(redis, CacheSettings())
    await cache.write_many(_candles(CHART_BARS + 5))
    drawn: list[int] = []

    def counting(candles: list[Candle], points: list[MacdVPoint], event: AlertEvent) -> bytes:
        drawn.append(len(candles))
        return render_alert_chart(candles, points, event)

    monkeypatch.setattr(chart, "render_alert_chart", counting)
    png = await AlertChartRenderer(cache, timeout_s=30).render(make_event())
    assert png is not None and png.startswith(PNG_SIGNATURE)
    assert drawn == [CHART_BARS]


async def test_a_chart_that_times_out_leaves_the_embed_to_go_alone(
    sim: RunningSim, http: aiohttp.ClientSession, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CandleCache(redis, CacheSettings())
    await cache.write_many(_candles(200))
    release = threading.Event()

    def stuck(candles: list[Candle], points: list[MacdVPoint], event: AlertEvent) -> bytes:
        release.wait(30)  # a drawing that hangs (in its thread; the event loop goes on)
        return b""

    monkeypatch.setattr(chart, "render_alert_chart", stuck)
    renderer = AlertChartRenderer(cache, timeout_s=0.2)
    try:
        async with DiscordNotifier(http, SecretStr(sim.webhook_url), charts=renderer) as notifier:
            await notifier.submit(make_event(), LEVEL)
            [post] = await sim.webhooks.wait_for("livermore", 1, within_s=10)
    finally:
        release.set()
    _assert_plain(post)


async def test_without_bars_the_embed_goes_alone(
    sim: RunningSim, http: aiohttp.ClientSession, redis: Redis
) -> None:
    renderer = AlertChartRenderer(CandleCache(redis, CacheSettings()), timeout_s=30)
    async with DiscordNotifier(http, SecretStr(sim.webhook_url), charts=renderer) as notifier:
        await notifier.submit(make_event(), LEVEL)
        [post] = await sim.webhooks.wait_for("livermore", 1, within_s=10)
    _assert_plain(post)


def _assert_plain(post: dict[str, Any]) -> None:
    assert "_files" not in post and "attachments" not in post
    [embed] = post["embeds"]
    assert "image" not in embed
    assert embed["title"] == "ETHUSDT: MACD-V crossed below -200 (5m)"
