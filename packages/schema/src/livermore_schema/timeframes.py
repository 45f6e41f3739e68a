"""Pure helpers over timeframes: durations and UTC boundary arithmetic (epoch milliseconds)."""

from __future__ import annotations

from livermore_schema.enums import Timeframe

_MINUTE_MS = 60_000

_DURATION_MS: dict[Timeframe, int] = {
    Timeframe.M1: _MINUTE_MS,
    Timeframe.M5: 5 * _MINUTE_MS,
    Timeframe.M15: 15 * _MINUTE_MS,
    Timeframe.M30: 30 * _MINUTE_MS,
    Timeframe.H1: 60 * _MINUTE_MS,
    Timeframe.H2: 120 * _MINUTE_MS,
    Timeframe.H4: 240 * _MINUTE_MS,
    Timeframe.H6: 360 * _MINUTE_MS,
    Timeframe.D1: 1440 * _MINUTE_MS,
}


def duration_ms(timeframe: Timeframe) -> int:
    """Return the length of one bar of `timeframe` in milliseconds."""
    return _DURATION_MS[timeframe]


def floor_to_boundary(timestamp_ms: int, timeframe: Timeframe) -> int:
    """Return the open time of the `timeframe` bar containing `timestamp_ms` (UTC epoch aligned)."""
    step = _DURATION_MS[timeframe]
    return timestamp_ms - timestamp_ms % step


def is_boundary(timestamp_ms: int, timeframe: Timeframe) -> bool:
    """Return whether `timestamp_ms` is exactly the start of a `timeframe` bar."""
    return timestamp_ms % _DURATION_MS[timeframe] == 0


def close_time_ms(open_time_ms: int, timeframe: Timeframe) -> int:
    """Return a bar's close time: the last millisecond it covers (open + duration - 1)."""
    return open_time_ms + _DURATION_MS[timeframe] - 1


def bar_open_times(start_ms: int, end_ms: int, timeframe: Timeframe) -> range:
    """Return the open times of every bar whose open lies in [start_ms, end_ms), aligned up."""
    step = _DURATION_MS[timeframe]
    first = -(-start_ms // step) * step
    return range(first, end_ms, step)
