"""MACD-V: pure primitives, the batch reference, the incremental state and the calculator."""

from livermore_exchange_core.indicators.calculator import IndicatorCalculator
from livermore_exchange_core.indicators.macdv import (
    DEFAULT_PARAMS,
    MacdVParams,
    MacdVPoint,
    MacdVState,
    OutOfOrderBarError,
    latest_macd_v,
    macd_v_series,
)
from livermore_exchange_core.indicators.primitives import (
    classify_liquidity,
    classify_stage,
    ema,
    fill_gaps,
    true_range,
    wilder_atr,
)
from livermore_exchange_core.indicators.reading import to_indicator_value

__all__ = [
    "DEFAULT_PARAMS",
    "IndicatorCalculator",
    "MacdVParams",
    "MacdVPoint",
    "MacdVState",
    "OutOfOrderBarError",
    "classify_liquidity",
    "classify_stage",
    "ema",
    "fill_gaps",
    "latest_macd_v",
    "macd_v_series",
    "to_indicator_value",
    "true_range",
    "wilder_atr",
]
