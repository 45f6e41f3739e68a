"""Indicator payloads."""

from __future__ import annotations

from pydantic import Field

from livermore_schema._base import Message
from livermore_schema.enums import IndicatorType, Liquidity, Stage, Timeframe


class MacdVValues(Message):
    """The numbers behind one MACD-V reading; null while undefined."""

    macd_v: float | None
    signal: float | None
    histogram: float | None
    fast_ema: float | None
    slow_ema: float | None
    atr: float | None


class IndicatorValue(Message):
    """An indicator reading for the last closed bar of (exchange, symbol, timeframe)."""

    exchange_id: int = Field(ge=1)
    symbol: str = Field(min_length=1)
    timeframe: Timeframe
    type: IndicatorType = IndicatorType.MACD_V
    open_time: int = Field(ge=0, description="open time of the last bar, epoch ms")
    value: MacdVValues
    stage: Stage
    liquidity: Liquidity
    gap_ratio: float = Field(ge=0, le=1)
    seeded: bool
    n_eff: int = Field(ge=0, description="real (non-synthetic) bars behind the ATR")
