"""The MACD-V alert rules of SPEC section 7 as pure functions.

- Level crossing, only *into* an extreme (as the original): falling through an oversold level
  -150 ... -400 (prev >= L > cur) reports the deepest one crossed, direction `down`; rising
  through an overbought level +150 ... +400 (prev <= L < cur) the highest, direction `up`.
  Leaving an extreme is no level alert: a fall from 300 to 180 or a rise from -300 to -180
  fires nothing. `prev` is the MACD-V of the series' previous published bar.
- Reversal: oversold when prev < -150, cur < -150 and histogram > 0.05*|cur|; overbought when
  prev > 150, cur > 150 and histogram < -0.03*|cur|. Only while armed: a fired reversal disarms the
  series and any level crossing (cooldown or not, it starts a new excursion) re-arms it.
- Bias from the stages of every timeframe, weighted 1m 1 ... 1d 6, with the 1.5x rule.

Cooldowns are not decided here (they need shared state); see `evaluator.AlertEvaluator`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from livermore_schema.enums import AlertDirection, Bias, Stage, Timeframe

LEVELS: tuple[int, ...] = (-400, -350, -300, -250, -200, -150, 150, 200, 250, 300, 350, 400)
"""Alert levels, ascending."""
OVERSOLD_LEVELS: tuple[int, ...] = tuple(level for level in LEVELS if level < 0)
"""Levels that fire when MACD-V falls through them."""
OVERBOUGHT_LEVELS: tuple[int, ...] = tuple(level for level in LEVELS if level > 0)
"""Levels that fire when MACD-V rises through them."""

REVERSAL_ZONE = 150.0
"""|MACD-V| beyond which a reversal is looked for."""
OVERSOLD_BUFFER = 0.05
"""An oversold reversal needs histogram > 5% of |MACD-V|."""
OVERBOUGHT_BUFFER = 0.03
"""An overbought reversal needs histogram < -3% of |MACD-V|."""

BIAS_WEIGHTS: dict[Timeframe, int] = {
    Timeframe.M1: 1,
    Timeframe.M5: 2,
    Timeframe.M15: 3,
    Timeframe.H1: 4,
    Timeframe.H4: 5,
    Timeframe.D1: 6,
}
"""Bias weight of each runtime timeframe; other timeframes weigh nothing."""
BIAS_RATIO = 1.5
"""One side must outweigh the other by this factor to set the bias."""
BULLISH_STAGES = frozenset({Stage.OVERSOLD, Stage.REBOUNDING, Stage.RALLYING})
"""Stages that add their timeframe's weight to the bull score."""
BEARISH_STAGES = frozenset({Stage.OVERBOUGHT, Stage.RETRACING, Stage.REVERSING})
"""Stages that add their timeframe's weight to the bear score."""


Direction = AlertDirection
"""Which way an alert's MACD-V moved (`AlertEvent.direction`)."""


class Zone(StrEnum):
    """The extreme a reversal turns from."""

    OVERSOLD = "oversold"
    OVERBOUGHT = "overbought"


def level_label(level: int) -> str:
    """Return the alert label of a level, e.g. `level_-200`."""
    return f"level_{level}"


@dataclass(frozen=True, slots=True)
class LevelCrossing:
    """A level crossed between two consecutive MACD-V readings."""

    level: int
    direction: Direction

    @property
    def label(self) -> str:
        """`level_{L}`."""
        return level_label(self.level)


@dataclass(frozen=True, slots=True)
class Reversal:
    """A histogram turn deep in an extreme zone."""

    zone: Zone
    buffer: float
    buffer_pct: float

    @property
    def label(self) -> str:
        """`reversal_oversold` or `reversal_overbought`."""
        return f"reversal_{self.zone.value}"

    @property
    def direction(self) -> Direction:
        """`up` when turning up from oversold, `down` when turning down from overbought."""
        return Direction.UP if self.zone is Zone.OVERSOLD else Direction.DOWN


Trigger = LevelCrossing | Reversal


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """What one new reading triggers, before cooldowns; `armed` is the next arming state."""

    triggers: tuple[Trigger, ...]
    armed: bool
    rearmed: bool = False
    """Whether a level crossing re-armed the reversal rule."""


_QUIET = min(abs(level) for level in LEVELS)
"""Between -_QUIET and +_QUIET no level can be crossed and no reversal is looked for."""
_NOTHING = {armed: RuleOutcome((), armed) for armed in (False, True)}


def level_crossing(prev: float, cur: float) -> LevelCrossing | None:
    """Return the deepest oversold level fallen through or the highest overbought one risen."""
    if cur < prev:
        fallen = [level for level in OVERSOLD_LEVELS if prev >= level > cur]
        return LevelCrossing(min(fallen), Direction.DOWN) if fallen else None
    if cur > prev:
        risen = [level for level in OVERBOUGHT_LEVELS if prev <= level < cur]
        return LevelCrossing(max(risen), Direction.UP) if risen else None
    return None


def reversal(prev: float, cur: float, histogram: float | None) -> Reversal | None:
    """Return the reversal the reading shows (ignoring arming), if any."""
    if histogram is None:
        return None
    if prev < -REVERSAL_ZONE and cur < -REVERSAL_ZONE:
        buffer = OVERSOLD_BUFFER * abs(cur)
        if histogram > buffer:
            return Reversal(Zone.OVERSOLD, buffer, OVERSOLD_BUFFER * 100)
    elif prev > REVERSAL_ZONE and cur > REVERSAL_ZONE:
        buffer = OVERBOUGHT_BUFFER * abs(cur)
        if histogram < -buffer:
            return Reversal(Zone.OVERBOUGHT, buffer, OVERBOUGHT_BUFFER * 100)
    return None


def evaluate_rules(prev: float, cur: float, histogram: float | None, *, armed: bool) -> RuleOutcome:
    """Apply both rules to consecutive readings; the crossing (if any) comes first.

    A crossing re-arms before the reversal check, so one reading may yield both. The returned
    `armed` assumes every trigger fires; the caller keeps the series armed when a cooldown
    suppresses the reversal.
    """
    if -_QUIET < prev < _QUIET and -_QUIET < cur < _QUIET:
        return _NOTHING[armed]  # most readings: no level between them, no zone to turn in
    crossing = level_crossing(prev, cur)
    armed = armed or crossing is not None
    turn = reversal(prev, cur, histogram) if armed else None
    triggers = tuple(t for t in (crossing, turn) if t is not None)
    return RuleOutcome(triggers, armed and turn is None, rearmed=crossing is not None)


def compute_bias(stages: Iterable[tuple[Timeframe, Stage]]) -> Bias:
    """Return bullish/bearish when that side's weight exceeds 1.5x the other's, else neutral."""
    bull = bear = 0
    for timeframe, stage in stages:
        weight = BIAS_WEIGHTS.get(timeframe, 0)
        if stage in BULLISH_STAGES:
            bull += weight
        elif stage in BEARISH_STAGES:
            bear += weight
    if bull > BIAS_RATIO * bear:
        return Bias.BULLISH
    if bear > BIAS_RATIO * bull:
        return Bias.BEARISH
    return Bias.NEUTRAL
