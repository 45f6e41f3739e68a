from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import requests
from coinbase.rest import RESTClient

from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import (
    RunningSim,
    generate_coinbase_key,
    mount_https_to_http,
    running_sim,
)

START = 1_759_968_000_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=7, speed=60.0, start_ms=START) as running:
        yield running


def public_client(sim: RunningSim) -> Any:
    client = RESTClient(api_key=None, api_secret=None, base_url=sim.coinbase_sdk_base_url)
    mount_https_to_http(client.session, sim.base_url)
    return client


async def test_sdk_reads_candles_newest_first_matching_ground_truth(sim: RunningSim) -> None:
    client = public_client(sim)
    now_s = sim.clock.now_ms() // 1000
    start_s = now_s - 300 * 60
    response = await asyncio.to_thread(
        client.get_public_candles,
        "BTC-USD",
        start=str(start_s),
        end=str(now_s),
        granularity="FIVE_MINUTE",
    )
    candles = response.candles
    starts = [int(c.start) for c in candles]
    assert starts == sorted(starts, reverse=True)
    assert all(s % 300 == 0 for s in starts)
    assert not hasattr(candles[0], "product_id") or candles[0]["product_id"] is None
    truth = sim.truth(Venue.COINBASE, "BTC-USD", 300_000, start_s * 1000, now_s * 1000)
    closed = [c for c in candles if int(c.start) * 1000 + 300_000 <= sim.clock.now_ms()]
    assert len(closed) >= len(truth) - 1
    by_start = {b.open_time // 1000: b for b in truth}
    for candle in closed:
        bar = by_start[int(candle.start)]
        assert (candle.open, candle.high, candle.low, candle.close) == tuple(
            f"{v:.2f}" for v in (bar.open, bar.high, bar.low, bar.close)
        )
        assert candle.volume == f"{bar.volume:.8f}"
        assert isinstance(candle.open, str)


async def test_candles_omit_empty_buckets_of_thin_products(sim: RunningSim) -> None:
    client = public_client(sim)
    now_s = sim.clock.now_ms() // 1000
    response = await asyncio.to_thread(
        client.get_public_candles,
        "FORT-USD",
        start=str(now_s - 300 * 60),
        end=str(now_s),
        granularity="ONE_MINUTE",
    )
    assert 0 < len(response.candles) < 300
    assert all(float(c.volume) > 0 for c in response.candles)


async def test_more_than_350_candles_is_a_400_with_the_exact_body(sim: RunningSim) -> None:
    url = f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage/market/products/BTC-USD/candles"
    now_s = sim.clock.now_ms() // 1000
    async with aiohttp.ClientSession() as http:
        params = {"start": str(now_s - 351 * 60), "end": str(now_s), "granularity": "ONE_MINUTE"}
        async with http.get(url, params=params) as resp:
            assert resp.status == 400
            body = await resp.json()
        params["start"] = str(now_s - 350 * 60)
        async with http.get(url, params=params) as resp:
            assert resp.status == 200
            assert len((await resp.json())["candles"]) in (350, 351)
    assert body["error"] == "INVALID_ARGUMENT"
    assert body["error_details"] == (
        "start and end argument is invalid - number of candles requested should be less than 350"
    )


async def test_products_product_time_and_unknown_product(sim: RunningSim) -> None:
    client = public_client(sim)
    products = await asyncio.to_thread(client.get_public_products)
    ids = [p.product_id for p in products.products]
    assert "BTC-USD" in ids and products.num_products == len(ids)
    btc = products.products[ids.index("BTC-USD")]
    assert btc.status == "online" and btc.product_type == "SPOT"
    assert float(btc.approximate_quote_24h_volume) > float(
        products.products[-1].approximate_quote_24h_volume
    )
    one = await asyncio.to_thread(client.get_public_product, "ETH-USD")
    assert one.product_id == "ETH-USD" and float(one.price) > 0
    server_time = await asyncio.to_thread(client.get_unix_time)
    assert abs(int(server_time.epoch_millis) - sim.clock.now_ms()) < 60_000
    assert server_time.epoch_seconds == str(int(server_time.epoch_millis) // 1000)
    with pytest.raises(requests.HTTPError, match="404"):
        await asyncio.to_thread(client.get_public_product, "NOPE-USD")


async def test_private_accounts_need_a_valid_jwt(sim: RunningSim) -> None:
    key = sim.coinbase_key
    assert key is not None
    client = RESTClient(
        api_key=key.name, api_secret=key.private_pem, base_url=sim.coinbase_sdk_base_url
    )
    mount_https_to_http(client.session, sim.base_url)
    accounts = await asyncio.to_thread(client.get_accounts)
    currencies = {a.currency: a.available_balance["value"] for a in accounts.accounts}
    assert currencies["BTC"] == "0.51230000" and "DOGE" in currencies
    stranger = generate_coinbase_key()
    impostor = RESTClient(
        api_key=key.name, api_secret=stranger.private_pem, base_url=sim.coinbase_sdk_base_url
    )
    mount_https_to_http(impostor.session, sim.base_url)
    with pytest.raises(requests.HTTPError, match="401"):
        await asyncio.to_thread(impostor.get_accounts)


async def test_public_rate_limit_is_enforced_with_429(sim: RunningSim) -> None:
    url = f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage/time"

    async def fetch(http: aiohttp.ClientSession) -> tuple[int, dict[str, Any]]:
        async with http.get(url) as resp:
            return resp.status, await resp.json()

    async with aiohttp.ClientSession() as http:
        answers = await asyncio.gather(*(fetch(http) for _ in range(13)))
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 10 + [429] * 3
    assert all(body["error"] == "RATE_LIMIT_EXCEEDED" for status, body in answers if status == 429)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (RestMode.RATE_LIMIT_JSON, "429"),
        (RestMode.RATE_LIMIT_HTML, "429"),
        (RestMode.UNAUTHORIZED, "401"),
    ],
)
async def test_rest_faults_raise_http_errors_in_the_sdk(
    sim: RunningSim, mode: RestMode, expected: str
) -> None:
    client = public_client(sim)
    sim.faults.set_rest(Venue.COINBASE, mode, count=1)
    with pytest.raises(requests.HTTPError, match=expected) as caught:
        await asyncio.to_thread(client.get_public_product, "BTC-USD")
    if mode is RestMode.RATE_LIMIT_HTML:
        assert "<html>" in caught.value.response.text
        assert caught.value.response.headers["Content-Type"].startswith("text/html")
    again = await asyncio.to_thread(client.get_public_product, "BTC-USD")
    assert again.product_id == "BTC-USD"


async def test_slow_fault_delays_the_answer_and_http_fault_api(sim: RunningSim) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim.base_url}/_sim/faults/coinbase/rest", json={"mode": "slow", "delay_s": 0.3}
        ) as resp:
            assert resp.status == 200
        began = time.monotonic()
        async with http.get(f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage/time") as resp:
            assert resp.status == 200
        assert time.monotonic() - began >= 0.3
        async with http.get(f"{sim.base_url}/_sim/faults") as resp:
            assert (await resp.json())["coinbase"]["rest"] is None
