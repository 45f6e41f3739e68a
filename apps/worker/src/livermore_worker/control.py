"""The control listener: reads the durable command stream and answers every command.

Each command gets `ack`, then `success` (with the handler's `data`) or `error`, all carrying its
correlation id; a malformed command whose correlation id can still be read, or an expired one
(older than `COMMAND_TTL`), gets an `error`. Only the lease holder runs a listener, and its inbox
reads only while the lease is valid (`CommandInbox.next`), so a standby never consumes commands;
an entry is acknowledged in the stream only after its final response, so a command interrupted by
a crash runs again on the worker that takes over.

Priority: the listener takes every command already waiting (up to `batch`) and runs them in
`(priority, type rank, arrival)` order, where the type rank puts start/stop/pause/resume first,
then reload-settings/switch-mode, then symbol changes, then backfill and cache clearing. A command
arriving while another runs waits for the next batch; nothing is pre-empted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from pydantic import ValidationError

from livermore_cache.commands import CommandInbox
from livermore_schema.control import Command, CommandResponse, parse_command
from livermore_schema.enums import CommandType, ResponseStatus

log = structlog.get_logger(__name__)

Handler = Callable[[Command], Awaitable[dict[str, Any]]]
"""Runs one command and returns the response `data` (idempotent outcomes in `data.status`)."""

TYPE_RANK: dict[CommandType, int] = {
    CommandType.START: 1,
    CommandType.STOP: 1,
    CommandType.PAUSE: 1,
    CommandType.RESUME: 1,
    CommandType.RELOAD_SETTINGS: 10,
    CommandType.SWITCH_MODE: 10,
    CommandType.ADD_SYMBOL: 15,
    CommandType.REMOVE_SYMBOL: 15,
    CommandType.BULK_ADD_SYMBOLS: 15,
    CommandType.FORCE_BACKFILL: 20,
    CommandType.CLEAR_CACHE: 20,
}


class CommandFailed(Exception):
    """A command could not be carried out; its message becomes the `error` response."""


@dataclass(order=True, slots=True)
class _Queued:
    sort_key: tuple[int, int, int]
    entry_id: str = field(compare=False)
    command: Command = field(compare=False)


def extract_correlation_id(raw: str) -> UUID | None:
    """Return the correlation id of a malformed command if it can still be read."""
    try:
        document = json.loads(raw)
        return UUID(str(document["correlation_id"]))
    except (ValueError, TypeError, KeyError):
        return None


class ControlListener:
    """Reads commands for one exchange and dispatches them on a dict keyed by command type."""

    def __init__(
        self,
        inbox: CommandInbox,
        handlers: Mapping[CommandType, Handler],
        *,
        batch: int = 32,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        missing = set(CommandType) - set(handlers)
        if missing:
            raise ValueError(f"no handler for {sorted(missing)}")
        self._inbox = inbox
        self._handlers = dict(handlers)
        self._batch = batch
        self._now = now
        # Runs after a handler and before its final response, so whoever acts on the response
        # (e.g. reads the status key) sees the state the command produced.
        self._settle = settle
        self._arrivals = 0
        self.handled = 0

    async def serve(self, stop: asyncio.Event, poll_s: float = 0.5) -> None:
        """Handle commands until `stop` is set; a command in progress is cancelled by `stop`."""
        stopping = asyncio.get_running_loop().create_task(stop.wait())
        try:
            while not stop.is_set():
                for queued in sorted(await self._gather(poll_s)):
                    if stop.is_set():
                        return  # left unacknowledged: the next worker runs it
                    running = asyncio.get_running_loop().create_task(self._run(queued))
                    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not running.done():
                        running.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await running
                        return
                    running.result()
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping

    async def _gather(self, poll_s: float) -> list[_Queued]:
        """Wait up to `poll_s` for a command, then take whatever else is already waiting."""
        found: list[_Queued] = []
        entry = await self._inbox.next(poll_s)
        while entry is not None:
            queued = await self._admit(*entry)
            if queued is not None:
                found.append(queued)
            if len(found) >= self._batch:
                break
            entry = await self._inbox.next(0.001)
        return found

    async def _admit(self, entry_id: str, raw: str) -> _Queued | None:
        """Validate one entry; answer and drop it when malformed or expired."""
        try:
            command = parse_command(raw)
        except ValidationError as err:
            correlation_id = extract_correlation_id(raw)
            reason = f"invalid command: {err.error_count()} validation error(s)"
            if correlation_id is None:
                log.warning("control.malformed_dropped", entry_id=entry_id, raw=raw[:300])
            else:
                await self._respond(correlation_id, ResponseStatus.ERROR, reason)
            await self._inbox.ack(entry_id)
            return None
        if command.is_expired(self._now()):
            await self._respond(command.correlation_id, ResponseStatus.ERROR, "command expired")
            await self._inbox.ack(entry_id)
            return None
        self._arrivals += 1
        rank = TYPE_RANK[CommandType(command.type)]
        return _Queued((command.priority, rank, self._arrivals), entry_id, command)

    async def _run(self, queued: _Queued) -> None:
        command = queued.command
        bound = log.bind(command=command.type, correlation_id=str(command.correlation_id))
        await self._respond(command.correlation_id, ResponseStatus.ACK, "accepted")
        handler = self._handlers[CommandType(command.type)]
        try:
            data = await handler(command)
            if self._settle is not None:
                await self._settle()
        except CommandFailed as failed:
            bound.warning("control.command_failed", reason=str(failed))
            await self._respond(command.correlation_id, ResponseStatus.ERROR, str(failed))
        except Exception as crash:  # one bad command never stops the listener
            bound.exception("control.command_crashed")
            message = f"internal error: {type(crash).__name__}: {crash}"
            await self._respond(command.correlation_id, ResponseStatus.ERROR, message[:500])
        else:
            bound.info("control.command_done", status=data.get("status"))
            message = str(data.get("status", "ok"))
            await self._respond(command.correlation_id, ResponseStatus.SUCCESS, message, data)
        await self._inbox.ack(queued.entry_id)
        self.handled += 1

    async def _respond(
        self,
        correlation_id: UUID,
        status: ResponseStatus,
        message: str,
        data: dict[str, Any] | None = None,
    ) -> None:
        await self._inbox.respond(
            CommandResponse(
                correlation_id=correlation_id, status=status, message=message, data=data
            )
        )
