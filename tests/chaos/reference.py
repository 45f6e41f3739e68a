"""An independent reference for the soak: MACD-V (SPEC 6) and the alert rules (SPEC 7) over truth.

Written from the SPEC, not imported from the code under test, so a shared misreading cannot hide:

- EMA(p): alpha = 2/(p+1), seeded with the SMA of the first p values.
- TR = max(H-L, |H-prevC|, |L-prevC|) (first bar H-L); ATR: SMA of the first 26 real TRs, then
  Wilder (ATR*25 + TR)/26. Missing bars (Coinbase omits empty minutes) are filled with synthetic
  bars O=H=L=C=previous close: they feed the EMAs, their TR is skipped (the ATR carries forward).
- MACD-V = (EMA12 - EMA26) / ATR26 * 100, undefined while an input is; Signal = EMA9 of MACD-V
  from its first defined value; Histogram = MACD-V - Signal.
- Rules per published bar (synthetic bars never are): a level crossing only *into* an extreme
  (deepest oversold level fallen through, highest overbought risen through); a reversal while
  armed (prev and cur beyond -150 with histogram > 5% |cur|, or beyond +150 with histogram
  < -3% |cur|), disarmed when it fires, re-armed by any crossing; a 5 minute cooldown per label in
  bar (exchange) time, never twice for one bar. A series' first value only initialises it.

A decision within `EPSILON` of its threshold is marked `ambiguous`: float summation order may tip
it either way, so the soak neither requires nor forbids such an alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FAST, SLOW, ATR_PERIOD, SIGNAL = 12, 26, 26, 9
OVERSOLD = (-150, -200, -250, -300, -350, -400)
OVERBOUGHT = (150, 200, 250, 300, 350, 400)
ZONE = 150.0
EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class Bar:
    """One truth bar (or a synthetic fill)."""

    open_time: int
    high: float
    low: float
    close: float
    synthetic: bool = False


@dataclass(frozen=True, slots=True)
class Point:
    """MACD-V and histogram after one bar (None while undefined)."""

    open_time: int
    macd_v: float | None
    histogram: float | None
    synthetic: bool


@dataclass(frozen=True, slots=True)
class Expected:
    """An alert the truth implies for one bar of one series."""

    open_time: int
    label: str
    macd_v: float
    ambiguous: bool


class _Ema:
    def __init__(self, period: int) -> None:
        self.period, self.alpha = period, 2.0 / (period + 1)
        self.seed: list[float] = []
        self.value: float | None = None

    def add(self, x: float) -> float | None:
        if self.value is None:
            self.seed.append(x)
            if len(self.seed) == self.period:
                self.value = sum(self.seed) / self.period
            return self.value
        self.value = self.alpha * x + (1 - self.alpha) * self.value
        return self.value


def fill_gaps(bars: Sequence[Bar], step_ms: int) -> list[Bar]:
    """Insert a synthetic bar (O=H=L=C=previous close) for every missing step between bars."""
    out: list[Bar] = []
    for bar in bars:
        if out:
            prev = out[-1]
            for t in range(prev.open_time + step_ms, bar.open_time, step_ms):
                out.append(Bar(t, prev.close, prev.close, prev.close, synthetic=True))
        out.append(bar)
    return out


def macd_v(bars: Sequence[Bar]) -> list[Point]:
    """MACD-V, signal and histogram after every bar (gaps already filled)."""
    fast, slow, signal = _Ema(FAST), _Ema(SLOW), _Ema(SIGNAL)
    trs: list[float] = []
    atr: float | None = None
    prev_close: float | None = None
    points: list[Point] = []
    for bar in bars:
        f, s = fast.add(bar.close), slow.add(bar.close)
        if not bar.synthetic:
            tr = bar.high - bar.low
            if prev_close is not None:
                tr = max(tr, abs(bar.high - prev_close), abs(bar.low - prev_close))
            if atr is None:
                trs.append(tr)
                if len(trs) == ATR_PERIOD:
                    atr = sum(trs) / ATR_PERIOD
            else:
                atr = (atr * (ATR_PERIOD - 1) + tr) / ATR_PERIOD
        prev_close = bar.close
        value = None
        if f is not None and s is not None and atr is not None and atr != 0:
            value = (f - s) / atr * 100.0
        histogram = None
        if value is not None:
            sig = signal.add(value)
            histogram = None if sig is None else value - sig
        points.append(Point(bar.open_time, value, histogram, bar.synthetic))
    return points


def _near(x: float, threshold: float) -> bool:
    return abs(x - threshold) < EPSILON


def _crossing(prev: float, cur: float) -> tuple[str | None, bool]:
    """(label of the level crossed, ambiguous)."""
    near = any(_near(prev, lv) or _near(cur, lv) for lv in (*OVERSOLD, *OVERBOUGHT))
    if cur < prev:
        fallen = [lv for lv in OVERSOLD if prev >= lv > cur]
        return (f"level_{min(fallen)}" if fallen else None), near
    if cur > prev:
        risen = [lv for lv in OVERBOUGHT if prev <= lv < cur]
        return (f"level_{max(risen)}" if risen else None), near
    return None, near


def _reversal(prev: float, cur: float, hist: float | None) -> tuple[str | None, bool]:
    """(reversal label, ambiguous), ignoring arming."""
    if hist is None:
        return None, False
    near_zone = any(_near(abs(x), ZONE) for x in (prev, cur))
    if prev < -ZONE and cur < -ZONE:
        buffer = 0.05 * abs(cur)
        return ("reversal_oversold" if hist > buffer else None), near_zone or _near(hist, buffer)
    if prev > ZONE and cur > ZONE:
        buffer = 0.03 * abs(cur)
        return ("reversal_overbought" if hist < -buffer else None), near_zone or _near(
            hist, -buffer
        )
    return None, near_zone


def expected_alerts(
    points: Sequence[Point], *, first_open: int, cooldown_ms: int = 300_000
) -> list[Expected]:
    """Alerts of the published bars from `first_open` on (that bar only initialises the series)."""
    prev: float | None = None
    armed = True
    fired_at: dict[str, int] = {}
    out: list[Expected] = []
    for point in points:
        if point.synthetic or point.open_time < first_open or point.macd_v is None:
            continue
        cur = point.macd_v
        if prev is None:
            prev = cur
            continue
        crossing, near_cross = _crossing(prev, cur)
        armed = armed or crossing is not None
        turn, near_turn = _reversal(prev, cur, point.histogram) if armed else (None, False)
        for label, near in ((crossing, near_cross), (turn, near_turn)):
            if label is None:
                continue
            last = fired_at.get(label)
            if last is not None and point.open_time - last < cooldown_ms:
                continue  # (a bar never comes twice here, so "not twice for one bar" holds)
            fired_at[label] = point.open_time
            out.append(Expected(point.open_time, label, cur, near))
            if label.startswith("reversal"):
                armed = False
        prev = cur
    return out
