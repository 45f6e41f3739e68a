from __future__ import annotations

import re

import pytest

from livermore_exchange_core.alerts.rules import (
    LEVELS,
    Direction,
    LevelCrossing,
    Reversal,
    Zone,
    compute_bias,
    evaluate_rules,
    level_crossing,
    level_label,
    reversal,
)
from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import Bias, Stage, Timeframe

DOWN, UP = Direction.DOWN, Direction.UP


@pytest.mark.parametrize(
    ("prev", "cur", "expected"),
    [
        # entering oversold, falling: prev >= L > cur, deepest reported, direction down
        (-140.0, -160.0, (-150, DOWN)),
        (-150.0, -150.1, (-150, DOWN)),  # prev exactly on the level counts
        (-149.9, -150.0, None),  # cur exactly on the level does not
        (-140.0, -260.0, (-250, DOWN)),  # -150, -200, -250 crossed: deepest
        (-100.0, -1000.0, (-400, DOWN)),
        (-399.0, -401.0, (-400, DOWN)),
        (-401.0, -500.0, None),  # beyond the last level
        (-210.0, -240.0, None),  # deeper, but between two levels
        # entering overbought, rising: prev <= L < cur, highest reported, direction up
        (140.0, 160.0, (150, UP)),
        (150.0, 150.1, (150, UP)),  # prev exactly on the level counts
        (149.0, 150.0, None),  # cur exactly on the level does not
        (140.0, 410.0, (400, UP)),  # 150 ... 400 crossed: highest
        (240.0, 360.0, (350, UP)),
        (401.0, 500.0, None),
        # leaving an extreme is never a level alert
        (300.0, 180.0, None),  # falling through 250 and 200 (the original's false alarm)
        (160.0, 150.0, None),
        (150.0, 149.0, None),
        (450.0, 100.0, None),  # out of overbought in one bar
        (-300.0, -180.0, None),  # rising through -250 and -200
        (-160.0, -150.0, None),
        (-150.0, -149.0, None),
        (-450.0, -100.0, None),
        # through zero in one bar: only the far extreme's levels count
        (300.0, -300.0, (-250, DOWN)),
        (160.0, -160.0, (-150, DOWN)),
        (-300.0, 300.0, (250, UP)),
        (-160.0, 160.0, (150, UP)),
        (100.0, -100.0, None),  # +-50 and 0 are not levels
        (500.0, 500.0, None),
        (-200.0, -200.0, None),
    ],
)
def test_level_crossing(prev: float, cur: float, expected: tuple[int, Direction] | None) -> None:
    got = level_crossing(prev, cur)
    assert got == (None if expected is None else LevelCrossing(*expected))


def test_level_labels_match_the_event_schema() -> None:
    assert level_label(-200) == "level_-200"
    assert LevelCrossing(150, UP).label == "level_150"
    metadata = AlertEvent.model_fields["trigger_label"].metadata
    pattern = next(m.pattern for m in metadata if getattr(m, "pattern", None))
    labels = [level_label(level) for level in LEVELS] + ["reversal_oversold", "reversal_overbought"]
    assert all(re.fullmatch(pattern, label) for label in labels)


@pytest.mark.parametrize(
    ("prev", "cur", "histogram", "expected"),
    [
        # oversold: prev < -150, cur < -150, histogram > 0.05*|cur|
        (-200.0, -200.0, 10.01, Zone.OVERSOLD),
        (-200.0, -200.0, 10.0, None),  # exactly the buffer is not enough
        (-150.0, -200.0, 50.0, None),  # prev on the edge
        (-200.0, -150.0, 50.0, None),  # cur on the edge
        (-160.0, -151.0, 7.56, Zone.OVERSOLD),  # 0.05*151 = 7.55
        (-200.0, -200.0, -30.0, None),
        (-200.0, -200.0, None, None),
        # overbought: prev > 150, cur > 150, histogram < -0.03*|cur|
        (200.0, 200.0, -6.01, Zone.OVERBOUGHT),
        (200.0, 200.0, -6.0, None),
        (150.0, 200.0, -50.0, None),
        (200.0, 150.0, -50.0, None),
        (200.0, 200.0, 6.01, None),
        # mixed or mid-range: never
        (-200.0, 200.0, 50.0, None),
        (0.0, 0.0, 100.0, None),
    ],
)
def test_reversal(prev: float, cur: float, histogram: float | None, expected: Zone | None) -> None:
    got = reversal(prev, cur, histogram)
    assert (got.zone if got else None) == expected


