"""Builders shared by the api tests."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

from livermore_schema.alerts import AlertEvent, TimeframeContext
from livermore_schema.enums import AlertDirection, Bias, Stage, Timeframe

EXCHANGE_NAMES = {1: "coinbase", 2: "binance", 3: "binance_us"}


def alert(
    exchange_id: int, symbol: str, value: float = -212.5, price: float = 101.25
) -> AlertEvent:
    """An AlertEvent from `exchange_id` as a worker would publish it."""
    return AlertEvent(
        exchange_id=exchange_id,
        symbol=symbol,
        timeframe=Timeframe.M15,
        trigger_label="level_-200",
        trigger_value=value,
        signal_delta=3.5,
        price=price,
        triggered_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        timeframes=[TimeframeContext(timeframe=Timeframe.M15, macd_v=value, stage=Stage.OVERSOLD)],
        bias=Bias.BEARISH,
        source_exchange_id=exchange_id,
        source_exchange_name=EXCHANGE_NAMES[exchange_id],
        direction=AlertDirection.DOWN,
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
