"""Error envelope and request ids: no response ever carries a stack trace."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError

from livermore_api import keys
from livermore_api.errors import (
    ApiError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    UpstreamUnavailableError,
)

log = structlog.get_logger(__name__)

_UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    OperationalError,
    InterfaceError,
    ConnectionRefusedError,
)

_HTTP_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequestError,
    404: NotFoundError,
    405: MethodNotAllowedError,
}


def _render(error: ApiError, request_id: str) -> web.Response:
    response = web.json_response(error.body(), status=error.status, headers=error.headers)
    response.headers["X-Request-Id"] = request_id
    if error.status == 401:  # RFC 9110 section 11.6.1: a 401 names the scheme to use
        response.headers["WWW-Authenticate"] = 'Bearer realm="livermore"'
    return response


def _from_http(exc: web.HTTPException) -> ApiError:
    kind = _HTTP_ERRORS.get(exc.status, BadRequestError)
    error = kind(exc.reason or "error")
    error.status = exc.status
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        error.details = {"allowed": sorted(exc.allowed_methods)}
        error.headers = {"Allow": ", ".join(sorted(exc.allowed_methods))}
    return error


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give every request an id and turn every failure into the JSON error envelope."""
    request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex
    request[keys.REQUEST_ID] = request_id
    try:
        response = await handler(request)
    except ApiError as err:
        return _render(err, request_id)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _render(_from_http(exc), request_id)
    except _UNAVAILABLE as err:
        log.warning("api.upstream_unavailable", path=request.path, error=str(err))
        return _render(UpstreamUnavailableError("a dependency is unavailable"), request_id)
    except Exception:
        log.exception("api.unexpected_error", path=request.path, request_id=request_id)
        error = ApiError("internal error; quote the request id", details={"request_id": request_id})
        return _render(error, request_id)
    if not response.prepared:
        response.headers.setdefault("X-Request-Id", request_id)
    return response


class AccessLogger(AbstractAccessLogger):
    """Access log via structlog with the path only: query strings may hold a `?token=`."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Log one finished request."""
        log.info(
            "api.request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round(time * 1000, 1),
        )
