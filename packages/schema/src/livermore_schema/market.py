"""Market data payloads: candles and tickers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from livermore_schema._base import Message
from livermore_schema.enums import CandleSource, Timeframe

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class Candle(Message):
    """One OHLCV bar of one symbol on one exchange and timeframe.

    `synthetic` marks gap-filling bars built in memory for indicators; they are never stored.
    """

    exchange_id: int = Field(ge=1)
    exchange: str
    symbol: str = Field(min_length=1)
    timeframe: Timeframe
    open_time: int = Field(ge=0, description="bar open, epoch ms")
    close_time: int = Field(ge=0, description="last ms covered by the bar")
    open: PositiveFloat
    high: PositiveFloat
    low: PositiveFloat
    close: PositiveFloat
    volume: NonNegativeFloat
    closed: bool
    sequence: int | None = Field(default=None, ge=0)
    source: CandleSource
    synthetic: bool = False

    @model_validator(mode="after")
    def _check_range(self) -> Candle:
        if self.high < max(self.open, self.close, self.low) or self.low > min(
            self.open, self.close
        ):
            raise ValueError("high/low do not bound open and close")
        if self.close_time < self.open_time:
            raise ValueError("close_time precedes open_time")
        return self

    def storage_json(self) -> str:
        """Return the JSON stored in Redis (synthetic bars are never stored)."""
        return self.model_dump_json(exclude={"synthetic"})


class Ticker(Message):
    """Latest price snapshot of a symbol."""

    exchange_id: int = Field(ge=1)
    exchange: str
    symbol: str = Field(min_length=1)
    price: PositiveFloat
    bid: PositiveFloat | None = None
    ask: PositiveFloat | None = None
    volume_24h: NonNegativeFloat | None = None
    change_24h: float | None = None
    change_pct_24h: float | None = None
    high_24h: PositiveFloat | None = None
    low_24h: PositiveFloat | None = None
    timestamp: int = Field(ge=0, description="exchange time, epoch ms")


class OrderBookLevel(Message):
    """One price level of a book side."""

    price: PositiveFloat
    quantity: PositiveFloat


class OrderBookTop(Message):
    """Top levels of a symbol's order book (scalper-orderbook mode)."""

    exchange_id: int = Field(ge=1)
    symbol: str
    bids: list[OrderBookLevel]
    asks: list[OrderBookLevel]
    timestamp: int = Field(ge=0)
