"""CoinGeckoClient against the simulator's coins/markets and a scripted loopback server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from livermore_exchange_core.errors import BadRequestError, RateLimitedError
from livermore_exchange_core.symbols.coingecko import (
    API_KEY_HEADER,
    CoinGeckoClient,
    CoinMarket,
    index_by_symbol,
    markets_url,
)
from livermore_exchange_sim.assets import ASSETS
from livermore_exchange_sim.testing import running_sim

COIN = {"id": "bitcoin", "symbol": "btc", "name": "Bitcoin", "market_cap_rank": 1}


@dataclass
class Script:
    """What the loopback server answers, and what it saw."""

    replies: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    seen: list[tuple[float, dict[str, str], dict[str, str]]] = field(default_factory=list)


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    """Serve coins/markets on loopback: the scripted replies in order, then one BTC entry."""

    async def markets(request: web.Request) -> web.Response:
        script.seen.append((time.monotonic(), dict(request.headers), dict(request.query)))
        if script.replies:
            status, headers, body = script.replies.pop(0)
            return web.json_response(body, status=status, headers=headers)
        return web.json_response([{**COIN, "market_cap": 1.3e12, "current_price": 65000.0}])

    app = web.Application()
    app.router.add_get("/api/v3/coins/markets", markets)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class ManualClock:
    """A monotonic clock the test advances (for cache expiry)."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def test_markets_url_accepts_base_with_or_without_api_prefix() -> None:
    assert markets_url("https://api.coingecko.com") == (
        "https://api.coingecko.com/api/v3/coins/markets"
    )
    assert (
        markets_url("http://h:1/coingecko/api/v3/") == "http://h:1/coingecko/api/v3/coins/markets"
    )


def test_index_by_symbol_prefers_better_market_cap_rank() -> None:
    big = CoinMarket("uniswap", "UNI", "Uniswap", 22, Decimal(5), None)
    small = CoinMarket("unicorn", "UNI", "Unicorn", 900, Decimal(1), None)
    unranked = CoinMarket("uni-fake", "UNI", "Fake", None, None, None)
    assert index_by_symbol([small, unranked, big])["UNI"] is big
    assert index_by_symbol([unranked, small])["UNI"] is small


async def test_markets_from_simulator_are_ranked_and_paged() -> None:
    async with running_sim(seed=3, speed=1.0) as sim, aiohttp.ClientSession() as http:
        client = CoinGeckoClient(http, sim.coingecko_url, per_page=5, pages=10, min_interval_s=0.01)
        coins = await client.markets()
        by_symbol = await client.coins_by_symbol()
    assert client.requests == 4  # 5 + 5 + 5 + 2: the short page ends the paging
    assert [c.coingecko_id for c in coins] == [a.coingecko_id for a in ASSETS]
    assert [c.market_cap_rank for c in coins] == sorted(a.market_cap_rank for a in ASSETS)
    assert by_symbol["BTC"].name == "Bitcoin" and by_symbol["BTC"].market_cap_rank == 1
    assert by_symbol["ETH"].market_cap is not None and by_symbol["ETH"].market_cap > 0


async def test_api_key_header_sent_only_when_configured() -> None:
    script = Script()
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        await CoinGeckoClient(http, url, SecretStr("demo-key-123"), min_interval_s=0.01).markets()
        await CoinGeckoClient(http, url, None, min_interval_s=0.01).markets()
    (_, with_key, query), (_, without_key, _) = script.seen
    assert with_key[API_KEY_HEADER] == "demo-key-123"
    assert API_KEY_HEADER not in without_key
    assert query["vs_currency"] == "usd" and query["order"] == "market_cap_desc"
    assert query["per_page"] == "250" and query["page"] == "1"


async def test_cache_serves_second_call_within_ttl() -> None:
    script = Script()
    clock = ManualClock()
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        client = CoinGeckoClient(http, url, cache_ttl_s=300.0, min_interval_s=0.01, clock=clock)
        first = await client.markets()
        clock.now += 299.0
        second = await client.markets()
        assert len(script.seen) == 1 and second is first
        clock.now += 2.0
        await client.markets()
    assert len(script.seen) == 2


async def test_calls_are_spaced_by_min_interval() -> None:
    script = Script()
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        client = CoinGeckoClient(http, url, min_interval_s=0.4)
        await client.markets()
        first = client.limiter.last_grant
        client.invalidate()
        await client.markets()
    # Spacing is the limiter's promise at release; arrival times also carry the host's load.
    assert len(script.seen) == 2 and client.limiter.last_grant - first >= 0.4


async def test_429_retry_after_is_honoured_then_data_returned() -> None:
    throttled = (429, {"Retry-After": "0.5"}, {"status": {"error_code": 429}})
    script = Script(replies=[throttled])
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        client = CoinGeckoClient(http, url, min_interval_s=0.01)
        coins = await client.markets()
    assert [c.symbol for c in coins] == ["BTC"]
    assert len(script.seen) == 2
    assert script.seen[1][0] - script.seen[0][0] >= 0.49
    assert client.limiter.pauses == 1


async def test_persistent_429_surfaces_as_rate_limited_error() -> None:
    throttled = (429, {"Retry-After": "0.05"}, {"error": "slow down"})
    script = Script(replies=[throttled] * 10)
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        client = CoinGeckoClient(http, url, min_interval_s=0.01)
        with pytest.raises(RateLimitedError):
            await client.markets()
    assert 2 <= len(script.seen) <= 6


async def test_rejected_key_is_a_fatal_bad_request() -> None:
    script = Script(replies=[(401, {}, {"status": {"error_code": 10002}})])
    async with scripted_server(script) as url, aiohttp.ClientSession() as http:
        with pytest.raises(BadRequestError):
            await CoinGeckoClient(http, url, SecretStr("bad"), min_interval_s=0.01).markets()
    assert len(script.seen) == 1
