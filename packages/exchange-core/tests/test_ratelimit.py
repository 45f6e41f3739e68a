import asyncio
import itertools
import time

import pytest

from livermore_exchange_core.config import RateLimits
from livermore_exchange_core.ratelimit import (
    SpacingLimiter,
    WeightWindowLimiter,
    WindowRule,
    rate_limiter_for,
    reset_rate_limiters,
    rules_from_exchange_info,
)
from livermore_schema.enums import ExchangeName


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _schedule(
    limiter: SpacingLimiter | WeightWindowLimiter, clock: ManualClock, costs: list[float]
) -> list[float]:
    """Drive `poll()` like `acquire()` does, advancing the manual clock instead of sleeping."""
    starts = []
    for cost in costs:
        while (wait := limiter.poll(cost)) > 0:
            clock.now += wait
        starts.append(clock.now)
    return starts


def _max_in_any_window(starts: list[float], weights: list[float], window: float) -> float:
    best = 0.0
    for i, start in enumerate(starts):
        total = sum(w for s, w in zip(starts, weights, strict=True) if start - window < s <= start)
        best = max(best, total)
        del i
    return best


def test_spacing_limiter_spaces_requests_evenly_under_the_rate() -> None:
    clock = ManualClock()
    limiter = SpacingLimiter(10.0, safety=0.9, clock=clock)
    starts = _schedule(limiter, clock, [1.0] * 50)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(starts)}
    assert gaps == {round(1 / 9.0, 9)}
    # In any 1 s window, never more than the published 10.
    assert _max_in_any_window(starts, [1.0] * 50, 1.0) <= 10


def test_spacing_limiter_pause_moves_every_later_reservation() -> None:
    clock = ManualClock()
    limiter = SpacingLimiter(10.0, safety=1.0, clock=clock)
    begin = clock.now
    _schedule(limiter, clock, [1.0])
    limiter.pause(5.0)
    assert _schedule(limiter, clock, [1.0]) == [pytest.approx(begin + 5.0)]


def test_weight_window_never_exceeds_budget_in_any_trailing_window() -> None:
    clock = ManualClock()
    limiter = WeightWindowLimiter([WindowRule(100, 60.0)], safety=0.9, margin_s=0.0, clock=clock)
    begin = clock.now
    starts = _schedule(limiter, clock, [2.0] * 200)
    # The first 45 requests (90 weight) go at once; then one window later, and so on.
    assert starts[:45] == [begin] * 45
    assert starts[45] == pytest.approx(begin + 60.0)
    assert _max_in_any_window(starts, [2.0] * 200, 60.0) <= 90
    assert starts == sorted(starts)


def test_weight_window_respects_raw_request_rule_too() -> None:
    clock = ManualClock()
    rules = [WindowRule(1000, 60.0), WindowRule(10, 1.0, counts_weight=False)]
    limiter = WeightWindowLimiter(rules, safety=1.0, margin_s=0.0, clock=clock)
    begin = clock.now
    starts = _schedule(limiter, clock, [1.0] * 25)
    assert _max_in_any_window(starts, [1.0] * 25, 1.0) <= 10
    assert starts[-1] == pytest.approx(begin + 2.0)


def test_used_weight_feedback_slows_down_for_foreign_usage() -> None:
    clock = ManualClock()
    limiter = WeightWindowLimiter([WindowRule(100, 60.0)], safety=1.0, margin_s=0.0, clock=clock)
    begin = clock.now
    _schedule(limiter, clock, [10.0])
    # The server says 80 are used in its window: 70 came from someone else.
    limiter.observe_used(80, 60.0)
    assert _schedule(limiter, clock, [10.0]) == [begin]
    limiter.observe_used(90, 60.0)  # agrees with us now: nothing more is added
    assert _schedule(limiter, clock, [20.0]) == [pytest.approx(begin + 60.0)]
    # A lower figure (its fixed window reset) never loosens our own accounting.
    limiter.observe_used(0, 60.0)


def test_used_weight_figure_handled_late_is_not_taken_for_foreign_weight() -> None:
    clock = ManualClock()
    limiter = WeightWindowLimiter([WindowRule(100, 3.0)], safety=1.0, margin_s=0.0, clock=clock)
    begin = clock.now
    limiter.settle(_schedule(limiter, clock, [50.0])[0], 50.0)  # answered at once
    clock.now = begin + 2.9
    sent = _schedule(limiter, clock, [10.0])[0]  # the server counts 50 + 10 on arrival
    clock.now = begin + 3.4  # its answer is handled 0.5 s late: the 50 has left the window
    limiter.settle(sent, 10.0)
    assert limiter.poll(100.0) > 0  # another caller looks: 10 ours in the window
    limiter.observe_used(60, 3.0, sent_at=sent)  # all 60 were ours: nothing foreign
    assert _schedule(limiter, clock, [90.0]) == [begin + 3.4]


def test_rules_from_exchange_info() -> None:
    rate_limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ]
    assert rules_from_exchange_info(rate_limits) == [  # type: ignore[arg-type]
        WindowRule(6000.0, 60.0, True),
        WindowRule(61000.0, 300.0, False),
    ]


async def test_acquire_waits_for_a_pause_set_while_waiting() -> None:
    limiter = SpacingLimiter(5.0)
    await limiter.acquire()
    start = time.monotonic()
    waiter = asyncio.create_task(limiter.acquire())  # would go after 0.2 s
    await asyncio.sleep(0)
    limiter.pause(0.4)
    await asyncio.wait_for(waiter, 2.0)
    assert time.monotonic() - start >= 0.39


async def test_acquire_paces_concurrent_callers_at_the_rate() -> None:
    limiter = SpacingLimiter(50.0, safety=1.0)
    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(limiter.acquire() for _ in range(20))), 5.0)
    elapsed = time.monotonic() - start
    assert 0.37 <= elapsed < 1.0  # 19 gaps of 20 ms
    assert limiter.granted == 20


def test_registry_gives_one_limiter_per_exchange() -> None:
    reset_rate_limiters()
    try:
        coinbase = rate_limiter_for(ExchangeName.COINBASE)
        assert rate_limiter_for(ExchangeName.COINBASE) is coinbase
        assert isinstance(coinbase, SpacingLimiter)
        assert coinbase.rate_per_s < 10.0
        binance = rate_limiter_for(ExchangeName.BINANCE)
        assert isinstance(binance, WeightWindowLimiter)
        assert binance.rules == [WindowRule(6000.0, 60.0)]
        assert rate_limiter_for(ExchangeName.BINANCE_US) is not binance
        limited = rate_limiter_for(ExchangeName.KRAKEN, RateLimits(rest_requests_per_second=1))
        assert isinstance(limited, SpacingLimiter)
    finally:
        reset_rate_limiters()


def test_settle_moves_a_request_to_its_answer_so_late_sends_never_undercount() -> None:
    clock = ManualClock()
    limiter = WeightWindowLimiter([WindowRule(10, 60.0)], safety=1.0, margin_s=0.0, clock=clock)
    begin = clock.now
    assert limiter.poll(10) == 0.0
    clock.now += 5.0  # the event loop was busy: the answer came 5 s after the grant
    limiter.settle(begin, 10)
    # The entry now expires 60 s after the answer, not after the grant.
    assert limiter.poll(1) == pytest.approx(60.0)
