"""`ServerClock` against a deterministic venue: a local clock we step, a venue clock of its own.

The venue answers `/time` after a round trip that moves the local clock; the tests step local
time and check, at every step, that the estimate is never more than half a grace ahead of the
venue (so `closed_before_ms()` never declares an unfinished bar closed) and, once the rate is
learned, never far behind it, whatever rate was configured.
"""

from __future__ import annotations

import random

import pytest

from livermore_exchange_core.servertime import ServerClock

GRACE = 1000


class Venue:
    """A venue whose clock runs at `rate` exchange ms per local ms; `/time` costs a round trip."""

    def __init__(self, rate: float, rtt_s: float = 0.004, seed: int = 1) -> None:
        self.rate = rate
        self.local = 100.0
        self.rtt_s = rtt_s
        self.rng = random.Random(seed)
        self.fetches = 0

    def true_ms(self) -> int:
        return 1_700_000_000_000 + int(self.local * 1000 * self.rate)

    async def fetch(self) -> int:
        self.fetches += 1
        # The server reads its clock somewhere inside the round trip.
        share = self.rng.random()
        self.local += self.rtt_s * share
        reading = self.true_ms()
        self.local += self.rtt_s * (1 - share)
        return reading

    def clock(self, prior: float) -> ServerClock:
        return ServerClock(self.fetch, rate=prior, grace_ms=GRACE, monotonic=lambda: self.local)


@pytest.mark.parametrize("prior_share", [0.5, 2.0, None])
async def test_estimate_never_runs_ahead_and_converges_whatever_the_configured_rate(
    prior_share: float | None,
) -> None:
    venue = Venue(rate=60.0)
    prior = 1.0 if prior_share is None else 60.0 * prior_share
    clock = venue.clock(prior)
    worst_ahead, late_lags = -(10**9), []
    for step in range(4000):
        venue.local += 0.005  # a caller every 5 local ms (300 exchange ms)
        estimate = await clock.now_ms()
        ahead = estimate - venue.true_ms()
        worst_ahead = max(worst_ahead, ahead)
        if step > 2000:
            late_lags.append(-ahead)
    assert worst_ahead <= GRACE // 2, f"estimate ran {worst_ahead} ms ahead of the venue"
    learned = clock.learned_rate()
    assert learned is not None and abs(learned[0] - 60.0) / 60.0 < 0.01
    assert max(late_lags) < 2 * GRACE, "once learned, the estimate keeps up with the venue"
    # The /time traffic settles: far fewer syncs than calls once the rate is known.
    assert venue.fetches < 400, venue.fetches


async def test_a_local_clock_running_fast_is_corrected() -> None:
    venue = Venue(rate=0.8)  # our seconds are long: the venue moves 0.8 s per local second
    clock = venue.clock(1.0)
    worst_ahead = -(10**9)
    for _ in range(3000):
        venue.local += 0.2
        worst_ahead = max(worst_ahead, await clock.now_ms() - venue.true_ms())
    assert worst_ahead <= GRACE // 2
    assert clock.rate == pytest.approx(0.8, rel=1e-3)


async def test_event_times_are_a_floor_and_spare_the_time_endpoint() -> None:
    venue = Venue(rate=60.0)
    clock = venue.clock(1.0)  # far too slow, never learned: only one sample
    await clock.sync()
    latest_event = {"ms": 0}
    clock.follow(lambda: latest_event["ms"])
    fetches = venue.fetches
    for _ in range(200):
        venue.local += 0.01
        latest_event["ms"] = venue.true_ms() - 50  # events arrive 50 exchange ms late
        estimate = await clock.now_ms()
        assert venue.true_ms() - 50 <= estimate <= venue.true_ms()
    assert venue.fetches == fetches, "a fresh event floor needs no /time"
    clock.follow(None)
    venue.local += 0.5  # events stop: the estimate falls back to /time (and asks for it)
    assert await clock.now_ms() >= venue.true_ms() - 60 * GRACE
    assert venue.fetches > fetches


async def test_time_going_back_forgets_the_learned_rate() -> None:
    venue = Venue(rate=10.0)
    clock = venue.clock(10.0)
    for _ in range(50):
        venue.local += 1.0
        await clock.sync()
    assert clock.learned_rate() is not None
    venue.local = 1.0  # a restarted simulator: the venue's clock is earlier than before
    await clock.sync()
    assert clock.learned_rate() is None and clock.rate == 10.0
    assert clock.extrapolation_cap_ms() == GRACE / 2
