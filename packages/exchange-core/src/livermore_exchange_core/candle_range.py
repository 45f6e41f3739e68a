"""Pure range arithmetic for REST candle requests: which open times to ask for, and in what pages.

Ranges are half-open `[start, end)` over bar open times, aligned to the timeframe. "Closed" is
judged against `closed_before_ms`, an exchange-time instant (see `ServerClock`).
"""

from __future__ import annotations

from dataclasses import dataclass

from livermore_schema.enums import Timeframe
from livermore_schema.timeframes import duration_ms, floor_to_boundary

DEFAULT_LIMIT = 300
"""Bars returned by `get_candles` when neither `start_ms` nor `limit` is given."""


@dataclass(frozen=True, slots=True)
class OpenTimeRange:
    """Bars whose open time lies in `[start_ms, end_ms)`."""

    start_ms: int
    end_ms: int
    step_ms: int

    @property
    def bars(self) -> int:
        """Return how many bar slots the range spans."""
        return max(0, (self.end_ms - self.start_ms) // self.step_ms)

    def contains(self, open_time: int) -> bool:
        """Return whether `open_time` lies inside the range."""
        return self.start_ms <= open_time < self.end_ms

    def pages(self, page_bars: int) -> list[OpenTimeRange]:
        """Split into consecutive sub-ranges of at most `page_bars` bars, oldest first."""
        span = page_bars * self.step_ms
        return [
            OpenTimeRange(start, min(start + span, self.end_ms), self.step_ms)
            for start in range(self.start_ms, self.end_ms, span)
        ]


def latest_closed_open_ms(closed_before_ms: int, timeframe: Timeframe) -> int:
    """Return the open time of the newest bar whose end is at or before `closed_before_ms`."""
    return floor_to_boundary(closed_before_ms, timeframe) - duration_ms(timeframe)


def _align_up(timestamp_ms: int, step: int) -> int:
    return -(-timestamp_ms // step) * step


def resolve_range(
    timeframe: Timeframe,
    *,
    start_ms: int | None,
    end_ms: int | None,
    limit: int | None,
    now_ms: int,
    closed_before_ms: int,
    include_open: bool,
) -> OpenTimeRange:
    """Turn `get_candles` arguments into the concrete open-time range to fetch.

    With no `start_ms` the range is the newest `limit` bars ending at `end_ms` (or now); with a
    `start_ms` it runs forward from there, `limit` bars at most. Never past the present: the
    still-forming bar only with `include_open`.
    """
    step = duration_ms(timeframe)
    horizon = (
        floor_to_boundary(now_ms, timeframe) + step
        if include_open
        else latest_closed_open_ms(closed_before_ms, timeframe) + step
    )
    end = horizon if end_ms is None else min(_align_up(end_ms, step), horizon)
    if start_ms is None:
        start = end - (limit or DEFAULT_LIMIT) * step
    else:
        start = _align_up(start_ms, step)
        if limit is not None:
            end = min(end, start + limit * step)
    return OpenTimeRange(start, max(start, end), step)
