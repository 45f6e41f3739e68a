"""The admin page end to end in headless Chromium (Debian's `chromium`, driven by Playwright)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from livermore_cache import keys
from livermore_cache.pubsub import Publisher
from livermore_cache.status import StatusStore
from livermore_schema.control import parse_command
from livermore_schema.db import async_session_factory, create_async_engine
from livermore_schema.enums import ConnectionState, StartupPhase
from livermore_schema.settings import CacheSettings, DatabaseSettings
from livermore_schema.status import ConnectionStatus, StartupProgress
from livermore_schema.tables import ExchangeSymbol

from .conftest import World
from .helpers import alert

CHROMIUM = Path("/usr/bin/chromium")
HAVE_CHROMIUM = CHROMIUM.exists()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        if os.environ.get("CI") == "true":
            pytest.fail("/usr/bin/chromium is missing in CI (apt-get install -y chromium)")
        pytest.skip("/usr/bin/chromium is not installed")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


@pytest.fixture
async def kraken_symbols(pg_settings: DatabaseSettings, world: World) -> AsyncIterator[str]:
    """Two kraken symbols, one Tier 1 by volume rank, tagged with the test's suffix."""
    engine = create_async_engine(pg_settings)
    tag = world.suffix.upper()
    rows = [
        ExchangeSymbol(exchange_id=4, symbol=f"A{tag}-USD", base_currency=f"A{tag}",
                       quote_currency="USD", volume_rank=1, volume_24h=Decimal("1000000")),
        ExchangeSymbol(exchange_id=4, symbol=f"B{tag}-USD", base_currency=f"B{tag}",
                       quote_currency="USD", volume_rank=5000, volume_24h=Decimal("10")),
    ]  # fmt: skip
    try:
        async with async_session_factory(engine)() as db:
            db.add_all(rows)
            await db.commit()
        yield tag
    finally:
        async with async_session_factory(engine)() as db:
            for row in rows:
                await db.delete(row)
            await db.commit()
        await engine.dispose()


def _status(state: ConnectionState, progress: StartupProgress | None) -> ConnectionStatus:
    return ConnectionStatus(
        exchange_id=1,
        exchange_name="coinbase",
        connection_state=state,
        last_heartbeat=datetime.now(UTC),
        worker_id="browser-test:1",
        symbol_count=7,
        progress=progress,
        heartbeat_interval_s=60,
    )


async def test_admin_page_signs_in_commands_and_shows_live_alerts(
    page: Any,
    client: TestClient[Any, Any],
    world: World,
    redis: Redis,
    kraken_symbols: str,
) -> None:
    from playwright.async_api import expect

    base = str(client.make_url("/admin"))
    await page.goto(f"{base}?poll_ms=200")
    await page.get_by_test_id("token-input").fill(world.admin_token)
    await page.get_by_test_id("sign-in").click()

    # exchanges with worker state
    await expect(page.get_by_test_id("exchange-row-coinbase")).to_be_visible()
    await expect(page.get_by_test_id("exchange-row-binance")).to_be_visible()
    await expect(page.get_by_test_id("state-coinbase")).to_have_text("not running")

    # live feed: an alert from another exchange appears, newest first
    await expect(page.get_by_test_id("feed-status")).to_have_text("live")
    publisher = Publisher(redis, CacheSettings())
    await publisher.publish_alert(alert(1, "BTC-USD", value=-180.0, price=95000.5))
    await publisher.publish_alert(alert(2, "ETHUSDT", value=-212.5, price=3100.25))
    first = page.get_by_test_id("alert-item").first
    await expect(first.get_by_test_id("alert-exchange")).to_have_text("binance")
    await expect(first.get_by_test_id("alert-symbol")).to_have_text("ETHUSDT")
    await expect(first.get_by_test_id("alert-timeframe")).to_have_text("15m")
    await expect(first.get_by_test_id("alert-label")).to_have_text("level_-200")
    await expect(first.get_by_test_id("alert-direction")).to_have_text("down")
    await expect(first.get_by_test_id("alert-macdv")).to_have_text("-212.5")
    await expect(first.get_by_test_id("alert-price")).to_have_text("3100.25")
    await expect(page.get_by_test_id("alert-item")).to_have_count(2)

    # start issues a `start` command on the coinbase command stream
    await page.get_by_test_id("start-coinbase").click()
    await expect(page.get_by_test_id("command-message")).to_contain_text("start coinbase: queued")
    entries = await redis.xrange(keys.command_stream_key(1))
    commands = [parse_command(fields["command"]) for _, fields in entries]
    assert [(c.type, c.user_id) for c in commands] == [("start", world.admin_id)]

    # a status written by the worker renders as a progress bar, then as connected
    store = StatusStore(redis)
    progress = StartupProgress(phase=StartupPhase.BACKFILL, percent=42, current_item="BTC-USD 1h")
    await store.write(_status(ConnectionState.STARTING, progress))
    await expect(page.get_by_test_id("progress-coinbase")).to_have_attribute("value", "42")
    await expect(page.get_by_test_id("progress-label-coinbase")).to_contain_text("backfill 42%")
    await expect(page.get_by_test_id("state-coinbase")).to_have_text("starting")
    await store.write(_status(ConnectionState.CONNECTED, None))
    await expect(page.get_by_test_id("progress-coinbase")).to_have_attribute("value", "100")
    await expect(page.get_by_test_id("state-coinbase")).to_have_text("connected")

    # the symbol table with tiers and search
    await page.get_by_test_id("symbols-exchange").select_option("kraken")
    await page.get_by_test_id("symbols-search").fill(kraken_symbols)
    rows = page.get_by_test_id("symbol-row")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0).get_by_test_id("symbol-name")).to_have_text(f"A{kraken_symbols}-USD")
    await expect(rows.nth(0).get_by_test_id("symbol-tier")).to_have_text("tier 1")
    await expect(rows.nth(1).get_by_test_id("symbol-tier")).to_have_text("—")
    await expect(rows.nth(0).get_by_test_id("symbol-name")).to_have_attribute(
        "href", f"/admin/chart?exchange=kraken&symbol=A{kraken_symbols}-USD&timeframe=1h"
    )