@pytest.mark.parametrize(
    ("prev", "cur", "histogram", "direction"),
    [
        (-140.0, -260.0, 0.0, DOWN),  # oversold level
        (240.0, 360.0, 0.0, UP),  # overbought level
        (-300.0, -200.0, 11.0, UP),  # turning up from oversold
        (300.0, 200.0, -7.0, DOWN),  # turning down from overbought
    ],
)
def test_every_trigger_carries_the_direction_of_its_move(
    prev: float, cur: float, histogram: float, direction: Direction
) -> None:
    [trigger] = evaluate_rules(prev, cur, histogram, armed=True).triggers
    assert trigger.direction is direction
    assert AlertEvent.model_fields["direction"].annotation is Direction


def test_reversal_reports_its_buffer_and_label() -> None:
    assert reversal(-300.0, -200.0, 11.0) == Reversal(Zone.OVERSOLD, 10.0, 5.0)
    turn = reversal(300.0, 200.0, -7.0)
    assert turn is not None and turn.label == "reversal_overbought"
    assert turn.buffer == pytest.approx(6.0) and turn.buffer_pct == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("prev", "cur", "histogram", "armed", "labels", "armed_after"),
    [
        (-140.0, -160.0, 0.0, True, ["level_-150"], True),
        (-205.0, -210.0, 20.0, True, ["reversal_oversold"], False),
        (-205.0, -210.0, 20.0, False, [], False),  # one reversal per excursion
        (-190.0, -210.0, 20.0, False, ["level_-200", "reversal_oversold"], False),  # re-armed
        (140.0, 160.0, 0.0, False, ["level_150"], True),  # any entering crossing re-arms
        (-160.0, -120.0, 0.0, False, [], False),  # leaving the extreme re-arms nothing
        (205.0, 220.0, -10.0, True, ["reversal_overbought"], False),
        (0.0, 10.0, 1.0, False, [], False),
        (0.0, 10.0, 1.0, True, [], True),
    ],
)
def test_evaluate_rules(
    prev: float,
    cur: float,
    histogram: float,
    armed: bool,
    labels: list[str],
    armed_after: bool,
) -> None:
    outcome = evaluate_rules(prev, cur, histogram, armed=armed)
    assert [t.label for t in outcome.triggers] == labels
    assert outcome.armed is armed_after
    assert outcome.rearmed is any(label.startswith("level_") for label in labels)


TF = Timeframe


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ({}, Bias.NEUTRAL),
        ({TF.M1: Stage.RANGING, TF.D1: Stage.UNKNOWN}, Bias.NEUTRAL),
        ({TF.M1: Stage.OVERSOLD}, Bias.BULLISH),  # 1 > 1.5*0
        ({TF.M1: Stage.OVERBOUGHT}, Bias.BEARISH),
        # bull 6 (1d) vs bear 4 (1h): 6 > 6 is false -> neutral (strict 1.5x rule)
        ({TF.D1: Stage.RALLYING, TF.H1: Stage.RETRACING}, Bias.NEUTRAL),
        # bull 6+1 = 7 vs bear 4: 7 > 6 -> bullish
        ({TF.D1: Stage.REBOUNDING, TF.M1: Stage.OVERSOLD, TF.H1: Stage.REVERSING}, Bias.BULLISH),
        # bear 5+4 = 9 vs bull 6: 9 > 9 false -> neutral; add 1m bear: 10 > 9 -> bearish
        ({TF.H4: Stage.OVERBOUGHT, TF.H1: Stage.RETRACING, TF.D1: Stage.RALLYING}, Bias.NEUTRAL),
        (
            {
                TF.H4: Stage.OVERBOUGHT,
                TF.H1: Stage.RETRACING,
                TF.D1: Stage.RALLYING,
                TF.M1: Stage.REVERSING,
            },
            Bias.BEARISH,
        ),
        ({TF.M30: Stage.RALLYING}, Bias.NEUTRAL),  # not a weighted timeframe
    ],
)
def test_compute_bias(stages: dict[Timeframe, Stage], expected: Bias) -> None:
    assert compute_bias(stages.items()) is expected
