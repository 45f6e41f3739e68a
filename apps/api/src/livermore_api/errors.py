"""API errors: each carries its HTTP status and a stable machine-readable code."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error a view raises; rendered as `{"error": {code, message, details}}`."""

    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        """Return the JSON error envelope."""
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequestError(ApiError):
    """The request is malformed (not JSON, wrong content type); fix the request."""

    status = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    """No token, or an unknown or revoked one; sign in with a valid token."""

    status = 401
    code = "unauthorized"


class ForbiddenError(ApiError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"


class NotFoundError(ApiError):
    """The resource does not exist, or is not the caller's to see."""

    status = 404
    code = "not_found"


class MethodNotAllowedError(ApiError):
    """The path exists but not with this method."""

    status = 405
    code = "method_not_allowed"


class ConflictError(ApiError):
    """The request clashes with the current state (duplicate, already revoked, refused command)."""

    status = 409
    code = "conflict"


class UnsupportedMediaTypeError(ApiError):
    """The body is not in a media type the route reads (JSON); resend it as application/json."""

    status = 415
    code = "unsupported_media_type"


class RequestTimeoutError(ApiError):
    """The client took too long to send its request."""

    status = 408
    code = "request_timeout"


class TooManyStreamsError(ApiError):
    """Too many open alert streams (the caller's or the server's); retry after `Retry-After`."""

    status = 429
    code = "too_many_streams"


class ValidationFailedError(ApiError):
    """Well-formed input with invalid values; `details` lists each problem."""

    status = 422
    code = "validation_failed"


class UpstreamUnavailableError(ApiError):
    """A dependency (Redis, PostgreSQL, an exchange) cannot be reached; retry later."""

    status = 503
    code = "unavailable"


class WorkerTimeoutError(ApiError):
    """The exchange's worker did not answer in time; it may be down. Retry or check /health."""

    status = 504
    code = "worker_timeout"
