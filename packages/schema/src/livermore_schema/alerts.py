"""Alert payloads published on `channel:alerts:{exchange_id}`."""

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

    @field_validator("triggered_at")
    @classmethod
    def _require_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("triggered_at must be timezone-aware")
        return value