async def test_exchange_rows_say_what_a_worker_can_do(
    page: Any, client: TestClient[Any, Any], world: World
) -> None:
    from playwright.async_api import expect

    await page.goto(str(client.make_url("/admin")))
    await page.get_by_test_id("token-input").fill(world.admin_token)
    await page.get_by_test_id("sign-in").click()

    # exchanges without a streaming client: a note, no start/stop buttons
    for name in ("kraken", "kucoin", "mexc"):
        row = page.get_by_test_id(f"exchange-row-{name}")
        await expect(row.get_by_test_id(f"no-client-{name}")).to_have_text("no streaming client")
        await expect(row.get_by_role("button")).to_have_count(0)
    # a streaming exchange without a live worker: the buttons and how to start one
    row = page.get_by_test_id("exchange-row-binance_us")
    await expect(row.get_by_role("button")).to_have_count(2)
    await expect(row.get_by_test_id("hint-binance_us")).to_have_text(
        "no worker running; start one: livermore-worker --exchange binance_us"
    )
    await expect(row.get_by_test_id("no-client-binance_us")).to_have_count(0)

    # an exchange without symbols offers the refresh to an admin
    await page.get_by_test_id("symbols-exchange").select_option("mexc")
    await expect(page.get_by_test_id("symbols-total")).to_have_text("0 symbols")
    await expect(page.get_by_test_id("symbols-empty")).to_contain_text("No symbols for mexc yet")
    await expect(page.get_by_test_id("refresh-symbols")).to_be_visible()


async def test_swagger_ui_lists_every_route(
    page: Any, client: TestClient[Any, Any], world: World
) -> None:
    from playwright.async_api import expect

    from livermore_api import ROUTES

    await page.goto(str(client.make_url("/api/docs")))
    await page.get_by_test_id("token-input").fill(world.owner_token)
    await page.get_by_test_id("sign-in").click()
    operations = page.locator(".opblock")
    await expect(operations).to_have_count(len(ROUTES), timeout=15_000)
    for path in ("/api/exchanges/{exchange}/symbols/{symbol}/chart", "/health", "/ws/alerts"):
        await expect(page.locator(f'.opblock-summary-path[data-path="{path}"]')).to_have_count(1)
    await expect(page.locator(".info .title")).to_contain_text("Livermore API")
    shot = Path(os.environ.get("LIVERMORE_SCREENSHOT_DIR", "/nonexistent")) / "swagger-page.png"
    if shot.parent.is_dir():
        await page.screenshot(path=str(shot))


async def test_the_feed_shows_remote_signals_on_my_symbols_with_their_chart_links(
    page: Any,
    client: TestClient[Any, Any],
    world: World,
    redis: Redis,
    pg_settings: DatabaseSettings,
) -> None:
    from playwright.async_api import expect

    from livermore_exchange_core.symbols import load_asset_map

    engine = create_async_engine(pg_settings)
    assets = await load_asset_map(async_session_factory(engine))
    await engine.dispose()
    eth = assets.of(1, "ETH-USD")  # the owner watches ETH-USD on Coinbase
    assert eth is not None
    await page.goto(str(client.make_url("/admin")))
    await page.get_by_test_id("token-input").fill(world.owner_token)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("feed-status")).to_have_text("live")
    await page.get_by_test_id("feed-mine").check()
    await expect(page.get_by_test_id("feed-status")).to_have_text("live")

    publisher = Publisher(redis, CacheSettings())
    btc = alert(1, "BTC-USD").model_copy(update={"asset": "not-held", "quote": "USD"})
    remote = alert(2, "ETHUSDT").model_copy(update={"asset": eth.asset, "quote": "USDT"})
    await publisher.publish_alert(btc)
    await publisher.publish_alert(remote)

    rows = page.get_by_test_id("alert-item")
    await expect(rows).to_have_count(1)
    signal = rows.first.get_by_test_id("alert-signal")
    await expect(signal).to_have_text("Binance ETHUSDT level_-200 ↓ → your Coinbase ETH-USD")
    local = signal.get_by_test_id("alert-local")
    await expect(local).to_have_attribute(
        "href", "/admin/chart?exchange=coinbase&symbol=ETH-USD&timeframe=15m"
    )
