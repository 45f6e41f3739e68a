"""Alert payloads published on `channel:alerts:{exchange_id}` and `channel:alerts:confluence`.

`asset` (the CoinGecko id, else the upper-case base currency) and `quote` let a trader on another
exchange map a signal to their own symbol. A `confluence` event (alert_type `confluence`) names in
`venues` every exchange whose trigger joined it; its own exchange/symbol fields are those of the
trigger that completed it. `local` is set only by the api for a subscriber: their own symbols for
the alert's asset. All three are additive and optional, so older payloads still validate.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from pydantic import Field, field_validator

from livermore_schema._base import Message
from livermore_schema.enums import AlertDirection, AlertType, Bias, Stage, Timeframe


class TimeframeContext(Message):
    """MACD-V and stage of one timeframe at the moment an alert fires."""

    timeframe: Timeframe
    macd_v: float | None
    stage: Stage


class LocalSymbol(Message):
    """A subscriber's own symbol for an alert's asset, on one of their exchanges."""

    exchange: str = Field(min_length=1)
    symbol: str = Field(min_length=1)


class ConfluenceVenue(Message):
    """One exchange's trigger inside a confluence alert."""

    alert_id: UUID
    exchange_id: int = Field(ge=1)
    exchange: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    trigger_label: str = Field(min_length=1)
    trigger_value: float
    price: float = Field(gt=0)
    triggered_at: datetime


class AlertEvent(Message):
    """A triggered alert, naming the exchange it came from."""

    id: UUID = Field(default_factory=uuid4)
    exchange_id: int = Field(ge=1)
    symbol: str = Field(min_length=1)
    timeframe: Timeframe
    alert_type: AlertType = AlertType.MACDV
    trigger_label: str = Field(pattern=r"^(level_-?\d+|reversal_oversold|reversal_overbought)$")
    trigger_value: float
    signal_delta: float | None
    price: float = Field(gt=0)
    triggered_at: datetime
    timeframes: list[TimeframeContext]
    bias: Bias
    source_exchange_id: int = Field(ge=1)
    source_exchange_name: str = Field(min_length=1)
    direction: AlertDirection
    """`down` for an oversold level or an overbought reversal, `up` for the other two."""
    delayed: bool = False
    """The bar was evaluated after the fact (a revision or a repair), not as it closed live."""
    asset: str | None = Field(default=None, min_length=1)
    quote: str | None = Field(default=None, min_length=1)
    venues: list[ConfluenceVenue] | None = None
    local: list[LocalSymbol] | None = None

    @field_validator("triggered_at")
    @classmethod
    def _require_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("triggered_at must be timezone-aware")
        return value
