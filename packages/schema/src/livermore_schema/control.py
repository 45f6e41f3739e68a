"""Control protocol: commands to a worker and its responses (SPEC section 9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import Field, TypeAdapter, field_validator

from livermore_schema._base import Message
from livermore_schema.enums import ClearScope, ResponseStatus, Timeframe, WorkerMode

COMMAND_TTL = timedelta(seconds=30)
"""A command older than this is answered with an `expired` error and not run."""

Symbol = Annotated[
    str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-/_.]*$")
]


class EmptyPayload(Message):
    """Payload of commands that take no arguments."""


class SwitchModePayload(Message):
    """Payload of `switch-mode`."""

    mode: WorkerMode


class SymbolPayload(Message):
    """Payload of `add-symbol` and `remove-symbol`."""

    symbol: Symbol


class BulkSymbolsPayload(Message):
    """Payload of `bulk-add-symbols`."""

    symbols: list[Symbol] = Field(min_length=1, max_length=500)


class ForceBackfillPayload(Message):
    """Payload of `force-backfill`; no timeframes means every runtime timeframe."""

    symbol: Symbol
    timeframes: list[Timeframe] | None = None


class ClearCachePayload(Message):
    """Payload of `clear-cache`."""

    scope: ClearScope
    symbol: Symbol | None = None
    timeframe: Timeframe | None = None


class _CommandBase(Message):
    correlation_id: UUID = Field(default_factory=uuid4)
    user_id: int | None = None
    issued_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    priority: int = Field(default=50, ge=1, le=100, description="1 runs first")

    @field_validator("issued_at")
    @classmethod
    def _require_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("issued_at must be timezone-aware")
        return value

    def is_expired(self, now: datetime) -> bool:
        """Return whether the command is older than `COMMAND_TTL` at `now`."""
        return now - self.issued_at > COMMAND_TTL


class StartCommand(_CommandBase):
    """Run the start sequence."""

    type: Literal["start"] = "start"
    payload: EmptyPayload = EmptyPayload()


class StopCommand(_CommandBase):
    """Close the exchange connection and return to idle."""

    type: Literal["stop"] = "stop"
    payload: EmptyPayload = EmptyPayload()


class PauseCommand(_CommandBase):
    """Stop streaming but keep the symbol set and state."""

    type: Literal["pause"] = "pause"
    payload: EmptyPayload = EmptyPayload()


class ResumeCommand(_CommandBase):
    """Resume streaming after `pause`, repairing the gap."""

    type: Literal["resume"] = "resume"
    payload: EmptyPayload = EmptyPayload()


class ReloadSettingsCommand(_CommandBase):
    """Re-read the user's settings and apply them."""

    type: Literal["reload-settings"] = "reload-settings"
    payload: EmptyPayload = EmptyPayload()


class SwitchModeCommand(_CommandBase):
    """Switch the worker's mode, resubscribing the difference."""

    type: Literal["switch-mode"] = "switch-mode"
    payload: SwitchModePayload


class AddSymbolCommand(_CommandBase):
    """Add one symbol to the worker."""

    type: Literal["add-symbol"] = "add-symbol"
    payload: SymbolPayload


class RemoveSymbolCommand(_CommandBase):
    """Remove one symbol, unsubscribing it and deleting its keys."""

    type: Literal["remove-symbol"] = "remove-symbol"
    payload: SymbolPayload


class BulkAddSymbolsCommand(_CommandBase):
    """Add several symbols at once."""

    type: Literal["bulk-add-symbols"] = "bulk-add-symbols"
    payload: BulkSymbolsPayload


class ForceBackfillCommand(_CommandBase):
    """Refetch a symbol's history over REST."""

    type: Literal["force-backfill"] = "force-backfill"
    payload: ForceBackfillPayload


class ClearCacheCommand(_CommandBase):
    """Delete cached candles, indicators and tickers (SCAN, never KEYS)."""

    type: Literal["clear-cache"] = "clear-cache"
    payload: ClearCachePayload


Command = Annotated[
    StartCommand
    | StopCommand
    | PauseCommand
    | ResumeCommand
    | ReloadSettingsCommand
    | SwitchModeCommand
    | AddSymbolCommand
    | RemoveSymbolCommand
    | BulkAddSymbolsCommand
    | ForceBackfillCommand
    | ClearCacheCommand,
    Field(discriminator="type"),
]
"""Any control command, discriminated on `type`."""

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(raw: str | bytes) -> Command:
    """Validate a JSON command; raises `pydantic.ValidationError` when it is malformed."""
    return COMMAND_ADAPTER.validate_json(raw)


class CommandResponse(Message):
    """A worker's answer to a command: `ack`, then `success` or `error`."""

    correlation_id: UUID
    status: ResponseStatus
    message: str = ""
    data: dict[str, Any] | None = None
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
