"""Pure parts of the control listener: correlation ids of malformed commands, dispatch table."""

from __future__ import annotations

from uuid import uuid4

import pytest

from livermore_schema.enums import CommandType
from livermore_worker.control import TYPE_RANK, ControlListener, extract_correlation_id


def test_correlation_id_is_read_from_malformed_json_when_present() -> None:
    wanted = uuid4()
    assert extract_correlation_id(f'{{"correlation_id": "{wanted}", "type": "fly"}}') == wanted
    assert extract_correlation_id('{"type": "start"}') is None
    assert extract_correlation_id("not json") is None
    assert extract_correlation_id('{"correlation_id": "nope"}') is None


def test_every_command_type_has_a_rank_and_start_stop_come_first() -> None:
    assert set(TYPE_RANK) == set(CommandType)
    assert (
        TYPE_RANK[CommandType.STOP]
        < TYPE_RANK[CommandType.ADD_SYMBOL]
        < TYPE_RANK[CommandType.CLEAR_CACHE]
    )


def test_listener_refuses_a_dispatch_table_with_a_missing_type() -> None:
    with pytest.raises(ValueError, match="no handler"):
        ControlListener(None, {})  # type: ignore[arg-type]
