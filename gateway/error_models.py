"""The models of the one error body, ``{"error": {"code", "message", "details"}}`` (gateway/errors.py renders it),
for OpenAPI and the tests: ``ErrorOut`` is the shape every error shares, and each status has its own model
(``ERROR_MODELS``) naming what that status's ``details`` carry, so a client reads a 422's ``details.fields`` or a
429's ``details.retry_after_s`` from the document."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    error: ErrorDetail


class FieldProblem(BaseModel):
    field: str = Field(description='dotted path into the body ("seats.3"), "body", or a header or query name')
    message: str
    type: str


class _OpenDetails(BaseModel):
    """Details beyond the named ones may come (a refusal's own facts), so the schema leaves them open."""

    model_config = ConfigDict(extra="allow")


class ValidationDetails(_OpenDetails):
    fields: list[FieldProblem] | None = Field(
        default=None, description="validation_failed: every bad field (at most 100)"
    )
    fields_truncated: bool | None = Field(default=None, description="true when more than 100 fields were bad")


class RateLimitDetails(_OpenDetails):
    limit: str | None = Field(default=None, description="the limit reached, such as holds.buyer")
    retry_after_s: int | None = Field(default=None, description="as the Retry-After header")


class ForbiddenDetails(_OpenDetails):
    scope: str | None = Field(default=None, description="the scope the route needs")


def _error_model(name: str, status: int, codes: str, details: type[BaseModel] | None = None) -> type[BaseModel]:
    """``{"error": {"code", "message", "details"}}`` for one status: ``codes`` is either the one code the status
    has (a Literal in the schema) or a description of the codes it may carry."""
    single = " " not in codes and "," not in codes
    code_type: Any = Literal[codes] if single else str  # type: ignore[valid-type]
    detail_fields: dict[str, Any] = {
        "code": (code_type, Field(description=codes if not single else f"always {codes}")),
        "message": (str, Field(description="a human sentence")),
        "details": (details or dict[str, Any], ...),
    }
    body = _model(f"{name}Detail", detail_fields)
    return _model(name, {"error": (body, ...)}, doc=f"The error body of a {status} answer.")


def _model(name: str, fields: dict[str, Any], doc: str | None = None) -> type[BaseModel]:
    model: type[BaseModel] = create_model(name, __doc__=doc, **fields)
    return model


# Per status, its model; a status missing here is answered with ``ErrorOut``.
ERROR_MODELS: Mapping[int, type[BaseModel]] = MappingProxyType(
    {
        400: _error_model("MalformedJsonError", 400, "malformed_json"),
        401: _error_model(
            "UnauthorizedError", 401,
            "unauthorized, invalid_credentials, invalid_refresh_token, refresh_token_reused, session_ended",
        ),
        403: _error_model("ForbiddenError", 403, "forbidden, role_not_grantable, session_required", ForbiddenDetails),
        404: _error_model(
            "NotFoundError", 404,
            "not_found, event_not_found, hold_not_found, api_key_not_found, member_not_found, invitation_not_found, "
            "or another domain's <object>_not_found",
        ),
        405: _error_model("MethodNotAllowedError", 405, "method_not_allowed"),
        409: _error_model(
            "ConflictError", 409,
            "seats_unavailable (details.seats), insufficient_inventory, not_on_sale, invalid_transition, "
            "already_member, last_owner, invitation_used, password_not_set, password_already_set, concurrent_change, "
            "or another conflict with the current state",
        ),
        410: _error_model("GoneError", 410, "hold_expired, invitation_expired"),
        413: _error_model("PayloadTooLargeError", 413, "payload_too_large, batch_too_large"),
        415: _error_model("UnsupportedMediaTypeError", 415, "unsupported_media_type"),
        422: _error_model(
            "ValidationError", 422,
            "validation_failed (details.fields), idempotency_key_reused, unknown_seats (details.seats), "
            "unknown_ticket_type, buyer_limit_exceeded, invalid_hold_request, or another rule the request breaks",
            ValidationDetails,
        ),
        426: _error_model("UpgradeRequiredError", 426, "upgrade_required"),
        429: _error_model("RateLimitedError", 429, "rate_limited, too_many_holds_in_flight", RateLimitDetails),
        503: _error_model(
            "UnavailableError", 503,
            "unavailable, inventory_busy, inventory_unavailable, persistence_unavailable, not_ready, "
            "sessions_unavailable, rate_limiter_busy, password_checks_busy",
        ),
    }
)


def error_model(status: int) -> type[BaseModel]:
    return ERROR_MODELS.get(status, ErrorOut)
