from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from livermore_schema.alerts import AlertEvent
from livermore_schema.enums import AlertDirection, AlertType, Bias, Timeframe

ALERT: dict[str, Any] = {
    "id": "6f1c2a4e-8d9b-4f3a-9c1d-2b7e5a0f4c11",
    "exchange_id": 2,
    "symbol": "BTCUSDT",
    "timeframe": "15m",
    "alert_type": "macdv",
    "trigger_label": "level_-150",
    "trigger_value": -151.5,
    "signal_delta": 3.25,
    "price": 61000.5,
    "triggered_at": "2024-05-01T12:15:00Z",
    "timeframes": [
        {"timeframe": "15m", "macd_v": -151.5, "stage": "oversold"},
        {"timeframe": "1h", "macd_v": None, "stage": "unknown"},
    ],
    "bias": "bearish",
    "source_exchange_id": 2,
    "source_exchange_name": "binance",
    "direction": "down",
    "delayed": False,
}


def test_alert_event_json_round_trip() -> None:
    alert = AlertEvent.model_validate_json(json.dumps(ALERT))
    assert alert.id == UUID(ALERT["id"])
    assert (alert.timeframe, alert.alert_type, alert.bias) == (
        Timeframe.M15,
        AlertType.MACDV,
        Bias.BEARISH,
    )
    assert alert.triggered_at == datetime.fromisoformat("2024-05-01T12:15:00+00:00")
    assert (alert.direction, alert.delayed) == (AlertDirection.DOWN, False)
    again = AlertEvent.model_validate_json(alert.model_dump_json())
    assert again == alert
    assert json.loads(alert.model_dump_json())["timeframes"] == ALERT["timeframes"]


@pytest.mark.parametrize(
    "label", ["level_150", "level_-200", "level_0", "reversal_oversold", "reversal_overbought"]
)
def test_alert_event_accepts_known_labels(label: str) -> None:
    assert AlertEvent.model_validate({**ALERT, "trigger_label": label}).trigger_label == label


def test_alert_event_generates_distinct_ids() -> None:
    body = {k: v for k, v in ALERT.items() if k != "id"}
    assert AlertEvent.model_validate(body).id != AlertEvent.model_validate(body).id


@pytest.mark.parametrize(
    "change",
    [
        {"triggered_at": "2024-05-01T12:15:00"},  # naive time
        {"trigger_label": "level_high"},
        {"trigger_label": "reversal_sideways"},
        {"price": 0},
        {"exchange_id": 0},
        {"bias": "up"},
        {"alert_type": "rsi"},
        {"timeframes": [{"timeframe": "1h", "macd_v": 1.0}]},
        {"id": "not-a-uuid"},
        {"direction": "sideways"},
        {"delayed": "later"},
    ],
)
def test_alert_event_rejects_malformed(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AlertEvent.model_validate_json(json.dumps({**ALERT, **change}))


def test_alert_event_requires_a_direction_and_is_live_unless_flagged_delayed() -> None:
    body = {k: v for k, v in ALERT.items() if k not in ("direction", "delayed")}
    with pytest.raises(ValidationError):
        AlertEvent.model_validate(body)
    assert AlertEvent.model_validate({**body, "direction": "up"}).delayed is False
    late = AlertEvent.model_validate({**body, "direction": "up", "delayed": True})
    assert json.loads(late.model_dump_json())["delayed"] is True
