"""The route type and the wrapper that authenticates and validates before every view runs.

The route table itself (`routes.ROUTES`) is the single source of truth for the router, the
OpenAPI document and the authorization tests.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from livermore_api import keys
from livermore_api.auth import Principal, authenticate
from livermore_api.errors import (
    BadRequestError,
    ForbiddenError,
    RequestTimeoutError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    ValidationFailedError,
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)


class Access(StrEnum):
    """Who may call a route; anything but PUBLIC needs a valid token."""

    PUBLIC = "public"
    """No token (only `/health` and the admin page's static HTML/JS, which hold no data)."""
    USER = "user"
    """Any signed-in user; shared market data."""
    OWNER = "owner"
    """The caller's own resources: another user's are 404 by id and 403 by `user_id`."""
    ACCOUNT = "account"
    """The caller needs an active account on the exchange (403 otherwise)."""
    ADMIN = "admin"
    """Admins only (403 otherwise)."""


class Kind(StrEnum):
    """What a route answers with."""

    JSON = "json"
    SSE = "sse"
    WEBSOCKET = "websocket"
    STATIC = "static"
    TEXT = "text"
    """Prometheus text (`/metrics`)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One route: method, path, view and everything the docs and checks need to know."""

    name: str
    method: str
    path: str
    handler: Handler
    summary: str
    access: Access
    tag: str
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    response_model: Any = None
    status: int = 200
    kind: Kind = Kind.JSON
    responses: Mapping[int, str] = field(default_factory=dict)
    other_success: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    """Further 2xx answers and their bodies (e.g. 202 with `CommandAccepted`)."""

    @property
    def token_in_query(self) -> bool:
        """Streams accept `?token=` because browsers cannot set headers on them."""
        return self.kind in (Kind.SSE, Kind.WEBSOCKET)


ROUTE_TABLE: web.AppKey[tuple[Route, ...]] = web.AppKey("livermore_routes", tuple)
"""The routes the app serves (the OpenAPI view renders them)."""


def _details(err: ValidationError, where: str) -> list[dict[str, Any]]:
    return [
        {"in": where, "loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_context=False, include_input=False)
    ]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _validate(model: type[M] | None, raw: Mapping[str, Any], where: str) -> M | None:
    if _has_nul(dict(raw)):  # PostgreSQL text cannot hold NUL; no identifier or name has one
        raise ValidationFailedError(f"the {where} holds a NUL character", code="nul_character")
    if model is None:
        if where == "query":
            return None
        if raw:
            raise ValidationFailedError(f"this route takes no {where} parameters")
        return None
    try:
        return model.model_validate(dict(raw))
    except ValidationError as err:
        raise ValidationFailedError(f"invalid {where}", details=_details(err, where)) from None


async def _read_body(request: web.Request, model: type[M] | None) -> M | None:
    if model is None:
        return None
    if request.content_type != "application/json":
        raise UnsupportedMediaTypeError(
            f"send the body as application/json, not {request.content_type}"
        )
    try:
        async with asyncio.timeout(request.app[keys.CONFIG].api.body_timeout_s):
            data = await request.read()
    except TimeoutError:
        raise RequestTimeoutError("the request body did not arrive in time") from None
    try:
        raw = json.loads(data or b"null")
    except (UnicodeDecodeError, ValueError) as err:  # JSONDecodeError, a 5,000-digit number
        raise BadRequestError("the body is not valid JSON", details=str(err)[:200]) from None
    except RecursionError:
        raise BadRequestError("the body is nested too deeply") from None
    if not isinstance(raw, dict):
        raise ValidationFailedError("the body must be a JSON object")
    return _validate(model, raw, "body")


def _token_of(request: web.Request, route: Route) -> str:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("use 'Authorization: Bearer <token>'")
        return _printable(token.strip())
    from_query = request.query.get("token") if route.token_in_query else None
    if not from_query:
        raise UnauthorizedError("missing bearer token")
    return _printable(from_query)


def _printable(token: str) -> str:
    # tokens are ASCII; a header byte like 0xff arrives as a lone surrogate that cannot be hashed
    if not (token.isascii() and token.isprintable()):
        raise UnauthorizedError("unknown or revoked token")
    return token


async def _principal(request: web.Request, route: Route) -> Principal:
    token = _token_of(request, route)
    async with request.app[keys.SESSIONS]() as session:
        principal = await authenticate(session, token, datetime.now(UTC))
    if principal is None:
        raise UnauthorizedError("unknown or revoked token")
    if route.access is Access.ADMIN and not principal.is_admin:
        raise ForbiddenError("admins only")
    return principal


def wrap(route: Route) -> Handler:
    """Return the aiohttp handler for `route`: authenticate, validate, then run the view."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if route.access is not Access.PUBLIC:
            request[keys.PRINCIPAL] = await _principal(request, route)
        request[keys.PARSED] = keys.Parsed(
            path=_validate(route.path_model, request.match_info, "path"),
            query=_validate(route.query_model, request.query, "query"),
            body=await _read_body(request, route.body_model),
        )
        return await route.handler(request)

    handler.__name__ = route.name.replace(".", "_")
    return handler


def principal_of(request: web.Request) -> Principal:
    """Return the authenticated caller of a request."""
    principal: Principal | None = request.get(keys.PRINCIPAL)
    if principal is None:
        raise RuntimeError("route is public; there is no principal")
    return principal


def _part(request: web.Request, model: type[M], part: str) -> M:
    value = getattr(request[keys.PARSED], part)
    if not isinstance(value, model):
        raise RuntimeError(f"route does not declare {model.__name__} as its {part} model")
    return value


def path_of(request: web.Request, model: type[M]) -> M:
    """Return the validated path parameters."""
    return _part(request, model, "path")


def query_of(request: web.Request, model: type[M]) -> M:
    """Return the validated query parameters."""
    return _part(request, model, "query")


def body_of(request: web.Request, model: type[M]) -> M:
    """Return the validated JSON body."""
    return _part(request, model, "body")


def json_response(payload: BaseModel | Mapping[str, Any], status: int = 200) -> web.Response:
    """Return a JSON response from a model or a plain mapping."""
    text = (
        payload.model_dump_json()
        if isinstance(payload, BaseModel)
        else json.dumps(payload, default=str)
    )
    return web.Response(text=text, status=status, content_type="application/json")
