"""Every refusal the platform answers with, for every domain: one closed set, decided where each rule lives.

A refusal is a decision about the request ("those seats are taken", "an org keeps one owner"); how it reaches a
client (HTTP status, Retry-After) is decided once, in gateway/refusals.py, which maps every member here and
nothing else (tests/unit/test_refusals.py holds the two sets equal). The values are the codes clients see and
the inventory's wire carries: never rename one.

The inventory core answers a refusal as a ``Rejected`` result (engine/inventory/commands.py): a batch goes on past it.
Other cores and use cases raise ``Refused``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Refusal(StrEnum):
    # inventory: holds, releases, confirms (engine/inventory/machine.py)
    SEATS_UNAVAILABLE = "seats_unavailable"
    INSUFFICIENT_INVENTORY = "insufficient_inventory"
    UNKNOWN_SEATS = "unknown_seats"
    UNKNOWN_TICKET_TYPE = "unknown_ticket_type"
    BUYER_LIMIT_EXCEEDED = "buyer_limit_exceeded"
    INVALID_HOLD_REQUEST = "invalid_hold_request"
    HOLD_NOT_FOUND = "hold_not_found"
    HOLD_EXPIRED = "hold_expired"
    INVALID_TRANSITION = "invalid_transition"
    BATCH_TOO_LARGE = "batch_too_large"
    # the inventory's shell (actors/): the event is not served here, or a store is away (answered as 503s)
    PERSISTENCE_UNAVAILABLE = "persistence_unavailable"
    INVENTORY_UNAVAILABLE = "inventory_unavailable"
    # catalog: events and their lifecycle
    EVENT_NOT_FOUND = "event_not_found"
    NOT_ON_SALE = "not_on_sale"
    # catalog lifecycle: capacity changes (engine/inventory/machine.py, through the inventory)
    CAPACITY_BELOW_COMMITTED = "capacity_below_committed"
    TICKET_TYPE_NOT_FOUND = "ticket_type_not_found"
    EVENT_ENDED = "event_ended"  # closed or cancelled: what the sale sells no longer changes
    # access: API keys, members, invitations, sessions
    API_KEY_NOT_FOUND = "api_key_not_found"
    MEMBER_NOT_FOUND = "member_not_found"
    ALREADY_MEMBER = "already_member"
    ROLE_NOT_GRANTABLE = "role_not_grantable"
    LAST_OWNER = "last_owner"
    SESSION_ENDED = "session_ended"
    CONCURRENT_CHANGE = "retry"  # another request changed the same thing a moment ago: retrying succeeds
    INVITATION_NOT_FOUND = "invitation_not_found"
    INVITATION_USED = "invitation_used"
    INVITATION_EXPIRED = "invitation_expired"
    PASSWORD_NOT_SET = "password_not_set"
    PASSWORD_ALREADY_SET = "password_already_set"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_REFRESH_TOKEN = "invalid_refresh_token"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    SESSION_REQUIRED = "session_required"
    # catalog: venues and their seating layouts
    VENUE_NOT_FOUND = "venue_not_found"
    LAYOUT_NOT_FOUND = "layout_not_found"
    # catalog: pricing (engine/catalog/pricing.py, services/catalog/pricing.py)
    PROMO_CODE_INVALID = "promo_code_invalid"  # details.reason: an engine.catalog.pricing.PromoInvalid
    PROMO_CODE_EXISTS = "promo_code_exists"
    TOO_MANY_PROMO_CODES = "too_many_promo_codes"
    PROMO_USE_RELEASED = "promo_use_released"
    # checkout: the ledger (engine/ledger/flows.py)
    PAYOUT_EXCEEDS_PAYABLE = "payout_exceeds_payable"  # details.available_minor: what may be paid out
    # checkout: orders, payments, tickets (services/orders/)
    ORDER_NOT_FOUND = "order_not_found"
    TICKET_NOT_FOUND = "ticket_not_found"
    WEBHOOK_REFUSED = "webhook_refused"  # details.reason: why the delivery is not believed (engine/payments/)
    PROVIDER_NOT_FOUND = "provider_not_found"
    PAYMENTS_UNAVAILABLE = "payments_unavailable"  # the payment provider did not answer within its bounds
    ORDER_NOT_REFUNDABLE = "order_not_refundable"  # details.status: not paid, or its tickets not issued yet
    TICKET_ALREADY_REFUNDED = "ticket_already_refunded"  # details.ticket_ids: refunded by an earlier refund


class Refused(Exception):
    """A use case or core refused the request: nothing was applied. The gateway answers it by the table."""

    def __init__(self, refusal: Refusal, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.refusal = refusal
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
