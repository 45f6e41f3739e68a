"""One REST rate limiter per exchange per process, shared by every caller.

`acquire()` polls: grant now, or sleep until the earliest moment the request could fit and ask
again (no asyncio.Lock, so a limiter is not tied to a loop). `pause(seconds)` (a 429/418
`Retry-After`) makes every caller wait, including those already waiting for their turn.

- `SpacingLimiter` (Coinbase public, 10 req/s): requests at least `1 / (rate * safety)` apart.
  Spacing at release is not enough for a strict server counter: a request delayed on its way
  (a stalled loop, a slow path) bunches up with later ones. With `window_limit`, a request also
  counts from its grant until one window after its answer, at most `window_limit` at once; the
  server stamps it in between, so no server window ever holds more.
- `WeightWindowLimiter` (Binance): the summed request weight in any trailing window (plus a small
  margin for the request's trip to the server) stays under each `WindowRule` (from exchangeInfo
  `rateLimits`), entries re-stamped at their answer (`settle`). `X-MBX-USED-WEIGHT-*` feedback
  adds the weight the server saw but we did not send (another process on the IP, drift).
"""

from __future__ import annotations

import abc
import asyncio
import bisect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from livermore_exchange_core.config import RateLimits, default_exchange_config
from livermore_schema.enums import ExchangeName

Clock = Callable[[], float]


class RateLimiter(Protocol):
    """What a REST client needs from its exchange's limiter."""

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until a request of `cost` (weight or 1) may start; return the grant moment."""
        ...

    def settle(self, granted_at: float, cost: float = 1.0) -> None:
        """Re-stamp a granted request when its answer arrives (the server counted it by then)."""
        ...

    def pause(self, seconds: float) -> None:
        """Make every caller wait `seconds` from now (a `Retry-After`)."""
        ...

    def observe_used(self, used: float, window_s: float, sent_at: float | None = None) -> None:
        """Feed back the usage the server reports for its `window_s` window.

        `sent_at` is the grant moment of the request whose answer carried the figure (the
        server counted at its arrival, later), when the caller knows it.
        """
        ...


class _Pausable(abc.ABC):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._paused_until = 0.0
        self._pause_listeners: list[Callable[[float], None]] = []
        self._last_grant = 0.0
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
    def last_grant(self) -> float:
        """The clock value at which the latest request was let through."""
        return self._last_grant

    @property
    def paused_until(self) -> float:
        """The clock value before which no request starts."""
        return self._paused_until

    async def _acquire(self, cost: float) -> float:
        wait = self.poll(cost)
        while wait > 0:
            # The wait is computed, not a guess: the earliest moment the request can fit.
            await asyncio.sleep(wait)
            wait = self.poll(cost)
        return self._last_grant

    def settle(self, granted_at: float, cost: float = 1.0) -> None:  # noqa: B027 (optional hook)
        """Re-stamp a granted request at its answer (no-op unless the limiter keeps windows)."""

    @abc.abstractmethod
    def poll(self, cost: float = 1.0) -> float:
        """Grant `cost` now and return 0, or return the seconds to wait before asking again."""


_IN_FLIGHT_POLL_S = 0.005  # how soon to ask again while in-flight requests fill the window


class SpacingLimiter(_Pausable):
    """Requests spaced `1 / (rate_per_s * safety)` apart; with `window_limit`, settle each one."""

    def __init__(
        self,
        rate_per_s: float,
        *,
        safety: float = 0.92,
        window_limit: int | None = None,
        window_s: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock or time.monotonic)
        if rate_per_s <= 0 or not 0 < safety <= 1:
            raise ValueError("rate_per_s > 0 and 0 < safety <= 1 are required")
        if window_limit is not None and (window_limit < 1 or window_s <= 0):
            raise ValueError("window_limit >= 1 and window_s > 0 are required")
        self.rate_per_s = rate_per_s * safety
        self._interval = 1.0 / self.rate_per_s
        self._next = float("-inf")
        self._window_limit = window_limit
        self._window_s = window_s
        self._in_flight = 0
        self._answered: deque[float] = deque()
        self.granted = 0

    @property
    def in_flight(self) -> int:
        """Granted requests not yet settled (always 0 without `window_limit`)."""
        return self._in_flight

    def _window_wait(self, now: float) -> float:
        answered = self._answered
        while answered and answered[0] <= now - self._window_s:
            answered.popleft()
        if self._window_limit is None or self._in_flight + len(answered) < self._window_limit:
            return 0.0
        if answered:
            return answered[0] + self._window_s - now
        return _IN_FLIGHT_POLL_S

    def poll(self, cost: float = 1.0) -> float:
        """Grant now (spacing, window and pause allow it) and return 0, else the seconds to wait."""
        now = self._clock()
        ready = max(self._next, self._paused_until)
        if now < ready:
            return ready - now
        wait = self._window_wait(now)
        if wait > 0:
            return wait
        self._next = now + self._interval * cost
        self._last_grant = now
        self.granted += 1
        if self._window_limit is not None:
            self._in_flight += 1
        return 0.0

    def settle(self, granted_at: float, cost: float = 1.0) -> None:
        """Count a granted request from its answer on, for one more window."""
        if self._window_limit is None or self._in_flight == 0:
            return
        self._in_flight -= 1
        self._answered.append(self._clock())

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until this request may start (spacing and any pause); return the grant moment."""
        return await self._acquire(cost)

    def observe_used(self, used: float, window_s: float, sent_at: float | None = None) -> None:
        """Coinbase publishes no usage header on public endpoints; nothing to correct."""


