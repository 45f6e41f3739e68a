"""Commands to an exchange's worker over the control protocol (SPEC 9)."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from livermore_api import keys
from livermore_api.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationFailedError,
    WorkerTimeoutError,
)
from livermore_api.models import CommandPath, CommandRequest, ExchangePath
from livermore_api.resources import CommandAccepted
from livermore_api.routing import body_of, json_response, path_of, principal_of
from livermore_api.views.common import redis_of, require_account, resolve_exchange, session
from livermore_cache.commands import CommandBus
from livermore_schema.control import COMMAND_ADAPTER, Command
from livermore_schema.enums import STREAMING_EXCHANGES, CommandType, ExchangeName, ResponseStatus
from livermore_schema.tables import Exchange

LONG_RUNNING: frozenset[CommandType] = frozenset(
    {CommandType.START, CommandType.FORCE_BACKFILL, CommandType.BULK_ADD_SYMBOLS}
)
"""Commands answered with 202 and a correlation id instead of waiting for the worker."""

ADMIN_COMMANDS: frozenset[CommandType] = frozenset(
    {
        CommandType.START,
        CommandType.STOP,
        CommandType.PAUSE,
        CommandType.RESUME,
        CommandType.SWITCH_MODE,
        CommandType.RELOAD_SETTINGS,
        CommandType.FORCE_BACKFILL,
        CommandType.CLEAR_CACHE,
        CommandType.BULK_ADD_SYMBOLS,
    }
)
"""Lifecycle and cache commands act on the worker every user shares: admins only. Other types
need an active account on the exchange (users change what is streamed for them through their
watchlist and positions)."""


def command_access(command_type: CommandType) -> str:
    """Who may send `command_type` (`admin` or `account`); the api README's matrix is built here."""
    return "admin" if command_type in ADMIN_COMMANDS else "account"


def _build(body: CommandRequest, user_id: int) -> Command:
    try:
        return COMMAND_ADAPTER.validate_python(
            {
                "type": body.type.value,
                "payload": body.payload,
                "user_id": user_id,
                "priority": body.priority,
            }
        )
    except ValidationError as err:
        details = [
            {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
            for e in err.errors(include_url=False, include_context=False, include_input=False)
        ]
        raise ValidationFailedError(f"invalid {body.type.value} command", details=details) from None


async def _authorized_exchange(
    request: web.Request, ref: str, command_type: CommandType | None = None
) -> Exchange:
    principal = principal_of(request)
    if command_type in ADMIN_COMMANDS and not principal.is_admin:
        raise ForbiddenError(
            f"{command_type} acts on the worker every user shares: admins only",
            code="admin_command",
        )
    async with session(request) as db:
        exchange = await resolve_exchange(db, ref)
        await require_account(db, principal_of(request), exchange)
    if ExchangeName(exchange.name) not in STREAMING_EXCHANGES:
        supported = ", ".join(sorted(e.value for e in STREAMING_EXCHANGES))
        raise ConflictError(
            f"{exchange.name} has no streaming client, so no worker runs for it "
            f"(workers exist for {supported})",
            code="no_streaming_client",
        )
    return exchange


def _result_url(request: web.Request, exchange: Exchange, correlation_id: str) -> str:
    return str(
        request.app.router["commands.result"].url_for(
            exchange=exchange.name, correlation_id=correlation_id
        )
    )


async def send_command(request: web.Request) -> web.StreamResponse:
    """Send a command; wait for the worker's final answer, or return 202 for long ones."""
    body = body_of(request, CommandRequest)
    exchange = await _authorized_exchange(
        request, path_of(request, ExchangePath).exchange, body.type
    )
    assert exchange.id is not None
    command = _build(body, principal_of(request).user_id)
    bus = CommandBus(redis_of(request), fanout=request.app[keys.FANOUT])
    correlation_id = str(await bus.send(exchange.id, command))
    if body.type in LONG_RUNNING:
        url = _result_url(request, exchange, correlation_id)
        accepted = CommandAccepted(
            correlation_id=command.correlation_id,
            type=body.type.value,
            exchange=exchange.name,
            result_url=url,
        )
        response = json_response(accepted, status=202)
        response.headers["Location"] = url
        return response
    timeout = body.timeout_s or request.app[keys.CONFIG].api.command_timeout_s
    try:
        answer = await bus.await_response(exchange.id, correlation_id, timeout)
    except TimeoutError:
        raise WorkerTimeoutError(
            f"the {exchange.name} worker did not answer within {timeout:g} s",
            details={"correlation_id": correlation_id},
        ) from None
    if answer.status is ResponseStatus.ERROR:
        raise ConflictError(
            answer.message or "the worker refused the command",
            code="command_failed",
            details=answer.model_dump(mode="json"),
        )
    return json_response(answer)


async def get_command_result(request: web.Request) -> web.StreamResponse:
    """Return the latest response to a command (`ack` while it runs), or 404 if none yet."""
    path = path_of(request, CommandPath)
    exchange = await _authorized_exchange(request, path.exchange)
    assert exchange.id is not None
    answer = await CommandBus(redis_of(request)).fetch_response(exchange.id, path.correlation_id)
    if answer is None:
        raise NotFoundError(
            "no response yet: the command is still queued, unknown, or its result expired",
            code="no_response",
        )
    return json_response(answer)
