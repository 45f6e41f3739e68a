"""`HeldBars`: the bars of `CandlePipeline` flushes that failed, kept until they go through.

A flush that fails (Redis down, a failover, the lease's fence) never drops its bars: they are
held here, later bars of the burst path queue behind them (a series stays in order), and the
whole lot is tried again once the backoff delay has passed (`wake` is called then).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.stage import BurstFailed
from livermore_schema.market import Candle

FLUSH_RETRY = BackoffPolicy(base_s=0.25, cap_s=5.0)
"""Pause between two tries of a held burst (each try may itself wait for the store for its
retry budget, `LIVERMORE_REDIS_RETRY_BUDGET_S`)."""


class HeldBars:
    """Bars of failed flushes, oldest first per series, with the backoff of their retries."""

    def __init__(self, policy: BackoffPolicy, wake: Callable[[], None], log: Any) -> None:
        self.bars: list[Candle] = []
        self._backoff = Backoff(policy, random.Random())
        self._wake = wake
        self._due = True
        self._log = log
        self.none = asyncio.Event()
        """Set while nothing is held (after a successful flush)."""

    def __bool__(self) -> bool:
        return bool(self.bars)

    def waiting(self) -> bool:
        """Return whether bars are held and their next try is not due yet."""
        return bool(self.bars) and not self._due

    def take(self) -> list[Candle]:
        """Return the held bars for a try (hold them again with `hold` if it fails)."""
        bars, self.bars = self.bars, []
        return bars

    def hold(self, bars: Sequence[Candle], error: Exception) -> None:
        """Keep the bars a try did not flush; schedule the next try."""
        self.bars = list(bars)
        self.none.clear()
        delay = self._backoff.next_delay()
        self._due = False
        asyncio.get_running_loop().call_later(delay, self._fire)
        cause = error.cause if isinstance(error, BurstFailed) else error
        self._log.warning(
            "pipeline.burst_held",
            bars=len(bars),
            attempt=self._backoff.attempt,
            retry_in_s=round(delay, 3),
            error=f"{type(cause).__name__}: {cause}"[:300],
        )

    def _fire(self) -> None:
        self._due = True
        self._wake()

    def flushed(self, count: int) -> None:
        """Note a successful flush (the backoff starts over)."""
        self.none.set()
        if self._backoff.attempt:
            self._log.info("pipeline.flush_recovered", bars=count, tries=self._backoff.attempt)
            self._backoff.reset()

    def keep(self, candle: Candle) -> bool:
        """Keep a corrected bar while bars are held; False: nothing is held, revise it now.

        It replaces its held first copy, else it goes behind the held bars (a past bar: the
        stage re-seeds its series from the cache, which it then holds).
        """
        if not self.bars:
            return False
        for position, held in enumerate(self.bars):
            if (held.symbol, held.timeframe, held.open_time) == (
                candle.symbol,
                candle.timeframe,
                candle.open_time,
            ):
                self.bars[position] = candle
                return True
        self.bars.append(candle)
        return True
