"""Deterministic payload builders for the cache tests."""

from __future__ import annotations

from typing import Any

from livermore_schema.enums import CandleSource, Timeframe
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
