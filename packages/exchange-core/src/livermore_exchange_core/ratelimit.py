"""One REST rate limiter per exchange per process, shared by every caller.

Both limiters work by *reservation*: `acquire()` books the earliest moment the request may start
without any await in between, then sleeps until it. That keeps grants FIFO without an asyncio.Lock
(so a limiter is not tied to one event loop) and makes the schedule exact.

- `SpacingLimiter` (Coinbase public, 10 req/s): requests are spaced evenly at a rate a little under
  the limit (GCRA with a burst of one), which stays legal under any server-side window model
  (fixed, sliding or token bucket) even with some network jitter.
- `WeightWindowLimiter` (Binance): the summed request weight in any trailing window stays under
  each `WindowRule` (from exchangeInfo `rateLimits`). A sliding window on our side is never looser
  than the server's fixed window of the same length. `X-MBX-USED-WEIGHT-1M` feedback adds the weight
  the server saw but we did not send (another process on the IP, drift) so we slow down in time.

`pause(seconds)` (a 429/418 `Retry-After`) makes every caller wait, including those already
holding a reservation.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from livermore_exchange_core.config import RateLimits, default_exchange_config
from livermore_schema.enums import ExchangeName

Clock = Callable[[], float]


class RateLimiter(Protocol):
    """What a REST client needs from its exchange's limiter."""

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until a request of `cost` (weight or 1) may start, and account for it."""
        ...

    def pause(self, seconds: float) -> None:
        """Make every caller wait `seconds` from now (a `Retry-After`)."""
        ...

    def observe_used(self, used: float, window_s: float) -> None:
        """Feed back the usage the server reports for its `window_s` window."""
        ...


class _Pausable:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._paused_until = 0.0
        self._pause_listeners: list[Callable[[float], None]] = []
        self.pauses = 0

    def add_pause_listener(self, listener: Callable[[float], None]) -> None:
        """Call `listener(seconds)` whenever a pause starts or grows (status, metrics, tests)."""
        self._pause_listeners.append(listener)

    def pause(self, seconds: float) -> None:
        """Make every caller wait `seconds` from now (a `Retry-After`)."""
        until = self._clock() + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
            for listener in self._pause_listeners:
                listener(seconds)

    @property
    def paused_until(self) -> float:
        """The clock value before which no request starts."""
        return self._paused_until

    async def _wait_until(self, moment: float) -> bool:
        """Sleep until `moment`; return whether no pause was set meanwhile."""
        delay = moment - self._clock()
        if delay > 0:
            await asyncio.sleep(delay)
        return self._clock() >= self._paused_until


class SpacingLimiter(_Pausable):
    """Evenly spaced requests at `rate_per_s * safety` (GCRA, burst `burst`)."""

    def __init__(
        self, rate_per_s: float, *, safety: float = 0.92, burst: int = 1, clock: Clock | None = None
    ) -> None:
        super().__init__(clock or time.monotonic)
        if rate_per_s <= 0 or not 0 < safety <= 1 or burst < 1:
            raise ValueError("rate_per_s > 0, 0 < safety <= 1 and burst >= 1 are required")
        self.rate_per_s = rate_per_s * safety
        self._interval = 1.0 / self.rate_per_s
        self._tolerance = (burst - 1) * self._interval
        self._tat = 0.0
        self.granted = 0

    def reserve(self, cost: float = 1.0) -> float:
        """Book the next slot for `cost` and return the clock value at which it starts."""
        now = self._clock()
        start = max(now, self._tat - self._tolerance, self._paused_until)
        self._tat = max(self._tat, start) + self._interval * cost
        return start

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait for the next free slot (and for any pause), then return."""
        while not await self._wait_until(self.reserve(cost)):
            continue
        self.granted += 1

    def observe_used(self, used: float, window_s: float) -> None:
        """Coinbase publishes no usage header on public endpoints; nothing to correct."""


@dataclass(frozen=True, slots=True)
class WindowRule:
    """At most `limit` units in any `window_s` seconds; units are weight or request count."""

    limit: float
    window_s: float
    counts_weight: bool = True


_INTERVAL_S: dict[str, float] = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}


class _Window:
    def __init__(self, rule: WindowRule, safety: float, time_scale: float) -> None:
        self.rule = rule
        self.window_s = rule.window_s / time_scale
        self.budget = rule.limit * safety
        self.times: list[float] = []
        self.units: list[float] = []
        self.total = 0.0

    def earliest(self, start: float, units: float) -> float:
        # Reservations only move forward, so entries that age out now stay out for good.
        cutoff_index = 0
        while self.total + units > self.budget and cutoff_index < len(self.times):
            start = max(start, self.times[cutoff_index] + self.window_s)
            self.total -= self.units[cutoff_index]
            cutoff_index += 1
        self._drop(cutoff_index)
        expired = bisect.bisect_right(self.times, start - self.window_s)
        for index in range(expired):
            self.total -= self.units[index]
        self._drop(expired)
        return start

    def _drop(self, count: int) -> None:
        if count:
            del self.times[:count]
            del self.units[:count]

    def record(self, moment: float, units: float) -> None:
        index = bisect.bisect_right(self.times, moment)
        self.times.insert(index, moment)
        self.units.insert(index, units)
        self.total += units

    def used_at(self, moment: float) -> float:
        low = bisect.bisect_right(self.times, moment - self.window_s)
        high = bisect.bisect_right(self.times, moment)
        return sum(self.units[low:high])


