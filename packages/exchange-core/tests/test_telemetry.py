"""Per-exchange telemetry: REST requests and throttled replies counted where they happen."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from livermore_exchange_core.adapters.binance.rest import BinanceRestClient
from livermore_exchange_core.ratelimit import WeightWindowLimiter, WindowRule
from livermore_exchange_core.telemetry import LAG_BUCKETS_S, LagHistogram, snapshot, traffic
from livermore_exchange_sim.faults import RestMode
from livermore_exchange_sim.market import Venue
from livermore_exchange_sim.testing import RunningSim, running_sim
from livermore_schema.enums import ExchangeName, Timeframe

from ._rest_support import binance_stats, sim_config

SPEED = 60.0


@pytest.fixture
async def sim() -> AsyncIterator[RunningSim]:
    async with running_sim(seed=5, speed=SPEED) as running:
        yield running


async def test_rest_requests_and_a_429_are_counted(sim: RunningSim) -> None:
    client = BinanceRestClient(
        sim_config(sim, ExchangeName.BINANCE),
        limiter=WeightWindowLimiter([WindowRule(6000, 60.0)]),
        clock_rate=SPEED,
    )
    before = traffic("binance")
    requests, throttled = before.rest_requests, before.rest_throttled
    sim.faults.set_rest(Venue.BINANCE, RestMode.RATE_LIMIT_JSON, count=1, retry_after_s=1)
    try:
        candles = await client.get_candles("BTCUSDT", Timeframe.M5, limit=3)
    finally:
        await client.aclose()
    assert len(candles) == 3
    stats = await binance_stats(sim)
    after = snapshot()["binance"]
    assert after.rest_throttled - throttled == stats["http_429"] == 1
    assert after.rest_requests - requests == client.requests  # every request was answered
    assert client.requests >= 2  # the throttled one and its retry


def test_lag_histogram_buckets_by_upper_bound() -> None:
    lag = LagHistogram()
    lag.observe(0.003)
    lag.observe(LAG_BUCKETS_S[0])  # on a bound: in that bucket (le)
    lag.observe(99.0, times=2)  # beyond the last bound: +Inf
    assert lag.counts[0] == 1
    assert lag.counts[LAG_BUCKETS_S.index(0.005)] == 1
    assert lag.counts[-1] == 2
    assert sum(lag.counts) == 4
    assert lag.total_s == pytest.approx(0.003 + LAG_BUCKETS_S[0] + 198.0)
