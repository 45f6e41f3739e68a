"""Fetching a gap's bars over REST for `CandlePipeline`, with retries and a completeness check."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from livermore_exchange_core.backoff import Backoff, BackoffPolicy
from livermore_exchange_core.errors import (
    DataNotReadyError,
    LivermoreExchangeError,
    RetryableError,
)
from livermore_exchange_core.events import GapNotice
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

Series = tuple[str, Timeframe]


class Repairer(Protocol):
    """Fetches the closed bars of a range over REST (`reconciliation.GapRepairer`)."""

    async def repair(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> Sequence[Candle]:
        """Return the closed bars opening in `[since_ms, until_ms)`, oldest first."""
        ...


class GapFetcher:
    """Asks a `Repairer` for a gap's bars until it has them all (or gives up)."""

    def __init__(self, repairer: Repairer | None, backoff: BackoffPolicy | None, log: Any) -> None:
        self._repairer = repairer
        self._backoff = backoff or BackoffPolicy(base_s=0.5, cap_s=10.0, max_attempts=6)
        self._log = log

    async def fetch(self, series: Series, since: int, notice: GapNotice) -> Sequence[Candle]:
        """Return the closed bars of `[since, notice.until_ms)`, retrying what REST lacks yet."""
        assert self._repairer is not None
        backoff = Backoff(self._backoff, random.Random())
        while True:
            try:
                bars = await self._repairer.repair(series[0], series[1], since, notice.until_ms)
                _check_complete(bars, series, since, notice)
            except RetryableError as err:
                if backoff.exhausted():
                    raise
                delay = err.retry_after_s or backoff.next_delay()
                self._log.warning("pipeline.repair_retry", symbol=series[0], delay_s=delay)
                await asyncio.sleep(delay)
                continue
            except LivermoreExchangeError:
                raise
            self._log.info(
                "pipeline.repaired",
                symbol=series[0],
                timeframe=series[1].value,
                since_ms=since,
                until_ms=notice.until_ms,
                bars=len(bars),
                reason=notice.reason,
            )
            return [b for b in bars if b.closed and since <= b.open_time < notice.until_ms]


def _check_complete(bars: Sequence[Candle], series: Series, since: int, notice: GapNotice) -> None:
    """Raise `DataNotReadyError` when a contiguous venue's repair lacks bars of the range."""
    if not notice.contiguous:
        return
    step = duration_ms(series[1])
    wanted = range(since, notice.until_ms, step)
    found = {bar.open_time for bar in bars if bar.closed}
    if any(open_time not in found for open_time in wanted):
        raise DataNotReadyError(f"{series[0]} {series[1].value}: REST lacks bars of the gap yet")


@dataclass(frozen=True, slots=True)
class Revision:
    """A queued correction of a bar already delivered (`on_candle_revised`)."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class RepairDone:
    """A queued end of a gap repair: the series and every closed bar REST returned."""

    series: Series
    bars: Sequence[Candle]


@dataclass(slots=True)
class Gate:
    """A gated series: the gap being repaired and what arrived behind it."""

    notice: GapNotice
    waiting: list[Candle | GapNotice | Revision] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


def symbol_of(item: object) -> str | None:
    """Return the symbol a queued pipeline item belongs to (None: not a series item)."""
    match item:
        case Candle() | GapNotice():
            return item.symbol
        case Revision():
            return item.candle.symbol
        case RepairDone():
            return item.series[0]
    return None
