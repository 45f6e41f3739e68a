"""Binance / Binance US REST on the simulator, driven by unmodified python-binance 1.0.37."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from binance import AsyncClient
from binance.exceptions import BinanceAPIException

from livermore_exchange_sim.binance import BINANCE_STATE, create_binance_app, reconfigure
from livermore_exchange_sim.binance_wire import DEFAULT_LISTING_MS, BinanceVenueState
from livermore_exchange_sim.faults import FaultController, RestMode
from livermore_exchange_sim.market import Market, SimClock, Venue

START_MS = 1_750_000_000_000  # fixed simulated start: deterministic bars
HOUR = 3_600_000


@dataclass
class LocalSim:
    base: str
    market: Market
    faults: FaultController
    apps: dict[Venue, web.Application]

    def rest(self, venue: Venue = Venue.BINANCE) -> str:
        return f"{self.base}/{venue.value}"

    def state(self, venue: Venue = Venue.BINANCE) -> BinanceVenueState:
        return self.apps[venue][BINANCE_STATE]

    async def client(self, venue: Venue = Venue.BINANCE, **kwargs: str) -> AsyncClient:
        class LocalAsyncClient(AsyncClient):  # type: ignore[misc]
            API_URL = f"{self.rest(venue)}/api"

        return await LocalAsyncClient.create(**kwargs)


SimFactory = Callable[..., Awaitable[LocalSim]]


@pytest.fixture
async def make_sim() -> AsyncIterator[SimFactory]:
    runners: list[web.AppRunner] = []

    async def start(speed: float = 1.0) -> LocalSim:
        market = Market(seed=7, clock=SimClock(start_ms=START_MS, speed=speed))
        faults = FaultController(market.clock)
        root = web.Application()
        apps = {}
        for venue in (Venue.BINANCE, Venue.BINANCE_US):
            apps[venue] = create_binance_app(market, venue, faults)
            root.add_subapp(f"/{venue.value}", apps[venue])
        runner = web.AppRunner(root)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return LocalSim(f"http://127.0.0.1:{port}", market, faults, apps)

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_create_pings_and_reads_sim_time(make_sim: SimFactory) -> None:
    sim = await make_sim(speed=1.0)
    client = await sim.client()
    try:
        server = await client.get_server_time()
        assert abs(server["serverTime"] - sim.market.clock.now_ms()) < 1000
        assert await client.ping() == {}
    finally:
        await client.close_connection()


async def test_klines_match_market_and_include_open_bar(make_sim: SimFactory) -> None:
    sim = await make_sim(speed=1.0)
    client = await sim.client()
    try:
        rows = await client.get_klines(symbol="BTCUSDT", interval="1h", limit=5)
    finally:
        await client.close_connection()
    assert len(rows) == 5
    now = sim.market.clock.now_ms()
    current = now - now % HOUR
    assert [r[0] for r in rows] == [current - (4 - i) * HOUR for i in range(5)]
    truth = sim.market.closed_bars(Venue.BINANCE, "BTCUSDT", HOUR, rows[0][0], current)
    for row, bar in zip(rows[:4], truth, strict=True):
        assert row[6] == bar.open_time + HOUR - 1
        assert all(isinstance(v, str) for v in [*row[1:6], row[7], row[9], row[10], row[11]])
        assert [float(v) for v in row[1:6]] == [bar.open, bar.high, bar.low, bar.close, bar.volume]
        assert row[8] == bar.trades
    assert rows[-1][0] == current  # the still-open bar comes last


async def test_start_time_zero_returns_listing_bar(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await sim.client()
    try:
        first = await client.get_klines(symbol="ETHUSDT", interval="1d", startTime=0, limit=1)
        start = sim.market.clock.now_ms() - 30 * HOUR
        history = await client.get_historical_klines("ETHUSDT", "1h", start_str=start)
    finally:
        await client.close_connection()
    assert first[0][0] == DEFAULT_LISTING_MS
    now = sim.market.clock.now_ms()
    truth = sim.market.closed_bars(Venue.BINANCE, "ETHUSDT", HOUR, start, now)
    assert [r[0] for r in history[: len(truth)]] == [b.open_time for b in truth]
    assert [float(r[4]) for r in history[: len(truth)]] == [b.close for b in truth]
    assert history[-1][0] == now - now % HOUR


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121),
        ({"symbol": "BTCUSDT", "interval": "1H"}, -1120),
        ({"symbol": "BTCUSDT", "interval": "1m", "limit": 1001}, -1130),
        ({"symbol": "BTCUSDT", "interval": "1m", "startTime": 5, "endTime": 1}, -1023),
    ],
)
async def test_kline_errors(make_sim: SimFactory, params: dict[str, object], code: int) -> None:
    sim = await make_sim()
    client = await sim.client()
    try:
        with pytest.raises(BinanceAPIException) as caught:
            await client.get_klines(**params)
    finally:
        await client.close_connection()
    assert caught.value.status_code == 400
    assert caught.value.code == code


async def test_weight_header_grows_then_429_then_418(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await sim.client()  # ping + time: weight 2
    reconfigure(sim.state(), {"weight_limit": 12})
    seen = []
    try:
        for _ in range(5):
            await client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)
            seen.append(int(client.response.headers["X-MBX-USED-WEIGHT-1M"]))
        with pytest.raises(BinanceAPIException) as throttled:
            await client.get_klines(symbol="BTCUSDT", interval="1m", limit=1)
        with pytest.raises(BinanceAPIException) as banned:
            await client.ping()
    finally:
        await client.close_connection()
    assert seen == [4, 6, 8, 10, 12]
    assert throttled.value.status_code == 429
    assert throttled.value.code == -1003
    assert "current limit is 12 request weight per 1 MINUTE" in throttled.value.message
    assert int(throttled.value.response.headers["Retry-After"]) >= 1
    assert banned.value.status_code == 418
    assert "IP banned until" in banned.value.message
    assert int(banned.value.response.headers["Retry-After"]) > 60
    assert sim.state().stats.http_429 == 1
    assert sim.state().stats.http_418 == 1
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sim.rest()}/_sim/stats") as response:
            stats = await response.json()
        async with session.get(f"{sim.rest(Venue.BINANCE_US)}/_sim/stats") as response:
            us_stats = await response.json()
    assert stats["http_429"] == 1
    assert us_stats["http_429"] == 0  # limits are per venue


async def test_geo_block_and_rest_fault_overrides(make_sim: SimFactory) -> None:
    sim = await make_sim()
    client = await sim.client()
    try:
        sim.faults.set_rest(Venue.BINANCE, RestMode.GEO_BLOCKED)
        with pytest.raises(BinanceAPIException) as geo:
            await client.get_server_time()
        sim.faults.set_rest(Venue.BINANCE, RestMode.RATE_LIMIT_HTML, retry_after_s=7)
        with pytest.raises(BinanceAPIException) as html:
            await client.get_server_time()
        sim.faults.set_rest(Venue.BINANCE, RestMode.RATE_LIMIT_JSON, retry_after_s=3)
        with pytest.raises(BinanceAPIException) as json_429:
            await client.get_server_time()
        reconfigure(sim.state(), {"geo_blocked": True})
        with pytest.raises(BinanceAPIException) as config_geo:
            await client.ping()
        reconfigure(sim.state(), {"geo_blocked": False})
        assert await client.ping() == {}
    finally:
        await client.close_connection()
    assert geo.value.status_code == 451
    assert geo.value.code == 0
    assert "restricted location" in geo.value.message
    assert html.value.status_code == 429
    assert html.value.response.headers["Retry-After"] == "7"
    assert html.value.message.startswith("Invalid JSON error message")
    assert json_429.value.code == -1003
    assert config_geo.value.status_code == 451
    assert sim.state().stats.http_429 == 2


async def test_signed_account(make_sim: SimFactory) -> None:
    sim = await make_sim(speed=1.0)
    config = sim.state().config
    client = await sim.client(api_key=config.api_key, api_secret=config.api_secret)
    bad_secret = await sim.client(api_key=config.api_key, api_secret="wrong")
    bad_key = await sim.client(api_key="nobody", api_secret=config.api_secret)
    try:
        account = await client.get_account()
        assert int(client.response.headers["X-MBX-USED-WEIGHT-1M"]) >= 20
        with pytest.raises(BinanceAPIException) as signature:
            await bad_secret.get_account()
        with pytest.raises(BinanceAPIException) as key:
            await bad_key.get_account()
        client.timestamp_offset -= 60_000
        with pytest.raises(BinanceAPIException) as stale:
            await client.get_account()
    finally:
        for each in (client, bad_secret, bad_key):
            await each.close_connection()
    balances = {b["asset"]: b for b in account["balances"]}
    assert balances["USDT"]["free"] == "10000.00000000"
    dust = [b for b in account["balances"] if 0 < float(b["free"]) < 1e-5]
    assert dust, "some balances are dust"
    assert (signature.value.status_code, signature.value.code) == (400, -1022)
    assert (key.value.status_code, key.value.code) == (401, -2015)
    assert stale.value.code == -1021


async def test_exchange_info_and_tickers_per_venue(make_sim: SimFactory) -> None:
    sim = await make_sim()
    binance = await sim.client()
    us = await sim.client(Venue.BINANCE_US)
    try:
        info = await binance.get_exchange_info()
        us_info = await us.get_exchange_info()
        one = await us.get_ticker(symbol="SOLUSDT")
        every = await binance.get_ticker()
        weight = int(binance.response.headers["X-MBX-USED-WEIGHT-1M"])
    finally:
        await binance.close_connection()
        await us.close_connection()
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    }
    assert us_info["rateLimits"][0]["limit"] == 1200
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert (btc["status"], btc["baseAsset"], btc["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE"}
    assert one["symbol"] == "SOLUSDT"
    assert isinstance(one["quoteVolume"], str)
    assert isinstance(one["count"], int)
    assert len(every) == len(sim.market.products(Venue.BINANCE))
    assert weight == 2 + 20 + 80  # create() + exchangeInfo + all tickers


async def test_weight_window_is_configurable_and_published(make_sim: SimFactory) -> None:
    sim = await make_sim()
    reconfigure(sim.state(), {"weight_window_s": 3, "weight_limit": 30})
    client = await sim.client()  # ping + time: weight 2
    try:
        info = await client.get_exchange_info()
        headers = client.response.headers
        with pytest.raises(BinanceAPIException) as throttled:
            await client.get_exchange_info()  # 22 + 20 > 30
    finally:
        await client.close_connection()
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "SECOND",
        "intervalNum": 3,
        "limit": 30,
    }
    assert headers["X-MBX-USED-WEIGHT-3S"] == "22" and "X-MBX-USED-WEIGHT-1M" not in headers
    assert "current limit is 30 request weight per 3 SECOND" in throttled.value.message
    assert 1 <= int(throttled.value.response.headers["Retry-After"]) <= 3
    with pytest.raises(ValueError, match="positive"):
        reconfigure(sim.state(), {"weight_window_s": 0})
    with pytest.raises(ValueError, match="must be int"):
        reconfigure(sim.state(), {"weight_window_s": 1.5})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{sim.rest()}/_sim/config", json={"weight_window_s": -1}) as bad:
            assert bad.status == 400
        us = sim.rest(Venue.BINANCE_US)  # binance is banned by now (a request after the 429)
        async with session.post(f"{us}/_sim/config", json={"weight_window_s": 120}) as ok:
            assert (await ok.json())["weight_window_s"] == 120
        async with session.get(f"{us}/api/v3/exchangeInfo") as response:
            rule = (await response.json())["rateLimits"][0]
            assert response.headers["X-MBX-USED-WEIGHT-2M"] == "20"
    assert (rule["interval"], rule["intervalNum"]) == ("MINUTE", 2)
