"""The API's errors: one exception tree and one JSON shape (engine refusals map to them in gateway/refusals.py).

Every error the gateway answers is an ``ApiError`` rendered as
``{"error": {"code": ..., "message": ..., "details": {...}}}``; routes raise, the app's single handler renders.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from starlette.responses import JSONResponse

from persistence.outages import POSTGRES_OUTAGES, REDIS_OUTAGES

retry_after_s_default = 1


class ApiError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "the server could not answer this request"

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = details or {}
        self.headers: dict[str, str] = headers or {}
        # Instance overrides let one class carry several codes (e.g. the 409 conflicts of the engine).
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class DomainError(ApiError):
    """The request cannot be served as asked (4xx); nothing was applied."""

    status = 400
    code = "bad_request"
    default_message = "the request cannot be served"


class MalformedJson(DomainError):
    status = 400
    code = "malformed_json"
    default_message = "the request body is not valid JSON"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    default_message = "a valid API key is required: Authorization: Bearer <key>"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    default_message = "the API key lacks the scope this route needs"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    default_message = "no such resource"


class MethodNotAllowed(DomainError):
    status = 405
    code = "method_not_allowed"
    default_message = "this route does not accept that method"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    default_message = "the request conflicts with the current state"


class Gone(DomainError):
    status = 410
    code = "gone"
    default_message = "the resource no longer exists"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"
    default_message = "the request body is too large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    default_message = "the request body must be JSON (Content-Type: application/json)"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    default_message = "the request has invalid fields"


class InfrastructureError(ApiError):
    """A dependency is down or overloaded; nothing was applied and the client may retry after a moment."""

    status = 503
    code = "unavailable"
    default_message = "the service is temporarily unable to answer; retry shortly"

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
        retry_after_s: int = retry_after_s_default,
    ) -> None:
        super().__init__(message, details, code=code, headers={"Retry-After": str(retry_after_s)})


class PersistenceUnavailable(InfrastructureError):
    code = "persistence_unavailable"
    default_message = "storage is temporarily unavailable; retry shortly"


class PaymentsUnavailable(InfrastructureError):
    code = "payments_unavailable"
    default_message = "the payment provider is temporarily unavailable; retry shortly"


class TooManyRequests(InfrastructureError):
    """429: the caller is over a rate limit (gateway/ratelimit.py); nothing was applied, retry after Retry-After.
    Like a 503 (hence the base class) it is an answer about now, not about the request: an Idempotency-Key never
    stores it, so the retry runs."""

    status = 429
    code = "rate_limited"
    default_message = "too many requests; retry after the Retry-After header's seconds"

    def __init__(self, limit: str, retry_after_s: int, message: str | None = None, *, code: str | None = None) -> None:
        retry_after_s = max(1, retry_after_s)
        details = {"limit": limit, "retry_after_s": retry_after_s}
        super().__init__(message, details, code=code, retry_after_s=retry_after_s)


@contextmanager
def storage_outage_as_503() -> Iterator[None]:
    """Turn a Postgres or Redis outage inside the block into 503 persistence_unavailable (nothing applied)."""
    try:
        yield
    except POSTGRES_OUTAGES as error:
        raise PersistenceUnavailable("Postgres is temporarily unavailable; retry shortly") from error
    except REDIS_OUTAGES as error:
        raise PersistenceUnavailable("Redis is temporarily unavailable; retry shortly") from error
