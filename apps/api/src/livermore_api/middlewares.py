"""Error envelope and request ids: no response ever carries a stack trace."""

from __future__ import annotations

import uuid

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from livermore_api import keys
from livermore_api.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    MethodNotAllowedError,
    NotFoundError,
    UpstreamUnavailableError,
    ValidationFailedError,
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
    except (StaleDataError, ObjectDeletedError):
        conflict = ConflictError("the resource changed or was deleted meanwhile; reload it")
        return _render(conflict, request_id)
    except DataError:  # a value PostgreSQL cannot store; its bound parameters are never logged
        log.warning("api.data_error", path=request.path, request_id=request_id)
        return _render(ValidationFailedError("a value is out of range"), request_id)
    except _UNAVAILABLE as err:
        log.warning("api.upstream_unavailable", path=request.path, error=str(err))
        return _render(UpstreamUnavailableError("a dependency is unavailable"), request_id)
    except DBAPIError as err:  # PostgreSQL may quote a value in its message: log the code only
        sqlstate = getattr(err.orig, "sqlstate", None)
        log.error("api.database_error", path=request.path, request_id=request_id, sqlstate=sqlstate)
        error = ApiError("internal error; quote the request id", details={"request_id": request_id})
        return _render(error, request_id)
    except Exception:
        log.exception("api.unexpected_error", path=request.path, request_id=request_id)
        error = ApiError("internal error; quote the request id", details={"request_id": request_id})
        return _render(error, request_id)
    if not response.prepared:
        response.headers.setdefault("X-Request-Id", request_id)
    return response


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""The admin, chart and docs pages: same-origin scripts only (no inline ones); inline styles
because Swagger UI sets them; `data:` images for its icons; fetches and streams to this origin."""

_PAGES = ("/admin", "/api/docs")


async def add_security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Signal handler (`on_response_prepare`): nosniff everywhere, a CSP and no framing on pages."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if request.path.startswith(_PAGES):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")


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
