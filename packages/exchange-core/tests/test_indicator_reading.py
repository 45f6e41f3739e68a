"""`Reading.json()` is byte for byte what `IndicatorValue.model_dump_json()` writes."""

from __future__ import annotations

import json
import random

import pytest

from livermore_exchange_core.indicators.macdv import MacdVPoint, MacdVState
from livermore_exchange_core.indicators.reading import Reading, model_of, to_indicator_value
from livermore_schema.enums import Timeframe
from livermore_schema.indicators import IndicatorValue
from livermore_schema.timeframes import duration_ms

SYMBOLS = ("BTC-USD", "ÉTH/€", 'Q"U\\O\u00a0TE', "1000SATSUSDT")


def _both(point: MacdVPoint, symbol: str, timeframe: Timeframe) -> tuple[Reading, IndicatorValue]:
    reading = Reading(7, symbol, timeframe, point)
    model = to_indicator_value(point, exchange_id=7, symbol=symbol, timeframe=timeframe)
    return reading, model


def test_every_point_of_random_series_serialises_like_the_model() -> None:
    rng = random.Random(11)
    checked = unseeded = null_macd_v = 0
    for symbol in SYMBOLS:
        for timeframe in (Timeframe.M1, Timeframe.H4, Timeframe.D1):
            state = MacdVState(timeframe)
            step, price, open_time = duration_ms(timeframe), rng.uniform(1e-6, 5e4), 0
            for _ in range(400):
                open_time += step * (1 + (rng.random() < 0.05))  # a skipped bar now and then
                price *= 1 + rng.uniform(-0.02, 0.021)
                flat = rng.random() < 0.03  # high == low: a zero true range
                half = 0.0 if flat else rng.uniform(1e-9, 0.01)
                high, low = price * (1 + half), price * (1 - half)
                point = state.step(open_time, high, low, price, rng.random() < 0.02)
                reading, model = _both(point, symbol, timeframe)
                assert reading.json() == model.model_dump_json()
                assert reading.model() == model
                assert IndicatorValue.model_validate_json(reading.json()) == model
                checked += 1
                unseeded += not point.seeded
                null_macd_v += point.macd_v is None
    assert checked == len(SYMBOLS) * 3 * 400
    assert unseeded > 0 and null_macd_v > 0  # the edge cases were met


EDGE_FLOATS = [
    None,
    0.0,
    -0.0,
    1.0,
    -3.0,
    1e-7,
    -2.5e-5,
    1e-300,
    5e-324,
    1e15,
    1e16,
    1.2345678901234568e17,
    1.7976931348623157e308,
    0.1 + 0.2,
    float("nan"),
    float("inf"),
    float("-inf"),
]


@pytest.mark.parametrize("number", EDGE_FLOATS, ids=repr)
def test_edge_values_serialise_like_the_model(number: float | None) -> None:
    for seeded, n_eff, gap_ratio in ((False, 0, 0.0), (True, 26, 1.0), (True, 3, 1 / 3)):
        point = MacdVPoint(
            open_time=1_700_000_000_000,
            close=1.0,
            synthetic=False,
            fast_ema=number,
            slow_ema=number,
            atr=number,
            macd_v=number,
            signal=None if number is None else 2.0,
            histogram=number,
            seeded=seeded,
            n_eff=n_eff,
            gap_ratio=gap_ratio,
        )
        reading, model = _both(point, "BTC-USD", Timeframe.M15)
        assert reading.json() == model.model_dump_json()
        assert json.loads(reading.json()) == json.loads(model.model_dump_json())


def test_floats_of_every_exponent_serialise_like_the_model() -> None:
    rng = random.Random(5)
    for exponent in range(-325, 309):
        numbers = [rng.choice((-1, 1)) * rng.uniform(1, 10) * 10.0**exponent for _ in range(6)]
        point = MacdVPoint(1, 1.0, False, *numbers[:3], *numbers[3:], True, 30, rng.random())
        reading, model = _both(point, "ETH-USD", Timeframe.H1)
        assert reading.json() == model.model_dump_json(), numbers


def test_model_is_built_once_and_model_of_takes_either_form() -> None:
    state = MacdVState(Timeframe.M5)
    point = state.step(0, 2.0, 1.0, 1.5, False)
    reading = Reading(1, "SOL-USD", Timeframe.M5, point)
    model = reading.model()
    assert reading.model() is model
    assert model_of(reading) is model
    assert model_of(model) is model
    assert reading.open_time == 0 and model.value.macd_v is None and not model.seeded