def rules_from_exchange_info(rate_limits: list[dict[str, object]]) -> list[WindowRule]:
    """Translate exchangeInfo `rateLimits` into window rules (REQUEST_WEIGHT and RAW_REQUESTS)."""
    rules: list[WindowRule] = []
    for entry in rate_limits:
        kind = entry.get("rateLimitType")
        seconds = _INTERVAL_S.get(str(entry.get("interval")))
        if kind not in ("REQUEST_WEIGHT", "RAW_REQUESTS") or seconds is None:
            continue
        window_s = seconds * float(str(entry.get("intervalNum", 1)))
        rules.append(WindowRule(float(str(entry["limit"])), window_s, kind == "REQUEST_WEIGHT"))
    return rules


class WeightWindowLimiter(_Pausable):
    """Keeps summed request weight (and request count) under every rule's trailing window."""

    def __init__(
        self,
        rules: list[WindowRule],
        *,
        safety: float = 0.95,
        time_scale: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock or time.monotonic)
        if not 0 < safety <= 1 or time_scale <= 0:
            raise ValueError("0 < safety <= 1 and time_scale > 0 are required")
        self._safety = safety
        # Windows last rule.window_s / time_scale local seconds: 1.0 for a real exchange; more
        # for a simulator whose rate-limit windows are configured shorter than the published ones.
        self._time_scale = time_scale
        self._windows = [_Window(rule, safety, time_scale) for rule in rules]
        self._last_start = 0.0
        self.granted = 0
        self.weight_granted = 0.0

    def configure(self, rules: list[WindowRule]) -> None:
        """Replace the rules (from exchangeInfo), keeping what was already spent."""
        weights = [w for w in self._windows if w.rule.counts_weight]
        spent = list(zip(weights[0].times, weights[0].units, strict=True)) if weights else []
        self._windows = [_Window(rule, self._safety, self._time_scale) for rule in rules]
        for moment, units in spent:
            for window in self._windows:
                window.record(moment, units if window.rule.counts_weight else 1.0)

    @property
    def rules(self) -> list[WindowRule]:
        """The rules in force."""
        return [window.rule for window in self._windows]

    def reserve(self, weight: float = 1.0) -> float:
        """Book the earliest start for `weight` in every window and return that clock value."""
        start = max(self._clock(), self._paused_until, self._last_start)
        for _ in range(len(self._windows) + 1):
            moved = start
            for window in self._windows:
                units = weight if window.rule.counts_weight else 1.0
                moved = window.earliest(moved, units)
            if moved == start:
                break
            start = moved
        for window in self._windows:
            window.record(start, weight if window.rule.counts_weight else 1.0)
        self._last_start = start
        return start

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until `cost` weight fits every window (and any pause is over), then return."""
        while not await self._wait_until(self.reserve(cost)):
            continue
        self.granted += 1
        self.weight_granted += cost

    def observe_used(self, used: float, window_s: float) -> None:
        """Account for server-seen weight we did not send (never lowers our own count)."""
        now = self._clock()
        for window in self._windows:
            if window.rule.counts_weight and abs(window.rule.window_s - window_s) < 1e-6:
                missing = used - window.used_at(now)
                if missing > 0:
                    window.record(now, missing)


_REGISTRY: dict[ExchangeName, RateLimiter] = {}


def _default_limiter(limits: RateLimits) -> RateLimiter:
    if limits.rest_weight_per_minute is not None:
        return WeightWindowLimiter([WindowRule(float(limits.rest_weight_per_minute), 60.0)])
    return SpacingLimiter(limits.rest_requests_per_second or 1.0)


def rate_limiter_for(name: ExchangeName, limits: RateLimits | None = None) -> RateLimiter:
    """Return this process's limiter for `name`, creating it on first use from `limits`."""
    limiter = _REGISTRY.get(name)
    if limiter is None:
        chosen = limits or default_exchange_config(name, 0).limits
        limiter = _REGISTRY[name] = _default_limiter(chosen)
    return limiter


def set_rate_limiter(name: ExchangeName, limiter: RateLimiter) -> None:
    """Install `limiter` as the process-wide limiter of `name` (tests, custom limits)."""
    _REGISTRY[name] = limiter


def reset_rate_limiters() -> None:
    """Forget every process-wide limiter (tests)."""
    _REGISTRY.clear()
