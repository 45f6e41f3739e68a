"""`ExchangeClock`: the exchange's notion of now, advanced only by exchange timestamps.

Market-time decisions (closing a bar on time, waiting until REST has a bar) must not read the
local wall clock: the simulator runs many times faster than real time, and a skewed host clock
must not drop data. The clock only moves forward.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class ExchangeClock:
    """The latest exchange timestamp seen (epoch ms), with waiters for future instants."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now_ms(self) -> int:
        """Return the latest exchange time seen (0 before the first message)."""
        return self._now

    def advance(self, exchange_ms: int) -> None:
        """Move the clock to `exchange_ms` if that is later, waking whoever waited for it."""
        if exchange_ms <= self._now:
            return
        self._now = exchange_ms
        waiters = self._waiters
        while waiters and waiters[0][0] <= exchange_ms:
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)

    async def wait_until(self, exchange_ms: int) -> None:
        """Return once the exchange clock has reached `exchange_ms`."""
        if self._now >= exchange_ms:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (exchange_ms, next(self._ids), future))
        await future
