"""The admin page in headless Chromium against real processes: api, two workers, the simulator.

A `livermore-api` process serves the page; a Coinbase worker starts idle and a Binance worker
with `--autostart`, both streaming from the simulator through the session's private Redis and
PostgreSQL database. In the browser: sign in with a token `livermore-api create-user` printed,
press START on Coinbase and watch its progress bar advance to `connected`, see a scripted
MACD-V crossing on Binance arrive in the live feed, press STOP and see Coinbase idle again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.scenarios import macdv_excursion
from livermore_exchange_sim.testing import RunningSim
from livermore_schema.alerts import AlertEvent
from livermore_schema.settings import DatabaseSettings, RedisSettings

from .browser import create_admin
from .conftest import ApiProcess, Recorder, WorkerProcess

MINUTE_MS = 60_000
POLL_MS = 100
"""How often the page polls `/api/exchanges` (the page's `?poll_ms=`)."""
STARTUP_S = 60.0
"""Budget for a worker to reach `connected` (process start, backfill, warm-up, connect)."""
ALERT_S = 30.0
"""Budget for the scripted crossing to close a bar and reach the feed."""
MS = 1000.0

pytestmark = pytest.mark.browser

# Records every (state, percent, label) the Coinbase row renders; the row is rebuilt on each poll.
RECORD_PROGRESS = """() => {
  window.__progress = [];
  const record = () => {
    const q = (id) => document.querySelector(`[data-testid="${id}"]`);
    const bar = q("progress-coinbase"), state = q("state-coinbase");
    if (!bar || !state) return;
    const label = q("progress-label-coinbase").textContent.trim();
    const entry = [state.textContent, Number(bar.value), label];
    const last = window.__progress[window.__progress.length - 1];
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.__progress.push(entry);
  };
  new MutationObserver(record).observe(
    document.querySelector("#exchanges-table tbody"), { childList: true });
  record();
}"""


def _script_binance_crossing(sim: RunningSim) -> int:
    """Add a BTC up-excursion on Binance only from the next simulated minute; return its start."""
    start_ms = (sim.clock.now_ms() // MINUTE_MS + 1) * MINUTE_MS
    excursion = macdv_excursion(
        "BTC", start_ms, timeframe_ms=MINUTE_MS, venues=frozenset({Venue.BINANCE})
    )
    # Only the future changes (as the sim's own /_sim/scenarios route does): history stays put.
    sim.market.scenarios = (*sim.market.scenarios, excursion)
    return start_ms


def _check_progress(seen: list[list[Any]]) -> None:
    """The Coinbase row went idle -> starting/connecting with rising percent -> connected 100."""
    assert seen[0][0] == "idle", seen
    assert seen[-1][:2] == ["connected", 100], seen
    during = [entry for entry in seen if entry[0] in ("starting", "connecting")]
    assert any(0 < percent < 100 for _, percent, _ in during), f"no progress shown: {seen}"
    percents = [percent for _, percent, _ in during] + [100]
    assert percents == sorted(percents), f"progress went backwards: {seen}"
    phases = {label.split()[0] for _, _, label in during}
    assert phases & {"resolve", "symbols", "backfill", "warmup", "connect", "boundary", "alerts"}


async def test_admin_page_starts_a_worker_and_shows_a_scripted_alert_from_another_exchange(
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
    coinbase = spawn_worker("coinbase", sim=sim)
    binance = spawn_worker("binance", "--autostart", sim=sim)
    token, _ = await asyncio.gather(
        create_admin(redis_settings, pg_settings, sim), api.wait_ready(STARTUP_S)
    )

    # sign in with the token; both workers show up with their live state
    await page.goto(f"{api.base_url}/admin?poll_ms={POLL_MS}")
    await page.get_by_test_id("token-input").fill(token)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text("(admin)", timeout=10 * MS)
    await expect(page.get_by_test_id("feed-status")).to_have_text("live", timeout=10 * MS)
    state = page.get_by_test_id("state-coinbase")
    await expect(state).to_have_text("idle", timeout=STARTUP_S * MS)
    await expect(page.get_by_test_id("state-binance")).to_have_text(
        "connected", timeout=STARTUP_S * MS
    )
    assert sim.faults.connections(Venue.COINBASE) == 0, "an idle worker opened a connection"
    scripted_from_ms = _script_binance_crossing(sim)

    # START on Coinbase: the progress bar advances through the start sequence to connected
    await page.evaluate(RECORD_PROGRESS)
    await page.get_by_test_id("start-coinbase").click()
    await expect(page.get_by_test_id("command-message")).to_contain_text("start coinbase: queued")
    await expect(state).to_have_text("connected", timeout=STARTUP_S * MS)
    bar = page.get_by_test_id("progress-coinbase")
    await expect(bar).to_have_attribute("value", "100")
    await expect(page.get_by_test_id("progress-label-coinbase")).to_have_text("connected")
    seen = await page.evaluate("window.__progress")
    print(f"coinbase progress rendered: {seen}")
    _check_progress(seen)
    assert sim.faults.connections(Venue.COINBASE) == 1, coinbase.tail()

    # the scripted crossing on Binance reaches the feed with everything the worker published
    rows = page.get_by_test_id("alert-item").filter(
        has=page.get_by_test_id("alert-exchange").filter(has_text=re.compile(r"^binance$"))
    )
    row = rows.filter(
        has=page.get_by_test_id("alert-symbol").filter(has_text=re.compile(r"^BTCUSDT$"))
    ).last  # newest first: the last is the first to arrive
    await expect(row).to_be_visible(timeout=ALERT_S * MS)
    shown = {
        name: (await row.get_by_test_id(f"alert-{name}").text_content() or "")
        for name in ("exchange", "symbol", "timeframe", "label", "direction", "macdv", "price")
    }
    published = await alerts.wait_for(
        lambda a: (
            (a.source_exchange_name, a.symbol, a.timeframe.value, a.trigger_label)
            == (shown["exchange"], shown["symbol"], shown["timeframe"], shown["label"])
        ),
        5,
        f"the published alert behind {shown}",
    )
    assert published.source_exchange_id == 2
    assert re.fullmatch(r"level_\d+", shown["label"]), shown  # an up-excursion crosses upwards
    assert shown["direction"] == published.direction.value == "up", shown
    assert abs(float(shown["macdv"]) - published.trigger_value) <= 0.05 + 1e-9, shown
    assert published.trigger_value >= 150, published
    assert published.triggered_at.timestamp() * 1000 >= scripted_from_ms, "not the scripted one"
    assert float(shown["price"]) == published.price > 0, shown

    # STOP: Coinbase returns to idle and closes its exchange connection
    await page.get_by_test_id("stop-coinbase").click()
    await expect(page.get_by_test_id("command-message")).to_contain_text("stop coinbase: ")
    await expect(state).to_have_text("idle", timeout=10 * MS)
    await expect(bar).to_have_attribute("value", "0")
    await expect(page.get_by_test_id("progress-label-coinbase")).to_have_text("idle")
    await sim.faults.wait_connections(Venue.COINBASE, 0, within_s=10)
    await expect(page.get_by_test_id("state-binance")).to_have_text("connected")
    assert coinbase.proc.poll() is None and binance.proc.poll() is None, "a worker exited"

    screenshot = tmp_path / "admin-page.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    print(f"admin page screenshot: {screenshot}")

    # clicking the alert opens its chart, with the stored alert marked on it
    await row.click()
    await expect(page).to_have_url(
        f"{api.base_url}/admin/chart?exchange=binance&symbol=BTCUSDT&timeframe={shown['timeframe']}"
    )
    await expect(page.get_by_test_id("chart-status")).to_have_text("live", timeout=10 * MS)
    marked = page.get_by_test_id("chart-alert-label").filter(
        has_text=re.compile(f"^{shown['label']}$")
    )
    await expect(marked.first).to_be_visible(timeout=10 * MS)
