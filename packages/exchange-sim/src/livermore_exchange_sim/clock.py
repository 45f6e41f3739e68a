"""Simulated exchange time: a wall-clock-driven clock that can run faster than real time."""

from __future__ import annotations

import asyncio
import time


class SimClock:
    """Simulated exchange time: `start_ms + monotonic elapsed x speed`.

    Every timestamp the simulator emits comes from this clock; wall time is only used to pace
    streams (`wall_seconds`) and for connection timeouts.
    """

    def __init__(self, *, start_ms: int | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.start_ms: int = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self.speed: float = float(speed)
        self._mono0 = time.monotonic()

    def now_ms(self) -> int:
        """Return the current simulated time in epoch milliseconds."""
        return self.start_ms + int((time.monotonic() - self._mono0) * self.speed * 1000.0)

    def wall_seconds(self, sim_ms: float) -> float:
        """Convert a simulated duration (ms) into real seconds."""
        return max(0.0, sim_ms / 1000.0 / self.speed)

    def wall_until(self, sim_ms: int) -> float:
        """Return the real seconds left until simulated time reaches `sim_ms` (0 if passed)."""
        return self.wall_seconds(sim_ms - self.now_ms())

    async def sleep_until(self, sim_ms: int) -> None:
        """Sleep (real time) until simulated time reaches `sim_ms`."""
        delay = self.wall_until(sim_ms)
        while delay > 0:
            await asyncio.sleep(delay)
            delay = self.wall_until(sim_ms)
