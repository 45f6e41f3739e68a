"""Indicator building blocks (SPEC section 6): EMA, Wilder ATR over real bars, gaps, stages.

Series are oldest first; `None` marks a value that is not defined yet (the original used NaN).

Stage edges follow the original's strictness (livermore-v5 section 6.3): every comparison is
strict, so a reading sitting exactly on an edge falls through to a later rule:

| MACD-V | above signal | below signal |
|---|---|---|
| exactly 150 | unknown | retracing |
| exactly 50 | unknown | retracing |
| exactly -50 | rebounding | unknown |
| exactly -150 | unknown | unknown |

"Above"/"below" are strict too, and with no signal yet (fewer than 9 defined MACD-V values) only
the rules that ignore the signal apply (oversold, ranging).
"""

from __future__ import annotations

from collections.abc import Sequence

from livermore_schema.enums import Liquidity, Stage, Timeframe
from livermore_schema.market import Candle
from livermore_schema.timeframes import duration_ms

HIGH_LIQUIDITY_MAX_GAP = 0.2
"""Gap ratios below this are `high` liquidity."""
MEDIUM_LIQUIDITY_MAX_GAP = 0.5
"""Gap ratios below this (and not high) are `medium` liquidity."""


def ema(values: Sequence[float], period: int) -> list[float | None]:
    """Return the EMA of `values`: SMA of the first `period` values, then alpha = 2/(period+1)."""
    if period < 1:
        raise ValueError("period must be >= 1")
    out: list[float | None] = [None] * len(values)
    if len(values) < period:
        return out
    alpha = 2.0 / (period + 1)
    keep = 1.0 - alpha
    total = 0.0
    for value in values[:period]:
        total += value
    current = total / period
    out[period - 1] = current
    for index in range(period, len(values)):
        current = alpha * values[index] + keep * current
        out[index] = current
    return out


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """Return max(H-L, |H-prevC|, |L-prevC|), or H-L for the first bar of a series."""
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


def wilder_atr(
    highs: Sequence[float],
    lows: Sequence[float],
    closes: Sequence[float],
    synthetic: Sequence[bool],
    period: int = 26,
) -> tuple[list[float | None], list[int]]:
    """Return the ATR series and the running count of real bars (n_eff) at every index.

    Synthetic bars have no TR: the ATR carries forward across them. A real bar's TR uses the
    previous bar's close even when that bar is synthetic. The ATR is seeded with the SMA of the
    first `period` real TRs, then updated Wilder-style: (ATR*(period-1) + TR)/period.
    """
    atr: list[float | None] = [None] * len(closes)
    n_eff: list[int] = [0] * len(closes)
    current: float | None = None
    seed_total = 0.0
    real = 0
    for index in range(len(closes)):
        if not synthetic[index]:
            prev_close = closes[index - 1] if index > 0 else None
            tr = true_range(highs[index], lows[index], prev_close)
            real += 1
            if current is not None:
                current = (current * (period - 1) + tr) / period
            else:
                seed_total += tr
                if real == period:
                    current = seed_total / period
        atr[index] = current
        n_eff[index] = real
    return atr, n_eff


def fill_gaps(candles: Sequence[Candle], timeframe: Timeframe) -> tuple[list[Candle], float]:
    """Insert synthetic bars for missing intervals; return the filled list and its gap ratio.

    A synthetic bar is O=H=L=C = the previous close, volume 0, `synthetic=True`. The gap ratio is
    synthetic bars / filled bars (0.0 for an empty input).

    Raises:
        ValueError: if the candles are not strictly increasing in open time.
    """
    step = duration_ms(timeframe)
    filled: list[Candle] = []
    inserted = 0
    for candle in candles:
        if filled:
            prev = filled[-1]
            if candle.open_time <= prev.open_time:
                raise ValueError("candles must be strictly increasing in open_time")
            missing = (candle.open_time - prev.open_time) // step - 1
            for offset in range(1, missing + 1):
                filled.append(synthetic_bar(prev, prev.open_time + offset * step, step))
            inserted += missing
        filled.append(candle)
    ratio = inserted / len(filled) if filled else 0.0
    return filled, ratio


def synthetic_bar(prev: Candle, open_time: int, step_ms: int) -> Candle:
    """Return the synthetic bar that follows `prev` at `open_time` (flat at the previous close)."""
    price = prev.close
    return prev.model_copy(
        update={
            "open_time": open_time,
            "close_time": open_time + step_ms - 1,
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": 0.0,
            "closed": True,
            "sequence": None,
            "synthetic": True,
        }
    )


def classify_liquidity(gap_ratio: float) -> Liquidity:
    """Return `high` below 0.2, `medium` below 0.5, else `low`."""
    if gap_ratio < HIGH_LIQUIDITY_MAX_GAP:
        return Liquidity.HIGH
    if gap_ratio < MEDIUM_LIQUIDITY_MAX_GAP:
        return Liquidity.MEDIUM
    return Liquidity.LOW


def classify_stage(macd_v: float | None, signal: float | None) -> Stage:
    """Return the stage of (MACD-V, signal), checking the SPEC rules in order (edges strict)."""
    if macd_v is None:
        return Stage.UNKNOWN
    above = signal is not None and macd_v > signal
    below = signal is not None and macd_v < signal
    if macd_v < -150:
        return Stage.OVERSOLD
    if macd_v > 150 and above:
        return Stage.OVERBOUGHT
    if 50 < macd_v < 150 and above:
        return Stage.RALLYING
    if -150 < macd_v < 50 and above:
        return Stage.REBOUNDING
    if -150 < macd_v < -50 and below:
        return Stage.REVERSING
    if macd_v > -50 and below:
        return Stage.RETRACING
    if -50 < macd_v < 50:
        return Stage.RANGING
    return Stage.UNKNOWN
