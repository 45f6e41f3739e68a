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
        # falling: prev >= L > cur, deepest reported
        (-140.0, -160.0, (-150, DOWN)),
        (-150.0, -150.1, (-150, DOWN)),  # prev exactly on the level counts
        (-149.9, -150.0, None),  # cur exactly on the level does not
        (-140.0, -260.0, (-250, DOWN)),  # -150, -200, -250 crossed: deepest
        (-100.0, -1000.0, (-400, DOWN)),
        (-399.0, -401.0, (-400, DOWN)),
        (-401.0, -500.0, None),  # beyond the last level
        (300.0, 180.0, (200, DOWN)),  # leaving overbought: 250 and 200 crossed
        (300.0, -300.0, (-250, DOWN)),  # through every level in between
        (160.0, 150.0, None),
        (150.0, 149.0, (150, DOWN)),
        (100.0, -100.0, None),  # +-50 and 0 are not levels
        # rising: prev <= L < cur, highest reported
        (140.0, 160.0, (150, UP)),
        (150.0, 150.1, (150, UP)),
        (149.0, 150.0, None),
        (140.0, 410.0, (400, UP)),
        (-300.0, -180.0, (-200, UP)),  # leaving oversold
        (-160.0, -150.0, None),
        (-150.0, -149.0, (-150, UP)),
        (-300.0, 300.0, (250, UP)),
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
        (-160.0, -120.0, 0.0, False, ["level_-150"], True),  # any crossing re-arms
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
