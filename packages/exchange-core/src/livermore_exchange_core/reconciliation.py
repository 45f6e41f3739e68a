"""Gap detection (pure) and repair over REST: every missing *closed* bar, fetched and written.

Coinbase omits buckets without trades, so a hole REST confirms empty is not a gap: once a slot is
known empty (REST returned a later bar, so the slot is final) it is remembered and never fetched
again. `repair` returns every closed bar of the range oldest first, those it fetched *and* those
the cache already held, so the caller can feed all of them to the indicator before any later
bar of that series: a retried repair (REST lacked the newest bar the first time) must not lose
the bars its first attempt already wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from livermore_exchange_core.base import RestClient
from livermore_schema.enums import Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import bar_open_times, duration_ms

log = structlog.get_logger(__name__)

_MAX_EMPTY_SLOTS = 4096
"""Known-empty slots kept per series; the oldest half goes when full (older than any repair)."""


class CandleStore(Protocol):
    """The slice of `livermore_cache.CandleCache` the REST services use."""

    async def write_many(self, candles: Sequence[Candle], *, user_id: int | None = None) -> int:
        """Write candles under the replacement rules; return how many were stored."""
        ...

    async def recent(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        count: int,
        *,
        user_id: int | None = None,
    ) -> list[Candle]:
        """Return the newest `count` candles, oldest first."""
        ...

    async def between(
        self,
        exchange_id: int,
        symbol: str,
        timeframe: Timeframe,
        start_ms: int,
        end_ms: int,
        *,
        user_id: int | None = None,
    ) -> list[Candle]:
        """Return candles whose open time is in [start_ms, end_ms], oldest first."""
        ...


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of `count` consecutive missing bars with open times in `[start_ms, end_ms)`."""

    start_ms: int
    end_ms: int
    count: int


def detect_gaps(
    open_times: Iterable[int], start_ms: int, end_ms: int, timeframe: Timeframe
) -> list[Gap]:
    """Return the runs of bar slots in `[start_ms, end_ms)` with no open time in `open_times`."""
    present = set(open_times)
    step = duration_ms(timeframe)
    gaps: list[Gap] = []
    run_start: int | None = None
    for slot in bar_open_times(start_ms, end_ms, timeframe):
        if slot in present:
            if run_start is not None:
                gaps.append(Gap(run_start, slot, (slot - run_start) // step))
                run_start = None
        elif run_start is None:
            run_start = slot
    if run_start is not None:
        last = bar_open_times(start_ms, end_ms, timeframe)[-1] + step
        gaps.append(Gap(run_start, last, (last - run_start) // step))
    return gaps


class GapRepairer:
    """Fills the missing closed bars of a series over REST, writing them to the cache."""

    def __init__(
        self,
        rest_client: RestClient,
        candle_cache: CandleStore,
        *,
        exchange_id: int,
        exchange_name: str = "",
        user_id: int | None = None,
        user_ids: Mapping[str, int] | None = None,
    ) -> None:
        self._rest = rest_client
        self._cache = candle_cache
        self._exchange_id = exchange_id
        self._user_id = user_id
        # Tier 2 symbols (symbol -> user) repair into that user's keys; the mapping is read on
        # every call, so a caller may keep adding symbols to it.
        self._user_ids: Mapping[str, int] = user_ids if user_ids is not None else {}
        self._empty: dict[tuple[str, Timeframe], set[int]] = {}
        self._log = log.bind(exchange=exchange_name or str(exchange_id))

    def _user_of(self, symbol: str) -> int | None:
        return self._user_ids.get(symbol, self._user_id)

    def confirmed_empty(self, symbol: str, timeframe: Timeframe) -> frozenset[int]:
        """Return the slots REST confirmed to have no bar (no trades) for a series."""
        return frozenset(self._empty.get((symbol, timeframe), ()))

    async def missing(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> list[Gap]:
        """Return the gaps in `[since_ms, until_ms)`: no closed cached bar, not known empty."""
        return self._gaps(
            await self._cached(symbol, timeframe, since_ms, until_ms),
            symbol,
            timeframe,
            since_ms,
            until_ms,
        )

    async def _cached(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> list[Candle]:
        cached = await self._cache.between(
            self._exchange_id, symbol, timeframe, since_ms, until_ms, user_id=self._user_of(symbol)
        )
        return [c for c in cached if c.closed and since_ms <= c.open_time < until_ms]

    def _gaps(
        self,
        cached: Sequence[Candle],
        symbol: str,
        timeframe: Timeframe,
        since_ms: int,
        until_ms: int,
    ) -> list[Gap]:
        have = {c.open_time for c in cached} | self._empty.get((symbol, timeframe), set())
        return detect_gaps(have, since_ms, until_ms, timeframe)

    async def repair(
        self, symbol: str, timeframe: Timeframe, since_ms: int, until_ms: int
    ) -> list[Candle]:
        """Fetch and write every missing closed bar with open time in `[since_ms, until_ms)`.

        Returns:
            Every closed bar of the range, oldest first (no duplicates): the ones fetched and
            written now and the ones the cache already held.
        """
        cached = await self._cached(symbol, timeframe, since_ms, until_ms)
        gaps = self._gaps(cached, symbol, timeframe, since_ms, until_ms)
        repaired: dict[int, Candle] = {}
        for gap in gaps:
            fetched = await self._rest.get_candles(
                symbol, timeframe, start_ms=gap.start_ms, end_ms=gap.end_ms
            )
            closed = [c for c in fetched if c.closed and gap.start_ms <= c.open_time < gap.end_ms]
            for candle in closed:
                repaired[candle.open_time] = candle
            self._remember_empty(symbol, timeframe, gap, closed, until_ms)
        ordered = [repaired[key] for key in sorted(repaired)]
        if ordered:
            await self._cache.write_many(ordered, user_id=self._user_of(symbol))
            self._log.info(
                "gap.repaired",
                symbol=symbol,
                timeframe=timeframe.value,
                gaps=len(gaps),
                bars=len(ordered),
            )
        every = {c.open_time: c for c in cached} | repaired
        return [every[key] for key in sorted(every)]

    def _remember_empty(
        self,
        symbol: str,
        timeframe: Timeframe,
        gap: Gap,
        closed: Sequence[Candle],
        until_ms: int,
    ) -> None:
        # A slot is final once a later bar exists: either REST returned one after it inside the
        # gap, or the gap is interior (the cache holds a bar after it, below `until_ms`).
        step = duration_ms(timeframe)
        newest_seen = max((c.open_time for c in closed), default=None)
        final_before = gap.end_ms if gap.end_ms < until_ms else newest_seen
        if final_before is None:
            return
        returned = {c.open_time for c in closed}
        empty = self._empty.setdefault((symbol, timeframe), set())
        for slot in range(gap.start_ms, min(final_before, gap.end_ms), step):
            if slot not in returned:
                empty.add(slot)
        if len(empty) > _MAX_EMPTY_SLOTS:
            for slot in sorted(empty)[: len(empty) // 2]:
                empty.discard(slot)
