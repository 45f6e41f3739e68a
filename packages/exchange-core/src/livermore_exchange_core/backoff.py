"""Jittered exponential backoff with a cap, shared by REST retries and WebSocket reconnects.

Equal jitter (half fixed, half random) keeps a floor under every delay, so a burst of failures
cannot collapse into a reconnect storm, while the random half de-synchronises many clients. Pass a
seeded `random.Random` for deterministic tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Shape of a backoff: `base_s * factor**attempt`, capped at `cap_s`, then jittered."""

    base_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 30.0
    jitter: float = 0.5
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.cap_s < self.base_s or self.factor < 1:
            raise ValueError("backoff needs 0 <= base_s <= cap_s and factor >= 1")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter is a fraction in [0, 1]")

    def ceiling(self, attempt: int) -> float:
        """Return the un-jittered delay of the zero-based `attempt`."""
        # The exponent is clamped so a long outage cannot overflow a float.
        return min(self.cap_s, self.base_s * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the jittered delay of the zero-based `attempt`, in seconds."""
        ceiling = self.ceiling(attempt)
        return ceiling * (1.0 - self.jitter) + ceiling * self.jitter * rng.random()


@dataclass(slots=True)
class Backoff:
    """A running sequence of delays: `next_delay()` after each failure, `reset()` on success."""

    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        """Return the delay before the next try and count the attempt."""
        value = self.policy.delay(self.attempt, self.rng)
        self.attempt += 1
        return value

    def exhausted(self) -> bool:
        """Return whether `max_attempts` delays have been handed out."""
        limit = self.policy.max_attempts
        return limit is not None and self.attempt >= limit

    def reset(self) -> None:
        """Start again from the first delay (after a success)."""
        self.attempt = 0
