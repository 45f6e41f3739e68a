"""`ServerClock`: the exchange's notion of now for REST decisions, learned from the venue itself.

"Is this bar closed?" and "which bar closed last?" are market-time questions, so they are answered
in exchange time, from three sources, none of them trusted blindly:

- `/time` samples. Each is anchored at the moment its answer *arrived* (the server read its
  clock before that), so a sample never puts the estimate ahead of the exchange.
- The rate. Between samples the local monotonic clock carries the estimate forward at a rate
  *learned* from the samples themselves (exchange ms per local ms over the last `window`
  syncs); `rate` (`LIVERMORE_EXCHANGE_CLOCK_RATE`) is only the prior until two samples far enough
  apart exist. A wrong or missing setting, or a local clock running fast or slow, is corrected.
- The venue's own event times (`follow`, the streaming `ExchangeClock`): the exchange has reached
  any time it stamped on a message, so the estimate is never behind the latest event seen.

Extrapolation past the last sample is capped at what the learned rate's uncertainty allows
(`grace_ms / 2` of possible error; only `grace_ms / 2` before a rate is learned), so even a rate
that is far too fast cannot carry the estimate more than half the grace ahead of the exchange:
a bar counts as closed only `grace_ms` after its end, so an unfinished bar is never declared
closed. When the cap holds the estimate back (and no event vouches for later), the clock asks
`/time` again. A wrong rate can delay a close by a moment; it can no longer lose or misplace one.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

ServerTimeFetcher = Callable[[], Awaitable[int]]

DRIFT = 1e-3
"""Relative rate error always assumed (a venue's clock may slew; the local one may drift)."""


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One `/time` answer: the server's ms and the local monotonic seconds around the request."""

    sent: float
    arrived: float
    server_ms: int

    @property
    def midpoint(self) -> float:
        """The local moment the server most likely read its clock."""
        return (self.sent + self.arrived) / 2


class ServerClock:
    """Exchange time from `/time` samples, a learned rate and the venue's event times."""

    def __init__(
        self,
        fetch: ServerTimeFetcher,
        *,
        rate: float = 1.0,
        resync_s: float = 60.0,
        grace_ms: int = 1000,
        window: int = 16,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._fetch = fetch
        self.prior_rate = rate
        self.resync_s = resync_s
        self.grace_ms = grace_ms
        self._monotonic = monotonic
        self._samples: deque[ClockSample] = deque(maxlen=max(2, window))
        self._valid = False
        self._floor: Callable[[], int] | None = None
        self._inflight: asyncio.Future[int] | None = None
        self.syncs = 0

    # ------------------------------------------------------------------ sources

    def follow(self, event_time: Callable[[], int] | None) -> None:
        """Never report less than `event_time()` (the latest venue event time seen; None: stop)."""
        self._floor = event_time

    async def sync(self) -> int:
        """Fetch the exchange time now and anchor the estimate to it (one fetch for all callers)."""
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        self._inflight = asyncio.ensure_future(self._sync_once())
        try:
            return await asyncio.shield(self._inflight)
        finally:
            if self._inflight is not None and self._inflight.done():
                self._inflight = None

    async def _sync_once(self) -> int:
        sent = self._monotonic()
        server_ms = await self._fetch()
        sample = ClockSample(sent, self._monotonic(), server_ms)
        if self._samples and server_ms < self._samples[-1].server_ms:
            self._samples.clear()  # the venue's clock went back: what was learned no longer holds
        self._samples.append(sample)
        self._valid = True
        self.syncs += 1
        return server_ms

    def invalidate(self) -> None:
        """Ask the exchange again on the next `now_ms()` (after a -1021); the rate stays learned."""
        self._valid = False

    # ------------------------------------------------------------------ the rate

    def learned_rate(self) -> tuple[float, float] | None:
        """Return (rate, relative error bound) from the retained samples (None: not learned yet)."""
        if len(self._samples) < 2:
            return None
        first, last = self._samples[0], self._samples[-1]
        span_s = last.midpoint - first.midpoint
        # Each reading happened somewhere inside its request's round trip, 1 ms resolution.
        slack_s = (first.arrived - first.sent + last.arrived - last.sent) / 2
        advance_ms = last.server_ms - first.server_ms
        if span_s <= 4 * slack_s or advance_ms <= 0:
            return None
        error = slack_s / (span_s - slack_s) + 2.0 / advance_ms + DRIFT
        return advance_ms / (span_s * 1000.0), error

    @property
    def rate(self) -> float:
        """Exchange ms per local ms in use: the learned rate, else the configured prior."""
        learned = self.learned_rate()
        return self.prior_rate if learned is None else learned[0]

    def extrapolation_cap_ms(self) -> float:
        """Return how far past the last sample the estimate may run (at most half a grace wrong)."""
        learned = self.learned_rate()
        if learned is None:
            return self.grace_ms / 2
        return max(self.grace_ms / 2, self.grace_ms / (2 * learned[1]))

    # ------------------------------------------------------------------ reading

    def _projection(self) -> tuple[int, int] | None:
        """Return (capped, uncapped) extrapolations of the last sample (None: no valid sample)."""
        if not self._valid or not self._samples:
            return None
        last = self._samples[-1]
        ahead = max(0.0, self._monotonic() - last.arrived) * 1000.0 * self.rate
        capped = min(ahead, self.extrapolation_cap_ms())
        return last.server_ms + int(capped), last.server_ms + int(ahead)

    def _event_floor(self) -> int:
        return 0 if self._floor is None else self._floor()

    def estimate_ms(self) -> int | None:
        """Return the current estimate without any I/O (None before the first sync)."""
        projection = self._projection()
        floor = self._event_floor()
        if projection is None:
            return floor or None
        return max(floor, projection[0])

    def _needs_sync(self, needed_ms: int | None) -> bool:
        projection = self._projection()
        if projection is None:
            return True
        if self._monotonic() - self._samples[-1].arrived >= self.resync_s:
            return True
        capped, uncapped = projection
        estimate = max(capped, self._event_floor())
        if needed_ms is not None and estimate >= needed_ms:
            return False  # the caller's question is answered already
        # Held back by the cap, and no event vouches for the time the rate says it is: ask.
        return estimate < uncapped - self.grace_ms // 2

    async def now_ms(self, needed_ms: int | None = None) -> int:
        """Return exchange time, syncing first when never synced, stale or held back by the cap.

        Args:
            needed_ms: the caller only needs to know whether exchange time has reached this
                instant (a REST range's end plus grace): an estimate already past it spares the
                `/time` request that a capped extrapolation would otherwise make.
        """
        if self._needs_sync(needed_ms):
            await self.sync()
        estimate = self.estimate_ms()
        assert estimate is not None
        return estimate

    def needed_for(
        self, end_ms: int | None, step_ms: int, *, include_open: bool = False
    ) -> int | None:
        """Return when every bar of a REST range ending (open time, exclusive) at `end_ms` closed.

        None when the range runs to the present (no `end_ms`, or the open bar wanted too).
        """
        if include_open or end_ms is None:
            return None
        return -(-end_ms // step_ms) * step_ms + self.grace_ms

    async def closed_before_ms(self) -> int:
        """Return the instant before which every bar end counts as closed (now minus grace)."""
        return await self.now_ms() - self.grace_ms
