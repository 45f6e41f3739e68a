"""Deterministic payload builders for the cache tests."""

from __future__ import annotations

from typing import Any

from livermore_schema.enums import CandleSource, Liquidity, Stage, Timeframe
from livermore_schema.indicators import IndicatorValue, MacdVValues
from livermore_schema.market import Candle

BASE_MS = 1_700_000_100_000 - (1_700_000_100_000 % 300_000)


def candle(
    open_index: int = 0,
    *,
    exchange_id: int = 1,
    symbol: str = "BTC-USD",
    timeframe: Timeframe = Timeframe.M5,
    close: float = 100.0,
    closed: bool = True,
    sequence: int | None = None,
    source: CandleSource = CandleSource.WS,
    **extra: Any,
) -> Candle:
    """A 5m candle `open_index` bars after BASE_MS."""
    open_time = BASE_MS + open_index * 300_000
    return Candle(
        exchange_id=exchange_id,
        exchange="coinbase" if exchange_id == 1 else "binance",
        symbol=symbol,
        timeframe=timeframe,
        open_time=open_time,
        close_time=open_time + 299_999,
        open=close,
        high=close + 1,
        low=close * 0.99,
        close=close,
        volume=1.5,
        closed=closed,
        sequence=sequence,
        source=source,
        **extra,
    )


def indicator(
    timeframe: Timeframe = Timeframe.H1,
    *,
    exchange_id: int = 1,
    symbol: str = "BTC-USD",
    macd_v: float | None = -120.5,
) -> IndicatorValue:
    """A MACD-V reading."""
    return IndicatorValue(
        exchange_id=exchange_id,
        symbol=symbol,
        timeframe=timeframe,
        open_time=BASE_MS,
        value=MacdVValues(
            macd_v=macd_v, signal=-100.0, histogram=-20.5, fast_ema=1.0, slow_ema=2.0, atr=0.5
        ),
        stage=Stage.OVERSOLD,
        liquidity=Liquidity.HIGH,
        gap_ratio=0.0,
        seeded=True,
        n_eff=26,
    )
