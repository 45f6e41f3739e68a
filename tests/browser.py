"""Browser-test fixtures: headless Debian Chromium through Playwright, a fast simulator, sign-in.

Imported by tests/conftest.py so every browser test shares one set-up.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.settings import DatabaseSettings, RedisSettings

SIM_SPEED = 60.0
"""One simulated minute per real second (as tests/conftest.py)."""
MS = 1000.0
"""Playwright timeouts are in milliseconds."""

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


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    """A page of headless Debian Chromium (never a Playwright-downloaded browser)."""
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
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            yield await context.new_page()
        finally:
            await browser.close()


@pytest.fixture
async def binance_sim() -> AsyncIterator[RunningSim]:
    """A fast simulator (one simulated minute per second) listing BTC and ETH."""
    async with running_sim(seed=23, speed=SIM_SPEED, symbols=["BTC", "ETH"]) as sim:
        yield sim


async def create_admin(
    redis_settings: RedisSettings, pg_settings: DatabaseSettings, sim: RunningSim
) -> str:
    """Run `livermore-api create-user NAME --admin` and return the token it printed once."""
    from .conftest import worker_env

    env = worker_env(redis_settings, pg_settings, sim.env)
    username = f"browser-admin-{uuid.uuid4().hex[:8]}"
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "livermore_api", "create-user", username, "--admin"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)  # a cold start on a busy machine
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith(f"created admin {username}"), lines
    return lines[-1].strip()


async def sign_in(page: Any, base_url: str, token: str) -> None:
    """Sign in on the admin page (the token lands in the tab's sessionStorage)."""
    from playwright.async_api import expect

    await page.goto(f"{base_url}/admin")
    await page.get_by_test_id("token-input").fill(token)
    await page.get_by_test_id("sign-in").click()
    await expect(page.get_by_test_id("whoami")).to_contain_text("(admin)", timeout=10 * MS)
