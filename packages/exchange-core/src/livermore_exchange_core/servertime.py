"""`ServerClock`: the exchange's notion of now for REST decisions, from its `/time` endpoint.

"Is this bar closed?" and "which bar closed last?" are market-time questions, so they are answered
in exchange time: one `/time` call, then the local monotonic clock carries it forward at `rate`
(1.0 for a real exchange; the simulator's speed factor when it runs faster), re-synced every
`resync_s`. A bar counts as closed only `grace_ms` after its end, so a small error in the estimate
can hide a just-closed bar for a moment but can never store an unfinished bar as closed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

ServerTimeFetcher = Callable[[], Awaitable[int]]


class ServerClock:
    """Exchange time estimated from periodic `/time` samples and the monotonic clock."""

    def __init__(
        self,
        fetch: ServerTimeFetcher,
        *,
        rate: float = 1.0,
        resync_s: float = 60.0,
        grace_ms: int = 1000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._fetch = fetch
        self.rate = rate
        self.resync_s = resync_s
        self.grace_ms = grace_ms
        self._monotonic = monotonic
        self._anchor_server_ms: int | None = None
        self._anchor_mono = 0.0
        self._inflight: asyncio.Future[int] | None = None
        self.syncs = 0

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
        before = self._monotonic()
        server_ms = await self._fetch()
        after = self._monotonic()
        # The server read its clock somewhere inside the round trip; the midpoint halves the error.
        self._anchor_mono = (before + after) / 2
        self._anchor_server_ms = server_ms
        self.syncs += 1
        return server_ms

    def invalidate(self) -> None:
        """Forget the anchor so the next `now_ms()` asks the exchange again (after a -1021)."""
        self._anchor_server_ms = None

    def estimate_ms(self) -> int | None:
        """Return the current estimate without any I/O (None before the first sync)."""
        if self._anchor_server_ms is None:
            return None
        elapsed = self._monotonic() - self._anchor_mono
        return self._anchor_server_ms + int(elapsed * 1000.0 * self.rate)

    async def now_ms(self) -> int:
        """Return exchange time, syncing first when never synced or the anchor is old."""
        stale = self._monotonic() - self._anchor_mono >= self.resync_s
        if self._anchor_server_ms is None or stale:
            await self.sync()
        estimate = self.estimate_ms()
        assert estimate is not None
        return estimate

    async def closed_before_ms(self) -> int:
        """Return the instant before which every bar end counts as closed (now minus grace)."""
        return await self.now_ms() - self.grace_ms
