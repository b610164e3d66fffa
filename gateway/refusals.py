"""The one table from refusals (engine/refusals.py) to HTTP answers: every refusal has exactly one status here.

A refusal answered with 503 is an infrastructure error (Retry-After, never stored under an Idempotency-Key);
every other one is a domain error (4xx, nothing applied). The error classes keep their meaning for the code that
catches them (``except NotFound``), so a refusal is rendered as the class of its status.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from engine.refusals import Refusal, Refused
from gateway.errors import (
    ApiError,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InfrastructureError,
    NotFound,
    PayloadTooLarge,
    PaymentsUnavailable,
    PersistenceUnavailable,
    Unauthorized,
    ValidationFailed,
)
from gateway.inventory_errors import InventoryUnavailable

_R = Refusal
REFUSAL_STATUS: Mapping[Refusal, int] = MappingProxyType(
    {
        _R.SEATS_UNAVAILABLE: 409,
        _R.INSUFFICIENT_INVENTORY: 409,
        _R.UNKNOWN_SEATS: 422,
        _R.UNKNOWN_TICKET_TYPE: 422,
        _R.BUYER_LIMIT_EXCEEDED: 422,
        _R.INVALID_HOLD_REQUEST: 422,
        _R.HOLD_NOT_FOUND: 404,
        _R.HOLD_EXPIRED: 410,
        _R.INVALID_TRANSITION: 409,
        _R.BATCH_TOO_LARGE: 413,
        _R.PERSISTENCE_UNAVAILABLE: 503,
        _R.INVENTORY_UNAVAILABLE: 503,
        _R.EVENT_NOT_FOUND: 404,
        _R.NOT_ON_SALE: 409,
        _R.CAPACITY_BELOW_COMMITTED: 409,
        _R.TICKET_TYPE_NOT_FOUND: 404,
        _R.EVENT_ENDED: 409,
        _R.API_KEY_NOT_FOUND: 404,
        _R.MEMBER_NOT_FOUND: 404,
        _R.ALREADY_MEMBER: 409,
        _R.ROLE_NOT_GRANTABLE: 403,
        _R.LAST_OWNER: 409,
        _R.SESSION_ENDED: 401,
        _R.CONCURRENT_CHANGE: 409,
        _R.INVITATION_NOT_FOUND: 404,
        _R.INVITATION_USED: 409,
        _R.INVITATION_EXPIRED: 410,
        _R.PASSWORD_NOT_SET: 409,
        _R.PASSWORD_ALREADY_SET: 409,
        _R.INVALID_CREDENTIALS: 401,
        _R.INVALID_REFRESH_TOKEN: 401,
        _R.REFRESH_TOKEN_REUSED: 401,
        _R.SESSION_REQUIRED: 403,
        _R.VENUE_NOT_FOUND: 404,
        _R.LAYOUT_NOT_FOUND: 404,
        _R.PROMO_CODE_INVALID: 422,
        _R.PROMO_CODE_EXISTS: 409,
        _R.TOO_MANY_PROMO_CODES: 409,
        _R.PROMO_USE_RELEASED: 409,
        _R.PAYOUT_EXCEEDS_PAYABLE: 409,
        _R.ORDER_NOT_FOUND: 404,
        _R.TICKET_NOT_FOUND: 404,
        _R.ORDER_NOT_REFUNDABLE: 409,
        _R.TICKET_ALREADY_REFUNDED: 409,
        _R.WEBHOOK_REFUSED: 400,
        _R.PROVIDER_NOT_FOUND: 404,
        _R.PAYMENTS_UNAVAILABLE: 503,
    }
)
# The 503 refusals, each as its infrastructure error (its code and Retry-After).
_INFRASTRUCTURE: Mapping[Refusal, type[InfrastructureError]] = MappingProxyType(
    {_R.PERSISTENCE_UNAVAILABLE: PersistenceUnavailable, _R.INVENTORY_UNAVAILABLE: InventoryUnavailable,
     _R.PAYMENTS_UNAVAILABLE: PaymentsUnavailable}
)
_DOMAIN_CLASSES: Mapping[int, type[DomainError]] = MappingProxyType(
    {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 410: Gone, 413: PayloadTooLarge,
     422: ValidationFailed}
)


def refused(refusal: Refusal, message: str, details: Mapping[str, Any] | None = None) -> ApiError:
    """The API error that answers ``refusal``; raise it."""
    infrastructure = _INFRASTRUCTURE.get(refusal)
    if infrastructure is not None:
        return infrastructure(message, dict(details or {}))
    status = REFUSAL_STATUS[refusal]
    error_class = _DOMAIN_CLASSES.get(status, DomainError)
    return error_class(message, dict(details or {}), code=refusal.value, status=status)


def error_for_refused(error: Refused) -> ApiError:
    return refused(error.refusal, error.message, error.details)
