from __future__ import annotations

import math
import random
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livermore_exchange_core.indicators.macdv import (
    MacdVParams,
    MacdVPoint,
    MacdVState,
    OutOfOrderBarError,
    latest_macd_v,
    macd_v_series,
)
from livermore_schema.enums import CandleSource, Liquidity, Stage, Timeframe
from livermore_schema.market import Candle

MIN = 60_000
FIVE = 5 * MIN


def bar(slot: int, high: float, low: float, close: float, step: int = MIN) -> Candle:
    tf = Timeframe.M1 if step == MIN else Timeframe.M5
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol="ETH-USD",
        timeframe=tf,
        open_time=slot * step,
        close_time=slot * step + step - 1,
        open=close,
        high=high,
        low=low,
        close=close,
        volume=1.0,
        closed=True,
        source=CandleSource.REST,
    )


def close_enough(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def assert_points_equal(a: MacdVPoint, b: MacdVPoint) -> None:
    assert (a.open_time, a.synthetic, a.seeded, a.n_eff) == (
        b.open_time,
        b.synthetic,
        b.seeded,
        b.n_eff,
    )
    for field in ("fast_ema", "slow_ema", "atr", "macd_v", "signal", "histogram", "gap_ratio"):
        assert close_enough(getattr(a, field), getattr(b, field)), field


# --------------------------------------------------------------------- hand-worked golden values

TINY = MacdVParams(fast=2, slow=3, atr=3, signal=2, scale=100.0)
TINY_BARS = [(11, 9, 10), (12, 10, 11), (13, 11, 12), (12, 10, 11), (14, 11, 13), (15, 12, 14)]


def test_golden_tiny_series_worked_by_hand() -> None:
    # fast EMA2 (alpha 2/3): 10.5, 11.5, 67/6, 223/18, 727/54 from index 1
    # slow EMA3 (alpha 1/2): 11, 11, 12, 13 from index 2
    # TR: 2, 2, 2, 2, 3, 3 -> ATR3 seeded (2+2+2)/3 = 2 at index 2, then 2, 7/3, 23/9
    # MACD-V: 25, 25/3, 50/3, (727/54 - 13)/(23/9)*100 = 1250/69
    # signal EMA2 from index 2: (25 + 25/3)/2 = 50/3 at index 3, 50/3, then 3650/207
    # histogram at index 5: 1250/69 - 3650/207 = 100/207
    candles = [bar(i, h, lo, c) for i, (h, lo, c) in enumerate(TINY_BARS)]
    points = macd_v_series(candles, TINY)
    expected_macd_v = [None, None, 25.0, 25 / 3, 50 / 3, 1250 / 69]
    for point, expected in zip(points, expected_macd_v, strict=True):
        assert close_enough(point.macd_v, expected)
    assert points[5].fast_ema == pytest.approx(727 / 54, rel=1e-12)
    assert points[5].slow_ema == pytest.approx(13.0, rel=1e-12)
    assert points[5].atr == pytest.approx(23 / 9, rel=1e-12)
    assert points[2].signal is None
    assert points[3].signal == pytest.approx(50 / 3, rel=1e-12)
    assert points[5].signal == pytest.approx(3650 / 207, rel=1e-12)
    assert points[5].histogram == pytest.approx(100 / 207, rel=1e-12)
    assert points[5].seeded and points[5].n_eff == 6
    assert points[5].stage is Stage.REBOUNDING  # -150 < 18.1 < 50 and above its signal


def reference_fraction(candles: list[Candle], step: int) -> list[Fraction | None]:
    """MACD-V straight from the SPEC formulas, in exact rational arithmetic, gap fill included."""
    rows: list[tuple[Fraction, Fraction, Fraction, bool]] = []
    prev_open = 0
    for candle in candles:
        if rows:
            prev_close = rows[-1][2]
            missing = (candle.open_time - prev_open) // step - 1
            rows.extend((prev_close, prev_close, prev_close, True) for _ in range(missing))
        rows.append((Fraction(candle.high), Fraction(candle.low), Fraction(candle.close), False))
        prev_open = candle.open_time

    def ema_at(values: list[Fraction], period: int) -> list[Fraction | None]:
        out: list[Fraction | None] = [None] * len(values)
        for t in range(period - 1, len(values)):
            prev = out[t - 1]
            if prev is None:
                out[t] = sum(values[:period], Fraction(0)) / period
            else:
                out[t] = Fraction(2, period + 1) * values[t] + (1 - Fraction(2, period + 1)) * prev
        return out

    closes = [r[2] for r in rows]
    fast, slow = ema_at(closes, 12), ema_at(closes, 26)
    trs: list[Fraction] = []
    atr: Fraction | None = None
    result: list[Fraction | None] = []
    for t, (high, low, _, synthetic) in enumerate(rows):
        if not synthetic:
            pc = closes[t - 1] if t else None
            tr = high - low if pc is None else max(high - low, abs(high - pc), abs(low - pc))
            trs.append(tr)
            if len(trs) == 26:
                atr = sum(trs, Fraction(0)) / 26
            elif len(trs) > 26 and atr is not None:
                atr = (atr * 25 + tr) / 26
        f, s = fast[t], slow[t]
        ok = f is not None and s is not None and atr is not None and atr != 0
        result.append((f - s) / atr * 100 if ok else None)  # type: ignore[operator]
    return result


def golden_series() -> list[Candle]:
    rng = random.Random(7)
    price = 100.0
    candles = []
    for slot in range(70):
        if slot in (31, 32, 50):  # Coinbase omits bars without trades
            continue
        price = round(price * (1 + rng.uniform(-0.02, 0.021)), 4)
        spread = round(price * rng.uniform(0.001, 0.01), 4)
        candles.append(bar(slot, price + spread, price - spread, price))
    return candles


def test_golden_default_series_matches_exact_rational_reference() -> None:
    candles = golden_series()
    expected = reference_fraction(candles, MIN)
    points = macd_v_series(candles)
    assert len(points) == len(expected) == 70
    assert [p.synthetic for p in points].count(True) == 3
    for point, exact in zip(points, expected, strict=True):
        assert close_enough(point.macd_v, None if exact is None else float(exact))
    # first defined at index 25 (26 closes, 26 real TRs): nothing is defined before it
    assert points[24].macd_v is None and points[25].macd_v is not None
    # the signal starts 8 values later, at index 33, and is EMA9 of MACD-V from index 25
    assert points[32].signal is None
    assert points[33].signal == pytest.approx(
        sum(p.macd_v for p in points[25:34] if p.macd_v is not None) / 9, rel=1e-12
    )
    assert points[-1].gap_ratio == pytest.approx(3 / 70)
    assert points[-1].liquidity is Liquidity.HIGH


# ------------------------------------------------------------------- incremental == batch


def run_incremental(candles: list[Candle], params: MacdVParams) -> list[MacdVPoint]:
    state = MacdVState(candles[0].timeframe, params)
    return [state.update(candle) for candle in candles]


def assert_incremental_equals_batch(candles: list[Candle], params: MacdVParams) -> None:
    batch = {p.open_time: p for p in macd_v_series(candles, params)}
    for point in run_incremental(candles, params):
        assert_points_equal(point, batch[point.open_time])


series_strategy = st.lists(
    st.tuples(
        st.integers(0, 40).map(lambda n: 0 if n < 34 else n - 33),  # mostly no gap, up to 7
        st.floats(-0.05, 0.05),  # return
        st.floats(0.0, 0.03),  # half range
    ),
    min_size=1,
    max_size=160,
)


@settings(
    max_examples=120, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(steps=series_strategy, window=st.sampled_from([5, 50, 200]))
def test_incremental_equals_batch_on_random_series_with_gaps(
    steps: list[tuple[int, float, float]], window: int
) -> None:
    params = MacdVParams(gap_window=window)
    price, slot, candles = 50.0, 0, []
    for gap, ret, half in steps:
        slot += 1 + gap
        price = max(0.01, price * (1 + ret))
        candles.append(bar(slot, price * (1 + half), price / (1 + half), price, FIVE))
    assert_incremental_equals_batch(candles, params)


def test_flat_prices_give_a_zero_atr_and_no_macd_v() -> None:
    candles = [bar(i, 10.0, 10.0, 10.0) for i in range(60)]
    last = latest_macd_v(candles)
    assert last is not None and last.seeded and last.atr == 0.0
    assert last.macd_v is None and last.signal is None and last.histogram is None
    assert last.stage is Stage.UNKNOWN
    assert_incremental_equals_batch(candles, MacdVParams())


def test_macd_v_appears_once_a_flat_series_starts_moving() -> None:
    candles = [bar(i, 10.0, 10.0, 10.0) for i in range(30)]
    candles += [bar(30 + i, 11.0 + i, 10.0 + i, 10.5 + i) for i in range(12)]
    points = macd_v_series(candles)
    assert points[29].macd_v is None and points[30].macd_v is not None
    assert points[38].signal is not None and points[37].signal is None
    assert_incremental_equals_batch(candles, MacdVParams())


def test_fewer_than_26_real_bars_are_never_seeded() -> None:
    candles = [bar(i * 3, 11.0 + i, 9.0 + i, 10.0 + i) for i in range(25)]  # 2 synthetic per gap
    last = latest_macd_v(candles)
    assert last is not None
    assert last.slow_ema is not None  # 73 filled bars feed the EMAs...
    assert not last.seeded and last.atr is None and last.macd_v is None  # ...but 25 real TRs
    assert last.n_eff == 25
    assert last.liquidity is Liquidity.LOW
    assert_incremental_equals_batch(candles, MacdVParams())


def test_long_synthetic_stretch_carries_the_atr() -> None:
    candles = [bar(i, 11.0 + i % 3, 9.0, 10.0 + i % 2) for i in range(40)]
    candles.append(bar(400, 13.0, 10.0, 12.0))
    points = macd_v_series(candles)
    stretch = points[40:400]
    assert all(p.synthetic for p in stretch)
    assert {p.atr for p in stretch} == {points[39].atr}
    assert points[-1].gap_ratio == pytest.approx(199 / 200)  # newest 200 bars, one real
    assert points[-1].n_eff == 41
    assert_incremental_equals_batch(candles, MacdVParams())


def test_state_rejects_a_bar_that_is_not_newer() -> None:
    state = MacdVState(Timeframe.M1)
    state.update(bar(5, 11.0, 9.0, 10.0))
    with pytest.raises(OutOfOrderBarError):
        state.update(bar(5, 11.0, 9.0, 10.0))
    with pytest.raises(OutOfOrderBarError):
        state.update(bar(4, 11.0, 9.0, 10.0))
    assert state.bars == 1


def test_seed_returns_the_newest_point_and_continues_incrementally() -> None:
    candles = golden_series()
    state = MacdVState(Timeframe.M1)
    assert state.seed([]) is None
    seeded = state.seed(candles[:50])
    assert seeded is not None and seeded.open_time == candles[49].open_time
    for candle in candles[50:]:
        state.update(candle)
    assert state.last is not None
    assert_points_equal(state.last, macd_v_series(candles)[-1])
    assert latest_macd_v([]) is None
