import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.errors import GeoBlockedError, InvalidSymbolError
from livermore_exchange_core.ratelimit import WeightWindowLimiter, WindowRule
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe

from ._rest_support import (
    RequestLog,
    binance_stats,
    configure_binance,
    recording_session,
    sim_config,
)

SPEED = 60.0
ONE_MIN = 60_000


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=5, speed=SPEED) as running:
        yield running


def _client(
    sim: RunningSim, log: RequestLog, name: ExchangeName = ExchangeName.BINANCE
) -> BinanceRestClient:
    return BinanceRestClient(
        sim_config(sim, name),
        session=recording_session(log),
        limiter=WeightWindowLimiter([WindowRule(6000, 60.0)]),
        clock_rate=SPEED,
    )


async def _close(client: BinanceRestClient) -> None:
    assert client._session is not None
    await client._session.close()


async def test_klines_page_by_1000_and_equal_ground_truth(sim: RunningSim) -> None:
    log = RequestLog()
    client = _client(sim, log)
    try:
        candles = await client.get_candles("SOLUSDT", Timeframe.M1, limit=2500)
    finally:
        await _close(client)
    assert len(candles) == 2500 and all(c.closed for c in candles)
    assert sum(1 for _, path in log.sent if path.endswith("/klines")) == 3
    truth = sim.truth(
        Venue.BINANCE, "SOLUSDT", ONE_MIN, candles[0].open_time, candles[-1].open_time + 1
    )
    assert [(b.open_time, b.close, b.volume) for b in truth] == [
        (c.open_time, c.close, c.volume) for c in candles
    ]
    # exchangeInfo configured the shared limiter from its rateLimits.
    assert isinstance(client.limiter, WeightWindowLimiter)
    assert WindowRule(6000.0, 60.0, True) in client.limiter.rules


async def test_still_open_bar_dropped_unless_asked(sim: RunningSim) -> None:
    client = _client(sim, RequestLog())
    try:
        closed = await client.get_candles("BTCUSDT", Timeframe.M5, limit=3)
        with_open = await client.get_candles("BTCUSDT", Timeframe.M5, limit=3, include_open=True)
    finally:
        await _close(client)
    assert all(c.closed for c in closed)
    assert not with_open[-1].closed and with_open[-1].open_time > closed[-1].open_time


async def test_invalid_symbol(sim: RunningSim) -> None:
    client = _client(sim, RequestLog())
    try:
        with pytest.raises(InvalidSymbolError):
            await client.get_candles("NOPEUSDT", Timeframe.M5, limit=3)
    finally:
        await _close(client)


async def test_geo_block_is_fatal_and_names_binance_us(sim: RunningSim) -> None:
    await configure_binance(sim, geo_blocked=True)
    log = RequestLog()
    client = _client(sim, log)
    try:
        with pytest.raises(GeoBlockedError) as raised:
            await client.get_candles("BTCUSDT", Timeframe.M5, limit=3)
    finally:
        await _close(client)
    assert "binance_us" in str(raised.value) and "451" in str(raised.value)
    assert log.statuses() == [451]  # fatal: not retried


@pytest.mark.parametrize("mode", [RestMode.RATE_LIMIT_JSON, RestMode.BANNED])
async def test_429_and_418_pause_every_caller_for_retry_after(
    sim: RunningSim, mode: RestMode
) -> None:
    log = RequestLog()
    client = _client(sim, log)
    await client.exchange_info()
    await client.server_time_ms()
    throttled = asyncio.Event()
    trace_log = RequestLog()
    second = BinanceRestClient(
        sim_config(sim, ExchangeName.BINANCE),
        session=recording_session(trace_log),
        limiter=client.limiter,  # another caller in the same process: same limiter
        clock_rate=SPEED,
    )
    await second.clock.sync()
    second._limits_loaded = True

    limiter = client.limiter
    assert isinstance(limiter, WeightWindowLimiter)

    limiter.add_pause_listener(lambda _seconds: throttled.set())

    sim.faults.set_rest(Venue.BINANCE, mode, count=1, retry_after_s=1)
    try:
        first = asyncio.create_task(client.get_candles("BTCUSDT", Timeframe.M5, limit=3))
        await asyncio.wait_for(throttled.wait(), 5)
        later = await asyncio.wait_for(second.get_candles("ETHUSDT", Timeframe.M5, limit=3), 10)
        earlier = await asyncio.wait_for(first, 10)
    finally:
        await _close(client)
        await _close(second)
    assert len(earlier) == 3 and len(later) == 3
    throttled_at = next(t for t, _, s in log.answered if s in (418, 429))
    # The other caller waited out Retry-After too, and so did the retry.
    assert min(t for t, p in trace_log.sent if p.endswith("klines")) - throttled_at >= 0.95
    assert min(t for t, p in log.sent if t > throttled_at) - throttled_at >= 0.95
    stats = await binance_stats(sim)
    assert stats["http_429"] + stats["http_418"] == 1  # only the injected one: no follow-up ban


async def test_short_window_from_exchange_info_and_its_used_weight_header_feed_the_limiter(
    sim: RunningSim,
) -> None:
    # Another process on this IP spends 60 of a 100-per-3 s limit; our limiter learns the rule
    # from exchangeInfo and the foreign weight from X-MBX-USED-WEIGHT-3S.
    await configure_binance(sim, weight_limit=100, weight_window_s=3)
    info_url = f"{sim.rest_url(Venue.BINANCE)}/api/v3/exchangeInfo"
    async with aiohttp.ClientSession() as other:
        for _ in range(3):
            async with other.get(info_url) as response:
                assert response.status == 200
    client = _client(sim, RequestLog())
    limiter = client.limiter
    assert isinstance(limiter, WeightWindowLimiter)
    try:
        await client.exchange_info()  # weight 20, under the default rule still
        await client.server_time_ms()  # weight 1: the sim answers X-MBX-USED-WEIGHT-3S: 81
    finally:
        await _close(client)
    assert limiter.rules[0] == WindowRule(100.0, 3.0)
    assert limiter.poll(20.0) > 0  # 21 ours + 60 foreign + 20 > 95 (the 0.95 safety)
    assert limiter.poll(10.0) == 0.0
