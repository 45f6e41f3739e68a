from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from livermore_schema.enums import ConnectionState, StartupPhase, WorkerMode, WorkerRole
from livermore_schema.status import ConnectionStatus, LifecycleEvent

BEAT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

STATUS: dict[str, Any] = {
    "exchange_id": 1,
    "exchange_name": "coinbase",
    "connection_state": "connecting",
    "connected_at": None,
    "last_heartbeat": "2024-05-01T12:00:00Z",
    "error": None,
    "worker_id": "host-a:4242",
    "role": "active",
    "mode": "position-monitor",
    "symbol_count": 100,
    "progress": {
        "phase": "backfill",
        "percent": 42.5,
        "current_item": "BTC-USD 1h",
        "eta_seconds": 12.0,
    },
    "heartbeat_interval_s": 5.0,
}


def test_connection_status_json_round_trip() -> None:
    status = ConnectionStatus.model_validate_json(json.dumps(STATUS))
    assert status.connection_state is ConnectionState.CONNECTING
    assert (status.role, status.mode) == (WorkerRole.ACTIVE, WorkerMode.POSITION_MONITOR)
    assert status.progress is not None and status.progress.phase is StartupPhase.BACKFILL
    assert status.last_heartbeat == BEAT
    assert ConnectionStatus.model_validate_json(status.model_dump_json()) == status
    assert json.loads(status.model_dump_json())["progress"] == STATUS["progress"]


def test_is_stale_after_three_missed_heartbeats() -> None:
    status = ConnectionStatus.model_validate(STATUS)
    assert not status.is_stale(BEAT)
    assert not status.is_stale(BEAT + timedelta(seconds=15))
    assert status.is_stale(BEAT + timedelta(seconds=15, milliseconds=1))
    assert status.is_stale(BEAT + timedelta(seconds=6), missed_beats=1)


def test_is_stale_follows_the_heartbeat_interval() -> None:
    slow = ConnectionStatus.model_validate({**STATUS, "heartbeat_interval_s": 20.0})
    assert not slow.is_stale(BEAT + timedelta(seconds=59))
    assert slow.is_stale(BEAT + timedelta(seconds=61))


@pytest.mark.parametrize(
    "change",
    [
        {"connection_state": "sleeping"},
        {"symbol_count": -1},
        {"heartbeat_interval_s": 0},
        {"progress": {"phase": "backfill", "percent": 101}},
        {"progress": {"phase": "warming", "percent": 1}},
        {"role": "leader"},
        {"exchange_id": 0},
        {"worker_id": None},
    ],
)
def test_connection_status_rejects_malformed(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ConnectionStatus.model_validate_json(json.dumps({**STATUS, **change}))


def test_lifecycle_event_json_round_trip() -> None:
    wire = {
        "exchange_id": 2,
        "exchange_name": "binance",
        "state": "reconnecting",
        "reason": "close 1006",
        "attempt": 3,
        "timestamp": "2024-05-01T12:00:05.250000Z",
        "worker_id": "host-b:1",
        "progress": None,
    }
    event = LifecycleEvent.model_validate_json(json.dumps(wire))
    assert event.state is ConnectionState.RECONNECTING
    assert event.timestamp == BEAT + timedelta(seconds=5, milliseconds=250)
    assert LifecycleEvent.model_validate_json(event.model_dump_json()) == event
    assert json.loads(event.model_dump_json())["reason"] == "close 1006"


@pytest.mark.parametrize(
    "change", [{"state": "napping"}, {"attempt": -1}, {"timestamp": "soon"}, {"other": 1}]
)
def test_lifecycle_event_rejects_malformed(change: dict[str, Any]) -> None:
    base = {"exchange_id": 1, "exchange_name": "coinbase", "state": "idle",
            "timestamp": "2024-05-01T12:00:00Z"}  # fmt: skip
    with pytest.raises(ValidationError):
        LifecycleEvent.model_validate_json(json.dumps({**base, **change}))
