"""The chart page in headless Chromium: real candles from the simulator, live closes, alert markers.

A Binance worker streams BTCUSDT from the simulator at one simulated minute per second; the page
at /admin/chart?exchange=binance&symbol=BTCUSDT&timeframe=1m draws the cached candles with MACD-V,
then follows the series stream and the alert stream. A scripted MACD-V excursion must put an
alert marker on the chart, for the alert the worker published.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.alerts import AlertEvent
from livermore_schema.settings import DatabaseSettings, RedisSettings

from .browser import MS, create_admin, sign_in
from .conftest import ApiProcess, Recorder, WorkerProcess

MINUTE_MS = 60_000
STARTUP_S = 60.0
ALERT_S = 30.0
SCREENSHOT_DIR = "LIVERMORE_SCREENSHOT_DIR"
"""Where to keep the page's screenshot (docs/screenshots/ when refreshing them), else tmp."""

pytestmark = pytest.mark.browser


async def _chart_data(base_url: str, token: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http,
        http.get(
            f"{base_url}/api/exchanges/binance/symbols/BTCUSDT/chart",
            params={"timeframe": "1m", "limit": "300"},
        ) as response,
    ):
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


def _check_real_candles(sim: RunningSim, candles: list[dict[str, Any]]) -> None:
    """The chart's candles are the simulator's ground truth, bar for bar."""
    first, last = candles[0]["open_time"], candles[-1]["open_time"]
    truth = sim.truth(Venue.BINANCE, "BTCUSDT", MINUTE_MS, first, last + MINUTE_MS)
    assert [b.open_time for b in truth] == [c["open_time"] for c in candles]
    for bar, candle in zip(truth, candles, strict=True):
        assert abs(float(candle["close"]) - float(bar.close)) < 1e-9 * float(bar.close), candle


async def test_chart_page_draws_live_candles_and_marks_a_scripted_crossing(
    page: Any,
    binance_sim: RunningSim,
    seeded_symbols: dict[int, tuple[str, ...]],
    spawn_worker: Callable[..., WorkerProcess],
    spawn_api: Callable[..., ApiProcess],
    alerts: Recorder[AlertEvent],
    redis_settings: RedisSettings,
    pg_settings: DatabaseSettings,
    tmp_path: Path,
) -> None:
    from playwright.async_api import expect

    sim = binance_sim
    api = spawn_api(sim)
    worker = spawn_worker("binance", "--autostart", sim=sim)
    token, _ = await asyncio.gather(
        create_admin(redis_settings, pg_settings, sim), api.wait_ready(STARTUP_S)
    )
    await sign_in(page, api.base_url, token)
    await expect(page.get_by_test_id("state-binance")).to_have_text(
        "connected", timeout=STARTUP_S * MS
    )

    await page.goto(f"{api.base_url}/admin/chart?exchange=binance&symbol=BTCUSDT&timeframe=1m")
    chart = page.get_by_test_id("chart")
    await expect(page.get_by_test_id("chart-status")).to_have_text("live", timeout=10 * MS)
    await expect(chart).to_have_attribute("data-candles", re.compile(r"^\d{2,}$"), timeout=10 * MS)
    await expect(page.locator("#chart canvas").first).to_be_visible()
    shown_last = int(await chart.get_attribute("data-last-open-time") or 0)
    data = await _chart_data(api.base_url, token)
    assert len(data["candles"]) >= 30, len(data["candles"])
    _check_real_candles(sim, data["candles"])
    assert shown_last >= data["candles"][-1]["open_time"] - MINUTE_MS, (shown_last, data)
    assert any(p["macd_v"] is not None for p in data["macdv"]), "MACD-V never seeded"

    # live: a newer closed bar arrives on the series stream and is drawn
    await expect(chart).not_to_have_attribute(
        "data-last-open-time", str(shown_last), timeout=10 * MS
    )
    await expect(chart).to_have_attribute("data-last-indicator-time", re.compile(r"^\d+$"))

    # a scripted up-excursion on Binance BTC: the published alert is marked on the chart
    start_ms = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
    excursion = macdv_excursion(
        "BTC", start_ms, timeframe_ms=MINUTE_MS, venues=frozenset({Venue.BINANCE})
    )
    sim.market.scenarios = (*sim.market.scenarios, excursion)
    published = await alerts.wait_for(
        lambda a: (
            a.symbol == "BTCUSDT"
            and a.timeframe.value == "1m"
            and a.triggered_at.timestamp() * 1000 > start_ms
        ),
        ALERT_S,
        "a scripted 1m BTCUSDT alert",
    )
    row = page.get_by_test_id("chart-alert").filter(
        has=page.get_by_test_id("chart-alert-label").filter(
            has_text=re.compile(f"^{published.trigger_label}$")
        )
    )
    await expect(row.first).to_be_visible(timeout=5 * MS)
    await expect(chart).to_have_attribute("data-markers", re.compile(r"^[1-9]\d*$"))
    macdv = float(await row.first.get_by_test_id("chart-alert-macdv").text_content() or "nan")
    assert abs(macdv - published.trigger_value) <= 0.05 + 1e-9, (macdv, published)
    assert worker.proc.poll() is None, worker.tail()

    shot = Path(os.environ.get(SCREENSHOT_DIR, tmp_path)) / "chart-page.png"
    await page.screenshot(path=str(shot), full_page=False)
    assert 10_000 < shot.stat().st_size < 400_000, shot.stat().st_size
