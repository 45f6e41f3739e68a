from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from livermore_schema.enums import IndicatorType, Liquidity, Stage
from livermore_schema.indicators import IndicatorValue

VALUE: dict[str, Any] = {
    "exchange_id": 3,
    "symbol": "ETHUSD",
    "timeframe": "1h",
    "type": "macd-v",
    "open_time": 1_714_564_800_000,
    "value": {
        "macd_v": -152.25,
        "signal": -140.0,
        "histogram": -12.25,
        "fast_ema": 3010.5,
        "slow_ema": 3050.25,
        "atr": 26.1,
    },
    "stage": "oversold",
    "liquidity": "high",
    "gap_ratio": 0.05,
    "seeded": True,
    "n_eff": 120,
}


def test_indicator_value_json_round_trip() -> None:
    value = IndicatorValue.model_validate_json(json.dumps(VALUE))
    assert (value.type, value.stage, value.liquidity) == (
        IndicatorType.MACD_V,
        Stage.OVERSOLD,
        Liquidity.HIGH,
    )
    assert json.loads(value.model_dump_json()) == VALUE


def test_indicator_value_allows_undefined_readings() -> None:
    undefined = {k: None for k in VALUE["value"]}
    value = IndicatorValue.model_validate({**VALUE, "value": undefined, "stage": "unknown"})
    assert value.value.macd_v is None
    assert json.loads(value.model_dump_json())["value"] == undefined


@pytest.mark.parametrize(
    "change",
    [
        {"type": "rsi"},
        {"gap_ratio": 1.5},
        {"n_eff": -1},
        {"stage": "sideways"},
        {"liquidity": "none"},
        {"value": {"macd_v": 1.0}},
        {"open_time": "yesterday"},
    ],
)
def test_indicator_value_rejects_malformed(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        IndicatorValue.model_validate_json(json.dumps({**VALUE, **change}))
