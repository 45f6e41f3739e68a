"""The larger deterministic universe (`extra_assets`), its cost, and the 52-week range."""

from __future__ import annotations

import time

import aiohttp
import pytest

from livermore_exchange_sim.assets import ASSETS, extra_asset, extra_assets
from livermore_exchange_sim.generator import DAY_MS, HOUR_MS
from livermore_exchange_sim.market import Market, SimClock, Venue
from livermore_exchange_sim.scenarios import Scenario, ScenarioLeg
from livermore_exchange_sim.testing import running_sim

START = 1_767_225_600_000 + HOUR_MS + 17 * 60_000 + 12_345  # 2026-01-01 01:17:12 UTC
HOUR_START = START // HOUR_MS * HOUR_MS
EXTRA = 200


def test_extra_assets_are_deterministic_long_tail_after_the_default_universe() -> None:
    extras = extra_assets(EXTRA)
    assert [a.base for a in extras[:3]] == ["AA1", "AA2", "AA3"] and extras[-1].base == "AA200"
    assert extras == extra_assets(EXTRA) and extras[4] == extra_assets(5)[4] == extra_asset(5)
    defaults = {a.base for a in ASSETS}
    assert not defaults & {a.base for a in extras}
    assert len({a.coingecko_id for a in ASSETS + extras}) == len(ASSETS) + EXTRA
    volumes = [a.usd_volume_24h for a in extras]
    assert volumes == sorted(volumes, reverse=True) and len(set(volumes)) == EXTRA
    assert volumes[0] < min(a.usd_volume_24h for a in ASSETS if not a.thin)
    assert volumes[0] / volumes[-1] > 100  # a long tail, not a flat list
    ranks = [a.market_cap_rank for a in extras]
    assert ranks[0] > max(a.market_cap_rank for a in ASSETS) and ranks == sorted(set(ranks))
    assert all(0.001 <= a.price <= 1000 and not a.thin for a in extras)
    assert len({round(a.price, 6) for a in extras}) == EXTRA
    with pytest.raises(ValueError):
        extra_assets(-1)


def test_market_lists_extras_on_every_venue_in_native_symbols() -> None:
    clock = SimClock(start_ms=START, speed=60.0)
    assert Market(seed=7, clock=clock).assets == ASSETS  # default unchanged
    market = Market(seed=7, clock=clock, extra_assets=EXTRA)
    assert len(market.assets) == len(ASSETS) + EXTRA
    coinbase = [p.symbol for p in market.products(Venue.COINBASE)]
    binance = [p.symbol for p in market.products(Venue.BINANCE)]
    binance_us = [p.symbol for p in market.products(Venue.BINANCE_US)]
    assert coinbase[len(ASSETS)] == "AA1-USD" and coinbase[-1] == "AA200-USD"
    assert binance == binance_us and binance[-1] == "AA200USDT"
    bars = market.closed_bars(Venue.BINANCE, "AA200USDT", HOUR_MS, HOUR_START - DAY_MS, HOUR_START)
    again = Market(seed=7, clock=clock, extra_assets=EXTRA).closed_bars(
        Venue.BINANCE, "AA200USDT", HOUR_MS, HOUR_START - DAY_MS, HOUR_START
    )
    assert len(bars) == 24 and bars == again
    assert all(b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high for b in bars)
    narrowed = Market(seed=7, clock=clock, symbols=["BTC", "aa7usdt"], extra_assets=10)
    assert [a.base for a in narrowed.assets] == ["BTC", "AA7"]
    with pytest.raises(ValueError, match=r"AA1\.\.AA10"):
        Market(seed=7, clock=clock, symbols=["AA11"], extra_assets=10)


@pytest.mark.parametrize("symbol", ["SOL-USD", "AA3-USD"])
def test_52_week_range_equals_the_daily_bars_scenario_days_included(symbol: str) -> None:
    today = START // DAY_MS * DAY_MS
    shaped = Scenario(
        "SOL", today - 100 * DAY_MS, (ScenarioLeg(DAY_MS, 0.4), ScenarioLeg(DAY_MS, -0.4))
    )
    market = Market(
        seed=7, clock=SimClock(start_ms=START, speed=60.0), scenarios=[shaped], extra_assets=3
    )
    snap = market.ticker(Venue.COINBASE, symbol, START)
    days = market.closed_bars(Venue.COINBASE, symbol, DAY_MS, today - 364 * DAY_MS, today)
    assert len(days) == 364
    assert snap.high_52w == max(snap.high_24h, *(d.high for d in days))
    assert snap.low_52w == min(snap.low_24h, *(d.low for d in days))
    if symbol == "SOL-USD":  # the shaped days moved the range: the scenario was applied
        plain = Market(seed=7, clock=SimClock(start_ms=START, speed=60.0))
        assert plain.ticker(Venue.COINBASE, symbol, START).high_52w != snap.high_52w


async def _timed(http: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    began = time.perf_counter()
    async with http.get(url) as response:
        body = await response.json()
        assert response.status == 200, body
    return time.perf_counter() - began, len(body) if isinstance(body, list) else 1


async def test_217_products_are_listed_and_served() -> None:
    async with running_sim(start_ms=START, extra_assets=EXTRA) as sim:
        binance = f"{sim.rest_url(Venue.BINANCE)}/api/v3"
        coinbase = f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage"
        end = START // 1000
        lists = {
            "coinbase products": f"{coinbase}/market/products",
            "exchangeInfo": f"{binance}/exchangeInfo",
            "ticker/24hr": f"{binance}/ticker/24hr",
            "coingecko": f"{sim.coingecko_url}/coins/markets?vs_currency=usd&per_page=250",
        }
        pages = {
            "klines 1m": f"{binance}/klines?symbol=AA200USDT&interval=1m&limit=100",
            "klines 1d": f"{binance}/klines?symbol=AA150USDT&interval=1d&limit=100",
            "candles 15m": f"{coinbase}/market/products/AA100-USD/candles"
            f"?start={end - 90_000}&end={end}&granularity=FIFTEEN_MINUTE",
        }
        timings: dict[str, tuple[float, float]] = {}
        async with aiohttp.ClientSession() as http:
            for name, url in lists.items():
                first, count = await _timed(http, url)
                again, _ = await _timed(http, url)
                timings[name] = (first, again)
                if name in ("ticker/24hr", "coingecko"):
                    assert count == len(ASSETS) + EXTRA
            for name, url in pages.items():
                timings[name] = (await _timed(http, url))[0], 0.0
            coingecko = await (await http.get(lists["coingecko"])).json()
    print({name: f"{a * 1000:.0f}/{b * 1000:.0f} ms" for name, (a, b) in timings.items()})
    assert [c["symbol"] for c in coingecko[len(ASSETS) :]] == [f"aa{i}" for i in range(1, 201)]
    # First call per simulated day computes each product's 52-week range; later calls are cached.
    # How fast is a budget for bench/soak_sim.py; a loaded machine makes timed asserts flaky.


async def test_coinbase_stats_count_requests_and_429s() -> None:
    async with running_sim(start_ms=START, coinbase_public_rate_per_s=3) as sim:
        url = f"{sim.rest_url(Venue.COINBASE)}/api/v3/brokerage/time"
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(5):
                async with http.get(url) as response:
                    statuses.append(response.status)
            async with http.get(f"{sim.rest_url(Venue.COINBASE)}/_sim/stats") as response:
                stats = await response.json()
    assert statuses.count(429) == stats["http_429"] == 2 and stats["requests"] == 5