@dataclass(frozen=True, slots=True)
class WindowRule:
    """At most `limit` units in any `window_s` seconds; units are weight or request count."""

    limit: float
    window_s: float
    counts_weight: bool = True


_FEEDBACK_SLACK_FRACTION = 1 / 30
"""Share of a window (2 s of a minute) by which the server's count may lag ours."""

_INTERVAL_S: dict[str, float] = {"SECOND": 1.0, "MINUTE": 60.0, "HOUR": 3600.0, "DAY": 86400.0}


class _Window:
    def __init__(self, rule: WindowRule, safety: float, time_scale: float, margin_s: float):
        self.rule = rule
        # An entry counts for window + margin: the server stamps it on arrival, a bit later.
        self.window_s = rule.window_s / time_scale
        self.span_s = self.window_s + margin_s
        self.budget = rule.limit * safety
        self.times: list[float] = []
        self.units: list[float] = []
        self.total = 0.0
        # Entries that left the window, kept one more span: a server figure taken before they
        # left (an answer handled late) still counted them, and `used_since` must too.
        self.past_times: list[float] = []
        self.past_units: list[float] = []

    def _expire(self, now: float) -> None:
        count = bisect.bisect_right(self.times, now - self.span_s)
        if count:
            self.total -= sum(self.units[:count])
            self.past_times.extend(self.times[:count])
            self.past_units.extend(self.units[:count])
            del self.times[:count]
            del self.units[:count]
        forget = bisect.bisect_right(self.past_times, now - 2 * self.span_s)
        if forget:
            del self.past_times[:forget]
            del self.past_units[:forget]

    def wait_for(self, now: float, units: float) -> float:
        """Return 0 when `units` fit now, else the seconds until enough entries expire."""
        self._expire(now)
        excess = self.total + units - self.budget
        if excess <= 0:
            return 0.0
        freed = 0.0
        for moment, spent in zip(self.times, self.units, strict=True):
            freed += spent
            if freed >= excess:
                return moment + self.span_s - now
        return self.span_s

    def record(self, moment: float, units: float) -> None:
        index = bisect.bisect_right(self.times, moment)
        self.times.insert(index, moment)
        self.units.insert(index, units)
        self.total += units

    def move(self, moment: float, units: float, new_moment: float) -> None:
        index = bisect.bisect_left(self.times, moment)
        while index < len(self.times) and self.times[index] == moment:
            if self.units[index] == units:
                del self.times[index]
                del self.units[index]
                self.total -= units
                self.record(new_moment, units)
                return
            index += 1

    def used_since(self, moment: float) -> float:
        low = bisect.bisect_right(self.times, moment)
        past = bisect.bisect_right(self.past_times, moment)
        return sum(self.units[low:]) + sum(self.past_units[past:])


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
        margin_s: float = 0.05,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock or time.monotonic)
        if not 0 < safety <= 1 or time_scale <= 0:
            raise ValueError("0 < safety <= 1 and time_scale > 0 are required")
        self._safety = safety
        # Windows last rule.window_s / time_scale local seconds: 1.0 for a real exchange; more
        # for a simulator whose rate-limit windows are configured shorter than the published ones.
        self._time_scale = time_scale
        self._margin_s = margin_s
        self._windows = [self._window(rule) for rule in rules]
        self.granted = 0
        self.weight_granted = 0.0

    def _window(self, rule: WindowRule) -> _Window:
        return _Window(rule, self._safety, self._time_scale, self._margin_s)

    def configure(self, rules: list[WindowRule]) -> None:
        """Replace the rules (from exchangeInfo), keeping what was already spent."""
        weights = [w for w in self._windows if w.rule.counts_weight]
        spent = list(zip(weights[0].times, weights[0].units, strict=True)) if weights else []
        self._windows = [self._window(rule) for rule in rules]
        for moment, units in spent:
            for window in self._windows:
                window.record(moment, units if window.rule.counts_weight else 1.0)

    @property
    def rules(self) -> list[WindowRule]:
        """The rules in force."""
        return [window.rule for window in self._windows]

    def poll(self, cost: float = 1.0) -> float:
        """Grant `cost` now (it fits every window, no pause) and return 0, else the wait."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        waits = [
            window.wait_for(now, cost if window.rule.counts_weight else 1.0)
            for window in self._windows
        ]
        wait = max(waits, default=0.0)
        if wait > 0:
            return wait
        for window in self._windows:
            window.record(now, cost if window.rule.counts_weight else 1.0)
        self._last_grant = now
        self.granted += 1
        self.weight_granted += cost
        return 0.0

    async def acquire(self, cost: float = 1.0) -> float:
        """Wait until `cost` weight fits every window (and any pause); return the grant moment."""
        return await self._acquire(cost)

    def settle(self, granted_at: float, cost: float = 1.0) -> None:
        """Move a request's entry from its grant to now (its answer has arrived).

        The server stamped it somewhere in between; counting it until `now + window` can only
        over-count, so a loaded event loop (a late send) can never make us under-count.
        """
        now = self._clock()
        for window in self._windows:
            window.move(granted_at, cost if window.rule.counts_weight else 1.0, now)

    def observe_used(self, used: float, window_s: float, sent_at: float | None = None) -> None:
        """Account for server-seen weight we did not send (never lowers our own count).

        The server's figure is as of the request's arrival, somewhere after `sent_at`: all it
        counted arrived after `sent_at - window`, and we stamp an entry no earlier than its
        arrival (at the answer), so our entries since then cover it; only weight beyond that
        is foreign. Comparing against a window ending *now* instead would call our own weight
        foreign whenever an answer is handled later than the slack (a loaded event loop, a
        short window) and block a whole window for nothing.
        """
        now = self._clock()
        for window in self._windows:
            if window.rule.counts_weight and abs(window.rule.window_s - window_s) < 1e-6:
                if sent_at is not None:
                    since = sent_at - window.window_s - self._margin_s
                else:
                    slack = _FEEDBACK_SLACK_FRACTION * window.window_s + self._margin_s
                    since = now - window.window_s - slack
                missing = used - window.used_since(since)
                if missing > 0:
                    window.record(now, missing)


_REGISTRY: dict[ExchangeName, RateLimiter] = {}


def _default_limiter(limits: RateLimits) -> RateLimiter:
    if limits.rest_weight_per_minute is not None:
        return WeightWindowLimiter([WindowRule(float(limits.rest_weight_per_minute), 60.0)])
    rate = limits.rest_requests_per_second or 1.0
    # The published rate is also the strict per-second count the server keeps.
    return SpacingLimiter(rate, window_limit=max(1, int(rate)))


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
