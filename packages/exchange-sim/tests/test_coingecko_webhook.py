from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from livermore_exchange_sim.testing import RunningSim, running_sim

START = 1_759_968_000_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(start_ms=START) as running:
        yield running


async def test_coins_markets_lists_the_venue_bases_by_market_cap(sim: RunningSim) -> None:
    async with aiohttp.ClientSession() as http:
        url = f"{sim.coingecko_url}/coins/markets"
        headers = {"x-cg-demo-api-key": "demo"}
        async with http.get(
            url, params={"vs_currency": "usd", "per_page": "5", "page": "1"}, headers=headers
        ) as resp:
            first = await resp.json()
        async with http.get(
            url, params={"vs_currency": "usd", "per_page": "5", "page": "2"}
        ) as resp:
            second = await resp.json()
        async with http.get(
            url, params={"vs_currency": "usd", "order": "volume_asc", "per_page": "250"}
        ) as resp:
            by_volume = await resp.json()
        async with http.get(url, params={"per_page": "5"}) as resp:
            assert resp.status == 400
    assert [c["id"] for c in first][:2] == ["bitcoin", "ethereum"]
    assert [c["market_cap_rank"] for c in first + second] == sorted(
        c["market_cap_rank"] for c in first + second
    )
    assert {c["symbol"] for c in first} <= {"btc", "eth", "sol", "xrp", "doge"}
    btc = first[0]
    for field in (
        "current_price",
        "market_cap",
        "total_volume",
        "high_24h",
        "low_24h",
        "price_change_percentage_24h",
        "circulating_supply",
        "last_updated",
    ):
        assert field in btc
    assert btc["current_price"] > 0 and btc["market_cap"] > first[1]["market_cap"]
    assert len(by_volume) == len(sim.market.assets)
    volumes = [c["total_volume"] for c in by_volume]
    assert volumes == sorted(volumes)


async def test_webhook_records_posts_and_can_throttle(sim: RunningSim) -> None:
    post = {
        "embeds": [
            {"title": "BTC-USD 5m level_200", "fields": [{"name": "MACD-V", "value": "212.4"}]}
        ]
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(sim.webhook_url, json=post) as resp:
            assert resp.status == 204
            assert int(resp.headers["X-RateLimit-Remaining"]) >= 0
            assert float(resp.headers["X-RateLimit-Reset-After"]) > 0
        sim.webhooks.throttle(1, retry_after_s=0.25)
        async with http.post(sim.webhook_url, json=post) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "0.25"
            assert (await resp.json())["retry_after"] == 0.25
        async with http.post(sim.webhook_url, json={}) as resp:
            assert resp.status == 400
        async with http.post(sim.webhook_url, json=post) as resp:
            assert resp.status == 204
        async with http.get(sim.webhook_url) as resp:
            listed = await resp.json()
    assert listed == [post, post]
    assert await sim.webhooks.wait_for("livermore", 2) == [post, post]
