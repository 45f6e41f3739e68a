"""The Coinbase limiter keeps a strict server counter satisfied however requests get bunched.

The simulator counts public requests over a sliding one-second window, stamped when its handler
runs. A request granted on time can still reach it late (a slow network path, a stalled event
loop), and late requests bunch up with punctual ones. Spacing alone is then not enough; the
strict arrival window (`window_limit`, requests counted until one window after their answer) is.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from livermore_exchange_core.adapters.coinbase.rest import CoinbaseRestClient
from livermore_exchange_core.config import RateLimits
from livermore_exchange_core.ratelimit import SpacingLimiter, rate_limiter_for, reset_rate_limiters
from livermore_exchange_sim.testing import running_sim
from livermore_schema.enums import ExchangeName, Timeframe

from ._rest_support import coinbase_stats, sim_config

REQUESTS = 36


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_in_flight_requests_hold_the_window_until_one_window_after_their_answer() -> None:
    clock = ManualClock()
    limiter = SpacingLimiter(100.0, safety=1.0, window_limit=3, window_s=1.0, clock=clock)
    grants = []
    for _ in range(3):
        while (wait := limiter.poll()) > 0:
            clock.now += wait
        grants.append(clock.now)
    assert limiter.in_flight == 3
    # Unanswered requests never expire: the fourth waits however long they take.
    clock.now += 5.0
    assert limiter.poll() > 0
    limiter.settle(grants[0])
    assert limiter.in_flight == 2
    answered_at = clock.now
    # The answered one still counts for a whole window after its answer.
    assert limiter.poll() == pytest.approx(1.0)
    clock.now = answered_at + 1.0
    assert limiter.poll() == 0.0
    assert limiter.in_flight == 3


def test_spacing_only_limiter_ignores_settle() -> None:
    clock = ManualClock()
    limiter = SpacingLimiter(10.0, safety=1.0, clock=clock)
    assert limiter.poll() == 0.0
    limiter.settle(clock.now)
    assert limiter.in_flight == 0
    clock.now += 0.1
    assert limiter.poll() == 0.0


def test_coinbase_default_limiter_keeps_the_strict_window() -> None:
    reset_rate_limiters()
    try:
        limiter = rate_limiter_for(ExchangeName.COINBASE, RateLimits(rest_requests_per_second=10.0))
        assert isinstance(limiter, SpacingLimiter)
        assert limiter._window_limit == 10
    finally:
        reset_rate_limiters()


@pytest.fixture
def cpu_hog() -> Iterator[subprocess.Popen[bytes]]:
    """A process that keeps one core busy for the test's duration (a loaded 2-core machine)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True:\n    pass\n"])
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()


def _late_network(every: int, run: int, delay_s: float) -> aiohttp.TraceConfig:
    """Hold `run` consecutive requests out of every `every` for `delay_s` before they go out."""
    trace = aiohttp.TraceConfig()
    seen = 0

    async def on_start(_s: Any, _c: SimpleNamespace, _p: Any) -> None:
        nonlocal seen
        position = seen % every
        seen += 1
        if position < run:
            await asyncio.sleep(delay_s)  # a slow network path, not synchronisation

    trace.on_request_start.append(on_start)
    return trace


async def _burst(limiter: SpacingLimiter) -> tuple[int, int, int]:
    """Send REQUESTS candle requests through `limiter` over a late network; return counters."""
    async with running_sim(seed=31, speed=60.0) as sim:
        session = aiohttp.ClientSession(trace_configs=[_late_network(12, 3, 1.0)])
        client = CoinbaseRestClient(
            sim_config(sim, ExchangeName.COINBASE), session=session, limiter=limiter
        )
        try:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(client.get_candles("BTC-USD", Timeframe.M5, limit=2) for _ in range(REQUESTS))
                ),
                120,
            )
        finally:
            await session.close()
        stats = await coinbase_stats(sim)
    assert all(len(candles) == 2 for candles in results)
    return stats["http_429"], stats["requests"], client.requests


async def test_strict_window_zero_429s_on_a_loaded_machine_where_spacing_alone_fails(
    cpu_hog: subprocess.Popen[bytes],
) -> None:
    assert cpu_hog.poll() is None
    # The control: spacing alone lets late requests pile into one server window.
    spaced_429s, _, _ = await _burst(SpacingLimiter(10.0))
    strict_429s, seen, sent = await _burst(SpacingLimiter(10.0, window_limit=10))
    print(
        f"late network, {REQUESTS} requests: spacing only {spaced_429s} x 429, strict {strict_429s}"
    )
    assert spaced_429s > 0
    # Every request the client sent reached the sim once (plus one /time for the clock).
    assert strict_429s == 0 and seen == sent == REQUESTS + 1
