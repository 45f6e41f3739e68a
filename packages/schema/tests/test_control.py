from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from livermore_schema.control import (
    COMMAND_TTL,
    AddSymbolCommand,
    BulkAddSymbolsCommand,
    ClearCacheCommand,
    CommandResponse,
    ForceBackfillCommand,
    PauseCommand,
    ReloadSettingsCommand,
    RemoveSymbolCommand,
    ResumeCommand,
    StartCommand,
    StopCommand,
    SwitchModeCommand,
    parse_command,
)
from livermore_schema.enums import ClearScope, CommandType, ResponseStatus, Timeframe, WorkerMode

ISSUED = "2024-05-01T12:00:00Z"
CORRELATION = "0b5e3f6a-6f0e-4d8e-8f39-6d1c9b2a7e10"

CASES: list[tuple[str, dict[str, Any], type]] = [
    ("start", {}, StartCommand),
    ("stop", {}, StopCommand),
    ("pause", {}, PauseCommand),
    ("resume", {}, ResumeCommand),
    ("reload-settings", {}, ReloadSettingsCommand),
    ("switch-mode", {"mode": "scalper-macdv"}, SwitchModeCommand),
    ("add-symbol", {"symbol": "SOL-USD"}, AddSymbolCommand),
    ("remove-symbol", {"symbol": "BTCUSDT"}, RemoveSymbolCommand),
    ("bulk-add-symbols", {"symbols": ["BTC-USD", "ETH-USD"]}, BulkAddSymbolsCommand),
    ("force-backfill", {"symbol": "BTC-USD", "timeframes": ["1h", "1d"]}, ForceBackfillCommand),
    ("clear-cache", {"scope": "symbol", "symbol": "BTC-USD", "timeframe": None}, ClearCacheCommand),
]


def _wire(command_type: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "correlation_id": CORRELATION,
        "type": command_type,
        "payload": payload,
        "user_id": 7,
        "issued_at": ISSUED,
        "priority": 10,
        **extra,
    }


def test_every_command_type_has_a_case() -> None:
    assert {case[0] for case in CASES} == {t.value for t in CommandType}


@pytest.mark.parametrize(("command_type", "payload", "model"), CASES)
def test_command_json_round_trip(command_type: str, payload: dict[str, Any], model: type) -> None:
    command = parse_command(json.dumps(_wire(command_type, payload)))
    assert type(command) is model
    assert command.type == command_type
    assert command.correlation_id == UUID(CORRELATION)
    assert (command.user_id, command.priority) == (7, 10)
    assert json.loads(command.model_dump_json()) == _wire(command_type, payload)
    assert parse_command(command.model_dump_json()) == command
    assert parse_command(command.model_dump_json().encode()) == command


def test_command_payload_values_are_typed() -> None:
    switch = parse_command(json.dumps(_wire("switch-mode", {"mode": "scalper-orderbook"})))
    assert isinstance(switch, SwitchModeCommand)
    assert switch.payload.mode is WorkerMode.SCALPER_ORDERBOOK
    backfill = parse_command(json.dumps(_wire("force-backfill", {"symbol": "BTC-USD"})))
    assert isinstance(backfill, ForceBackfillCommand)
    assert backfill.payload.timeframes is None
    clear = parse_command(
        json.dumps(_wire("clear-cache", {"scope": "timeframe", "timeframe": "4h"}))
    )
    assert isinstance(clear, ClearCacheCommand)
    assert (clear.payload.scope, clear.payload.timeframe) == (ClearScope.TIMEFRAME, Timeframe.H4)


def test_command_defaults_fill_correlation_time_and_priority() -> None:
    before = datetime.now(UTC)
    command = parse_command(json.dumps({"type": "start"}))
    assert isinstance(command, StartCommand)
    assert command.priority == 50 and command.user_id is None
    assert before <= command.issued_at <= datetime.now(UTC)
    assert parse_command(json.dumps({"type": "start"})).correlation_id != command.correlation_id


def test_unknown_command_type_names_the_discriminator() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_command(json.dumps(_wire("explode", {})))
    assert caught.value.errors()[0]["type"] == "union_tag_invalid"


def test_missing_command_type_is_rejected() -> None:
    body = _wire("start", {})
    del body["type"]
    with pytest.raises(ValidationError) as caught:
        parse_command(json.dumps(body))
    assert caught.value.errors()[0]["type"] == "union_tag_not_found"


@pytest.mark.parametrize(
    ("command_type", "payload"),
    [
        ("switch-mode", {"mode": "turbo"}),
        ("add-symbol", {}),
        ("add-symbol", {"symbol": "BTC USD"}),
        ("add-symbol", {"symbol": "x" * 41}),
        ("bulk-add-symbols", {"symbols": []}),
        ("force-backfill", {"symbol": "BTC-USD", "timeframes": ["2m"]}),
        ("clear-cache", {"scope": "everything"}),
        ("start", {"unexpected": True}),
    ],
)
def test_bad_payloads_are_rejected(command_type: str, payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_command(json.dumps(_wire(command_type, payload)))


@pytest.mark.parametrize(
    "change",
    [
        {"issued_at": "2024-05-01T12:00:00"},  # naive
        {"priority": 0},
        {"priority": 101},
        {"correlation_id": "abc"},
        {"extra_field": 1},
    ],
)
def test_bad_envelopes_are_rejected(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_command(json.dumps(_wire("start", {}, **change)))


def test_non_json_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_command(b"{not json")


def test_command_expiry_after_thirty_seconds() -> None:
    command = parse_command(json.dumps(_wire("stop", {})))
    issued = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert timedelta(seconds=30) == COMMAND_TTL
    assert not command.is_expired(issued)
    assert not command.is_expired(issued + COMMAND_TTL)
    assert command.is_expired(issued + COMMAND_TTL + timedelta(milliseconds=1))


def test_command_response_round_trip() -> None:
    response = CommandResponse(
        correlation_id=UUID(CORRELATION),
        status=ResponseStatus.SUCCESS,
        message="started",
        data={"symbols": 100, "already_started": False},
        timestamp=datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC),
    )
    wire = json.loads(response.model_dump_json())
    assert wire == {
        "correlation_id": CORRELATION,
        "status": "success",
        "message": "started",
        "data": {"symbols": 100, "already_started": False},
        "timestamp": "2024-05-01T12:00:01Z",
    }
    assert CommandResponse.model_validate_json(response.model_dump_json()) == response


@pytest.mark.parametrize(
    "body",
    [
        {"correlation_id": CORRELATION, "status": "done"},
        {"status": "ack"},
        {"correlation_id": CORRELATION, "status": "ack", "data": [1, 2]},
    ],
)
def test_command_response_rejects_malformed(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CommandResponse.model_validate_json(json.dumps(body))
