"""MACD-V (SPEC section 6): the batch reference and the O(1)-per-bar incremental state.

MACD-V = (EMA12(close) - EMA26(close)) / ATR26 x 100, with the ATR computed over real bars only
(see `primitives.wilder_atr`). Signal = EMA9 of MACD-V from its first defined value; histogram =
MACD-V - signal. Should MACD-V become undefined again after that (only if the ATR decays to exactly
0), the signal carries forward and the histogram is undefined for that bar.

The gap ratio of a point is the share of synthetic bars among the newest `gap_window` bars up to
and including it (the original recomputed from the newest 200 cached candles), so it tracks the
symbol's current liquidity however long the state lives. `n_eff` counts every real bar seen.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from livermore_exchange_core.indicators.primitives import (
    classify_liquidity,
    classify_stage,
    ema,
    fill_gaps,
    wilder_atr,
)
from livermore_schema.enums import Liquidity, Stage, Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms


@dataclass(frozen=True, slots=True)
class MacdVParams:
    """MACD-V periods and scale (SPEC defaults) plus the liquidity window."""

    fast: int = 12
    slow: int = 26
    atr: int = 26
    signal: int = 9
    scale: float = 100.0
    gap_window: int = 200


DEFAULT_PARAMS = MacdVParams()
"""Fast 12, slow 26, ATR 26, signal 9, scale 100, liquidity over the newest 200 bars."""


@dataclass(frozen=True, slots=True)
class MacdVPoint:
    """MACD-V and its inputs at one (possibly synthetic) bar."""

    open_time: int
    close: float
    synthetic: bool
    fast_ema: float | None
    slow_ema: float | None
    atr: float | None
    macd_v: float | None
    signal: float | None
    histogram: float | None
    seeded: bool
    n_eff: int
    gap_ratio: float

    @property
    def stage(self) -> Stage:
        """Stage of (macd_v, signal)."""
        return classify_stage(self.macd_v, self.signal)

    @property
    def liquidity(self) -> Liquidity:
        """Liquidity class of the gap ratio."""
        return classify_liquidity(self.gap_ratio)


class OutOfOrderBarError(ValueError):
    """A bar was not newer than the state's last bar; the caller should re-warm from history."""


def macd_v_series(
    candles: Sequence[Candle], params: MacdVParams = DEFAULT_PARAMS
) -> list[MacdVPoint]:
    """Return one point per bar of the gap-filled `candles` (the batch reference).

    The timeframe is the first candle's; candles must be strictly increasing in open time.
    """
    if not candles:
        return []
    filled, _ = fill_gaps(candles, candles[0].timeframe)
    closes = [bar.close for bar in filled]
    synthetic = [bar.synthetic for bar in filled]
    fast = ema(closes, params.fast)
    slow = ema(closes, params.slow)
    atr, n_eff = wilder_atr(
        [bar.high for bar in filled], [bar.low for bar in filled], closes, synthetic, params.atr
    )
    macd_v: list[float | None] = []
    for f, s, a in zip(fast, slow, atr, strict=True):
        macd_v.append((f - s) / a * params.scale if f is not None and s is not None and a else None)
    signal = _signal_series(macd_v, params.signal)
    points: list[MacdVPoint] = []
    synthetic_seen = 0
    for index, bar in enumerate(filled):
        synthetic_seen += synthetic[index]
        if index >= params.gap_window:
            synthetic_seen -= synthetic[index - params.gap_window]
        mv, sig = macd_v[index], signal[index]
        points.append(
            MacdVPoint(
                open_time=bar.open_time,
                close=bar.close,
                synthetic=bar.synthetic,
                fast_ema=fast[index],
                slow_ema=slow[index],
                atr=atr[index],
                macd_v=mv,
                signal=sig,
                histogram=mv - sig if mv is not None and sig is not None else None,
                seeded=atr[index] is not None,
                n_eff=n_eff[index],
                gap_ratio=synthetic_seen / min(index + 1, params.gap_window),
            )
        )
    return points


def _signal_series(macd_v: Sequence[float | None], period: int) -> list[float | None]:
    """EMA of the defined MACD-V values, mapped back; undefined gaps carry the last signal."""
    defined = [(i, v) for i, v in enumerate(macd_v) if v is not None]
    smoothed = ema([v for _, v in defined], period)
    out: list[float | None] = [None] * len(macd_v)
    last: float | None = None
    cursor = 0
    for index in range(len(macd_v)):
        if cursor < len(defined) and defined[cursor][0] == index:
            last = smoothed[cursor]
            cursor += 1
        out[index] = last
    return out


def latest_macd_v(
    candles: Sequence[Candle], params: MacdVParams = DEFAULT_PARAMS
) -> MacdVPoint | None:
    """Return the point of the newest bar of `candles`, or None for an empty input."""
    points = macd_v_series(candles, params)
    return points[-1] if points else None


