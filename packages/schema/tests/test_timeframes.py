from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livermore_schema.enums import RUNTIME_TIMEFRAMES, Timeframe
from livermore_schema.timeframes import (
    bar_open_times,
    close_time_ms,
    duration_ms,
    floor_to_boundary,
    is_boundary,
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


MIDNIGHT = ms("2024-05-01T00:00:00")


@pytest.mark.parametrize(
    ("timeframe", "minutes"),
    [("1m", 1), ("5m", 5), ("15m", 15), ("30m", 30), ("1h", 60), ("2h", 120), ("4h", 240),
     ("6h", 360), ("1d", 1440)],
)  # fmt: skip
def test_duration_of_every_timeframe(timeframe: str, minutes: int) -> None:
    assert duration_ms(Timeframe(timeframe)) == minutes * 60_000


def test_every_timeframe_has_a_duration() -> None:
    assert all(duration_ms(tf) > 0 for tf in Timeframe)
    assert [tf.value for tf in RUNTIME_TIMEFRAMES] == ["1m", "5m", "15m", "1h", "4h", "1d"]


@pytest.mark.parametrize(
    ("timestamp", "timeframe", "expected"),
    [
        ("2024-05-01T13:47:31", Timeframe.M5, "2024-05-01T13:45:00"),
        ("2024-05-01T13:47:31", Timeframe.M15, "2024-05-01T13:45:00"),
        ("2024-05-01T13:47:31", Timeframe.H1, "2024-05-01T13:00:00"),
        ("2024-05-01T13:47:31", Timeframe.H4, "2024-05-01T12:00:00"),
        ("2024-05-01T23:59:59", Timeframe.D1, "2024-05-01T00:00:00"),
        ("2024-05-01T00:00:00", Timeframe.D1, "2024-05-01T00:00:00"),
    ],
)
def test_floor_to_boundary_is_utc_aligned(
    timestamp: str, timeframe: Timeframe, expected: str
) -> None:
    assert floor_to_boundary(ms(timestamp), timeframe) == ms(expected)


def test_daily_boundary_is_utc_midnight() -> None:
    assert is_boundary(MIDNIGHT, Timeframe.D1)
    assert not is_boundary(MIDNIGHT + 3_600_000, Timeframe.D1)
    assert not is_boundary(MIDNIGHT - 1, Timeframe.D1)
    assert all(is_boundary(MIDNIGHT, tf) for tf in Timeframe)


def test_four_hour_boundaries_fall_on_multiples_of_four_utc() -> None:
    hours = [h for h in range(24) if is_boundary(MIDNIGHT + h * 3_600_000, Timeframe.H4)]
    assert hours == [0, 4, 8, 12, 16, 20]
    assert not is_boundary(MIDNIGHT + 5 * 60_000 + 1, Timeframe.M5)


def test_close_time_is_last_millisecond_of_the_bar() -> None:
    assert close_time_ms(MIDNIGHT, Timeframe.M5) == MIDNIGHT + 299_999
    assert close_time_ms(MIDNIGHT, Timeframe.D1) == ms("2024-05-01T23:59:59") + 999


def test_bar_open_times_align_up_and_exclude_end() -> None:
    start = MIDNIGHT + 60_000  # 00:01
    end = MIDNIGHT + 20 * 60_000  # 00:20
    assert list(bar_open_times(start, end, Timeframe.M5)) == [
        MIDNIGHT + m * 60_000 for m in (5, 10, 15)
    ]
    assert list(bar_open_times(MIDNIGHT, MIDNIGHT, Timeframe.M1)) == []
    assert list(bar_open_times(MIDNIGHT, MIDNIGHT + 1, Timeframe.H1)) == [MIDNIGHT]
    assert len(bar_open_times(MIDNIGHT, MIDNIGHT + 86_400_000, Timeframe.M15)) == 96


@settings(derandomize=True, max_examples=200, deadline=None)
@given(
    timestamp=st.integers(min_value=0, max_value=4_102_444_800_000),
    timeframe=st.sampled_from(list(Timeframe)),
)
def test_floor_properties(timestamp: int, timeframe: Timeframe) -> None:
    floor = floor_to_boundary(timestamp, timeframe)
    assert floor <= timestamp < floor + duration_ms(timeframe)
    assert is_boundary(floor, timeframe)
    assert is_boundary(timestamp, timeframe) == (floor == timestamp)
    assert floor <= close_time_ms(floor, timeframe) < floor + duration_ms(timeframe)
