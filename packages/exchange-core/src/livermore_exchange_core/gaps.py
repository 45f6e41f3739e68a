"""Fetching a gap's bars over REST for `CandlePipeline`, with retries and a completeness check."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from livermore_cache.repairs import PendingRepair
from livermore_exchange_core.errors import DataNotReadyError
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
    """Asks a `Repairer` for a gap's bars and checks it has them all (`RepairGates` retries)."""

    def __init__(self, repairer: Repairer | None, log: Any) -> None:
        self._repairer = repairer
        self._log = log

    async def fetch(
        self, series: Series, since: int, notice: GapNotice, *, settled: bool = False
    ) -> Sequence[Candle]:
        """Return the closed bars of `[since, notice.until_ms)`.

        `settled`: the range has been asked for long enough that a bar missing between bars
        REST has is taken as one the venue does not have (logged), not as one still to come.

        Raises:
            DataNotReadyError: a contiguous venue's REST lacks bars of the range yet.
            LivermoreExchangeError: the request failed.
        """
        assert self._repairer is not None
        bars = await self._repairer.repair(series[0], series[1], since, notice.until_ms)
        holes = _missing(bars, series, since, notice)
        newest = max((b.open_time for b in bars if b.closed), default=since - 1)
        if holes and (not settled or holes[-1] > newest):
            raise DataNotReadyError(f"{series[0]} {series[1].value}: REST lacks bars of the gap")
        if holes:  # a venue hole (an exchange outage): waiting longer would freeze the series
            self._log.error("pipeline.repair_hole_accepted", symbol=series[0], bars=len(holes))
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


def _missing(bars: Sequence[Candle], series: Series, since: int, notice: GapNotice) -> list[int]:
    """Return the open times a contiguous venue's repair lacks (none for other venues)."""
    if not notice.contiguous:
        return []
    found = {bar.open_time for bar in bars if bar.closed}
    wanted = range(since, notice.until_ms, duration_ms(series[1]))
    return [open_time for open_time in wanted if open_time not in found]


@dataclass(frozen=True, slots=True)
class Revision:
    """A queued correction of a bar already delivered (`on_candle_revised`)."""

    candle: Candle


@dataclass(frozen=True, slots=True)
class Resumed:
    """A queued repair inherited from a previous holder (durable `PendingRepair`)."""

    notice: GapNotice
    opened_ms: int

    @classmethod
    def of(cls, repair: PendingRepair) -> Resumed:
        """Return the queue item of a stored pending repair."""
        notice = GapNotice(
            repair.symbol,
            repair.timeframe,
            repair.since_ms,
            repair.until_ms,
            repair.ready_at_ms,
            repair.reason,
            repair.contiguous,
        )
        return cls(notice, repair.opened_ms)


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
    opened_ms: int = 0
    """Wall-clock time (epoch ms) the series was first gated (kept across follow-up notices)."""


Waiting = list[Candle | GapNotice | Revision]
Merged = tuple[dict[int, Candle], set[int], list[Candle], Gate | None]


def merge_waiting(gate: Gate, repaired: Sequence[Candle]) -> Merged:
    """Merge a finished repair with what waited behind its gate.

    Returns the bars to deliver by open time (a live closed bar wins over its REST copy), the
    open times seen live, the revisions of bars delivered before the gate, and the gate of the
    next notice that waited (None: the series is whole).
    """
    ready: dict[int, Candle] = {bar.open_time: bar for bar in repaired}
    live: set[int] = set()
    revisions: list[Candle] = []
    for position, item in enumerate(gate.waiting):
        if isinstance(item, GapNotice):
            return (
                ready,
                live,
                revisions,
                Gate(item, gate.waiting[position + 1 :], None, gate.opened_ms),
            )
        if isinstance(item, Revision):
            if item.candle.open_time in live:
                ready[item.candle.open_time] = item.candle  # its first copy is still here
            else:
                revisions.append(item.candle)
            continue
        ready[item.open_time] = item
        live.add(item.open_time)
    return ready, live, revisions, None


def symbol_of(item: object) -> str | None:
    """Return the symbol a queued pipeline item belongs to (None: not a series item)."""
    match item:
        case Candle() | GapNotice():
            return item.symbol
        case Revision():
            return item.candle.symbol
        case RepairDone():
            return item.series[0]
        case Resumed():
            return item.notice.symbol
    return None