class MacdVState:
    """Incremental MACD-V of one series: O(1) work per closed bar, equal to `macd_v_series`."""

    __slots__ = (
        "_alpha_fast", "_alpha_signal", "_alpha_slow", "_atr", "_atr_total", "_fast",
        "_fast_total", "_flags", "_keep_fast", "_keep_signal", "_keep_slow", "_last",
        "_n_eff", "_params", "_prev_close", "_signal", "_signal_count", "_signal_total",
        "_slow", "_slow_total", "_step_ms", "_synthetic_in_window", "bars",
    )  # fmt: skip

    def __init__(self, timeframe: Timeframe, params: MacdVParams = DEFAULT_PARAMS) -> None:
        self._params = params
        self._step_ms = duration_ms(timeframe)
        self._alpha_fast = 2.0 / (params.fast + 1)
        self._alpha_slow = 2.0 / (params.slow + 1)
        self._alpha_signal = 2.0 / (params.signal + 1)
        self._keep_fast = 1.0 - self._alpha_fast
        self._keep_slow = 1.0 - self._alpha_slow
        self._keep_signal = 1.0 - self._alpha_signal
        self.bars = 0
        self._fast: float | None = None
        self._slow: float | None = None
        self._atr: float | None = None
        self._signal: float | None = None
        self._fast_total = self._slow_total = self._atr_total = self._signal_total = 0.0
        self._signal_count = 0
        self._n_eff = 0
        self._prev_close: float | None = None
        self._flags: deque[bool] = deque(maxlen=params.gap_window)
        self._synthetic_in_window = 0
        self._last: MacdVPoint | None = None

    @property
    def last(self) -> MacdVPoint | None:
        """The point of the newest bar fed, if any."""
        return self._last

    def update(self, candle: Candle) -> MacdVPoint:
        """Feed the next closed bar (synthetic bars first for any skipped interval).

        Raises:
            OutOfOrderBarError: if the bar is not newer than the last one fed.
        """
        last = self._last
        if last is not None:
            if candle.open_time <= last.open_time:
                raise OutOfOrderBarError(f"bar {candle.open_time} <= last {last.open_time}")
            missing = (candle.open_time - last.open_time) // self._step_ms - 1
            price = last.close
            for offset in range(1, missing + 1):
                self.step(last.open_time + offset * self._step_ms, price, price, price, True)
        return self.step(candle.open_time, candle.high, candle.low, candle.close, candle.synthetic)

    def step(  # noqa: C901  (one flat pass keeps the per-bar cost down)
        self, open_time: int, high: float, low: float, close: float, synthetic: bool
    ) -> MacdVPoint:
        """Feed one bar exactly as given (no gap handling) and return its point."""
        params = self._params
        self.bars = bars = self.bars + 1
        fast = self._fast
        if fast is None:
            self._fast_total += close
            if bars == params.fast:
                self._fast = fast = self._fast_total / params.fast
        else:
            self._fast = fast = self._alpha_fast * close + self._keep_fast * fast
        slow = self._slow
        if slow is None:
            self._slow_total += close
            if bars == params.slow:
                self._slow = slow = self._slow_total / params.slow
        else:
            self._slow = slow = self._alpha_slow * close + self._keep_slow * slow
        atr = self._atr
        if not synthetic:
            prev = self._prev_close
            tr = high - low if prev is None else max(high - low, abs(high - prev), abs(low - prev))
            self._n_eff += 1
            if atr is not None:
                self._atr = atr = (atr * (params.atr - 1) + tr) / params.atr
            else:
                self._atr_total += tr
                if self._n_eff == params.atr:
                    self._atr = atr = self._atr_total / params.atr
        self._prev_close = close
        macd_v = None
        if fast is not None and slow is not None and atr:
            macd_v = (fast - slow) / atr * params.scale
        signal = self._signal
        histogram = None
        if macd_v is not None:
            if signal is None:
                self._signal_total += macd_v
                self._signal_count += 1
                if self._signal_count == params.signal:
                    self._signal = signal = self._signal_total / params.signal
            else:
                self._signal = signal = self._alpha_signal * macd_v + self._keep_signal * signal
            if signal is not None:
                histogram = macd_v - signal
        flags = self._flags
        if len(flags) == params.gap_window and flags[0]:
            self._synthetic_in_window -= 1
        flags.append(synthetic)
        if synthetic:
            self._synthetic_in_window += 1
        point = MacdVPoint(
            open_time, close, synthetic, fast, slow, atr, macd_v, signal, histogram,
            atr is not None, self._n_eff, self._synthetic_in_window / len(flags),
        )  # fmt: skip
        self._last = point
        return point

    def seed(self, candles: Sequence[Candle]) -> MacdVPoint | None:
        """Feed a history oldest first (gap-filled as it goes); return the newest point."""
        for candle in candles:
            self.update(candle)
        return self._last
