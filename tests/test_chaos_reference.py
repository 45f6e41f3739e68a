"""The chaos soak's own reference (tests/chaos/reference.py) and verdicts, on hand-made inputs.

The soak trusts this reference to say which alerts the truth implies, so its SPEC 6/7 reading is
pinned here without the code under test: gap fills, the rules' firing, arming and cooldown, and
which `delayed` flag a fault window asks for.
"""

from __future__ import annotations

from livermore_exchange_sim.market import Venue

from .chaos.checks import Published, Window, judge_alerts
from .chaos.reference import Bar, Point, expected_alerts, fill_gaps, macd_v

MIN = 60_000


def _points(values: list[tuple[float, float]]) -> list[Point]:
    return [Point(i * MIN, v, h, False) for i, (v, h) in enumerate(values)]


def test_gaps_are_filled_with_flat_synthetic_bars_that_skip_the_true_range() -> None:
    bars = [Bar(0, 11.0, 9.0, 10.0), Bar(3 * MIN, 12.0, 10.0, 11.0)]
    filled = fill_gaps(bars, MIN)
    assert [b.open_time for b in filled] == [0, MIN, 2 * MIN, 3 * MIN]
    assert [b.synthetic for b in filled] == [False, True, True, False]
    assert filled[1].high == filled[1].low == filled[1].close == 10.0
    steady = [Bar(i * MIN, 101.0 + i, 99.0 + i, 100.0 + i) for i in range(40)]
    points = macd_v(steady)
    assert points[24].macd_v is None and points[25].macd_v is not None  # 26 TRs, EMA26
    assert points[32].histogram is None and points[33].histogram is not None  # EMA9 of MACD-V


def test_crossings_fire_entering_an_extreme_only_once_per_cooldown() -> None:
    values = [(-140.0, 0.0), (-160.0, 0.0), (-140.0, 0.0), (-210.0, 0.0), (-260.0, 0.0)]
    values += [(-140.0, 0.0)] * 2 + [(-160.0, 0.0)]  # falls through -150 again at minute 7
    fired = [(e.open_time // MIN, e.label) for e in expected_alerts(_points(values), first_open=0)]
    # -150 at 1, -200 at 3, -250 at 4; the second -150 (minute 7) is 6 minutes after: allowed
    assert fired == [(1, "level_-150"), (3, "level_-200"), (4, "level_-250"), (7, "level_-150")]
    cooled = [(-140.0, 0.0), (-160.0, 0.0), (-140.0, 0.0), (-160.0, 0.0)]
    assert [e.label for e in expected_alerts(_points(cooled), first_open=0)] == ["level_-150"]


def test_one_reversal_per_excursion_rearmed_by_a_crossing() -> None:
    values = [(-205.0, 0.0), (-210.0, 20.0), (-209.0, 25.0)] + [(-209.0, 25.0)] * 5
    values += [(-260.0, 5.0), (-265.0, 25.0)]
    fired = [(e.open_time // MIN, e.label) for e in expected_alerts(_points(values), first_open=0)]
    assert fired == [(1, "reversal_oversold"), (8, "level_-250"), (9, "reversal_oversold")]


def test_a_value_on_a_threshold_is_ambiguous() -> None:
    found = expected_alerts(_points([(-140.0, 0.0), (-150.0000001, 0.0)]), first_open=0)
    assert [(e.label, e.ambiguous) for e in found] == [("level_-150", True)]


def test_verdicts_on_missing_twice_unimplied_and_the_delayed_flag() -> None:
    bar = 10 * MIN
    key = (2, "BTCUSDT", "1m", "level_-150", bar)
    other = (2, "BTCUSDT", "1m", "level_-200", bar + MIN)
    reference = {key: (False, -160.0), other: (False, -210.0)}
    blind = [Window(Venue.BINANCE, bar - 5 * MIN, bar + 5 * MIN, blind=True)]
    twice = [Published("a", key, False, -160.0), Published("b", key, True, -160.0)]
    verdict = judge_alerts(reference, twice, blind, edge_ms=45_000)
    assert sorted(p.split(":")[0] for p in verdict.problems) == [
        "alert delayed=False, expected True",
        "alert missing",
        "alert published 2 times",
    ]
    stray = (2, "BTCUSDT", "1m", "level_150", bar)
    verdict = judge_alerts({}, [Published("c", stray, False, 160.0)], [], edge_ms=45_000)
    assert [p.split(":")[0] for p in verdict.problems] == ["alert not implied by the truth"]
    clean = [Published("d", key, False, -160.0), Published("e", other, False, -210.0)]
    assert judge_alerts(reference, clean, [], edge_ms=45_000).problems == []
