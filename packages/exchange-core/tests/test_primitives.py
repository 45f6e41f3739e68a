from __future__ import annotations

import pytest

from livermore_exchange_core.indicators.primitives import (
    classify_liquidity,
    classify_stage,
    ema,
    fill_gaps,
    true_range,
    wilder_atr,
)
from livermore_schema.enums import CandleSource, Liquidity, Stage, Timeframe
from livermore_schema.market import Candle

MIN = 60_000


def bar(index: int, close: float, *, high: float | None = None, low: float | None = None) -> Candle:
    high = close + 1 if high is None else high
    low = close - 1 if low is None else low
    return Candle(
        exchange_id=1,
        exchange="coinbase",
        symbol="BTC-USD",
        timeframe=Timeframe.M1,
        open_time=index * MIN,
        close_time=index * MIN + MIN - 1,
        open=close,
        high=high,
        low=low,
        close=close,
        volume=3.0,
        closed=True,
        source=CandleSource.WS,
    )


def test_ema_is_seeded_with_the_sma_then_smoothed() -> None:
    # period 3, alpha 0.5: seed at index 2 = (1+2+3)/3 = 2; then 0.5*4 + 0.5*2 = 3; then 4
    assert ema([1.0, 2.0, 3.0, 4.0, 5.0], 3) == [None, None, 2.0, 3.0, 4.0]


def test_ema_of_a_series_shorter_than_the_period_is_undefined() -> None:
    assert ema([1.0, 2.0], 3) == [None, None]
    assert ema([], 3) == []


def test_ema_rejects_a_zero_period() -> None:
    with pytest.raises(ValueError):
        ema([1.0], 0)


@pytest.mark.parametrize(
    ("high", "low", "prev_close", "expected"),
    [
        (12.0, 10.0, None, 2.0),  # first bar: H - L
        (12.0, 10.0, 11.0, 2.0),  # inside: H - L
        (12.0, 10.0, 7.0, 5.0),  # gap up: H - prevC
        (12.0, 10.0, 15.0, 5.0),  # gap down: prevC - L
    ],
)
def test_true_range(high: float, low: float, prev_close: float | None, expected: float) -> None:
    assert true_range(high, low, prev_close) == expected


def test_wilder_atr_skips_synthetic_bars_and_uses_their_close() -> None:
    # period 2. TRs: 2, max(2, |12-10|, |10-10|) = 2 -> seed (2+2)/2 = 2; synthetic: carried 2;
    # bar 3 uses the synthetic close 11: max(14-12, |14-11|, |12-11|) = 3 -> (2*1 + 3)/2 = 2.5
    highs = [11.0, 12.0, 11.0, 14.0]
    lows = [9.0, 10.0, 11.0, 12.0]
    closes = [10.0, 11.0, 11.0, 13.0]
    atr, n_eff = wilder_atr(highs, lows, closes, [False, False, True, False], period=2)
    assert atr == [None, 2.0, 2.0, 2.5]
    assert n_eff == [1, 2, 2, 3]


def test_wilder_atr_needs_period_real_bars_to_seed() -> None:
    atr, n_eff = wilder_atr([11.0] * 4, [9.0] * 4, [10.0] * 4, [False, True, True, False], period=3)
    assert atr == [None, None, None, None]
    assert n_eff == [1, 1, 1, 2]


def test_fill_gaps_inserts_flat_synthetic_bars_at_the_previous_close() -> None:
    candles = [bar(0, 10.0), bar(1, 11.0), bar(4, 12.0), bar(5, 13.0)]
    filled, ratio = fill_gaps(candles, Timeframe.M1)
    assert [c.open_time // MIN for c in filled] == [0, 1, 2, 3, 4, 5]
    synthetic = [c for c in filled if c.synthetic]
    assert len(synthetic) == 2
    for candle in synthetic:
        assert (candle.open, candle.high, candle.low, candle.close) == (11.0, 11.0, 11.0, 11.0)
        assert candle.volume == 0.0
        assert candle.close_time == candle.open_time + MIN - 1
        assert candle.closed
    assert ratio == pytest.approx(2 / 6)


def test_fill_gaps_without_gaps_or_input() -> None:
    candles = [bar(0, 10.0), bar(1, 11.0)]
    assert fill_gaps(candles, Timeframe.M1) == (candles, 0.0)
    assert fill_gaps([], Timeframe.M1) == ([], 0.0)


def test_fill_gaps_rejects_unordered_input() -> None:
    with pytest.raises(ValueError):
        fill_gaps([bar(1, 10.0), bar(1, 11.0)], Timeframe.M1)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        (0.0, Liquidity.HIGH),
        (0.199, Liquidity.HIGH),
        (0.2, Liquidity.MEDIUM),
        (0.499, Liquidity.MEDIUM),
        (0.5, Liquidity.LOW),
        (1.0, Liquidity.LOW),
    ],
)
def test_classify_liquidity(ratio: float, expected: Liquidity) -> None:
    assert classify_liquidity(ratio) is expected


@pytest.mark.parametrize(
    ("macd_v", "signal", "expected"),
    [
        (None, 0.0, Stage.UNKNOWN),
        (-151.0, -100.0, Stage.OVERSOLD),
        (-151.0, -200.0, Stage.OVERSOLD),
        (-151.0, None, Stage.OVERSOLD),
        (151.0, 100.0, Stage.OVERBOUGHT),
        (151.0, 200.0, Stage.RETRACING),
        (100.0, 90.0, Stage.RALLYING),
        (100.0, 110.0, Stage.RETRACING),
        (0.0, -10.0, Stage.REBOUNDING),
        (-100.0, -120.0, Stage.REBOUNDING),
        (-100.0, -80.0, Stage.REVERSING),
        (0.0, 10.0, Stage.RETRACING),
        (0.0, 0.0, Stage.RANGING),
        (10.0, None, Stage.RANGING),
        (100.0, None, Stage.UNKNOWN),
        # edges are strict (livermore-v5 6.3): exact values fall through to later rules
        (150.0, 100.0, Stage.UNKNOWN),
        (150.0, 200.0, Stage.RETRACING),
        (-150.0, -200.0, Stage.UNKNOWN),
        (-150.0, -100.0, Stage.UNKNOWN),
        (50.0, 0.0, Stage.UNKNOWN),
        (50.0, 60.0, Stage.RETRACING),
        (-50.0, -60.0, Stage.REBOUNDING),
        (-50.0, -40.0, Stage.UNKNOWN),
        (50.0, 50.0, Stage.UNKNOWN),
        (-50.0, -50.0, Stage.UNKNOWN),
        (150.0, 150.0, Stage.UNKNOWN),
        (-150.0, -150.0, Stage.UNKNOWN),
    ],
)
def test_classify_stage(macd_v: float | None, signal: float | None, expected: Stage) -> None:
    assert classify_stage(macd_v, signal) is expected
