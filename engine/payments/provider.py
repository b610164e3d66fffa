"""What the platform and a payment provider exchange: plain values, no I/O.

An intent is one attempt to take one amount from one buyer. Its life, as the provider tells it:

    requires_payment --confirm--> processing --(webhook)--> authorized --capture--> captured --refund*--> refunded
                                       \\--(webhook)--> failed          \\--cancel--> canceled

`confirm` is the buyer's (a front end posts the card to `confirm_url`); the platform creates, captures, refunds,
cancels and asks for the status. Outcomes reach the platform by signed webhook (engine/payments/webhooks.py);
`get_intent` is for the reconciler of attempts that stayed pending. Create, capture, cancel and refund carry an
idempotency key so that a retried call (a lost answer, a restarted process) never charges twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

idempotency_key_chars_max = 200
metadata_entries_max = 20
metadata_key_chars_max = 40
metadata_value_chars_max = 500
refund_reason_chars_max = 500
provider_amount_minor_max = 10**12
_CURRENCY = re.compile(r"[A-Z]{3}")


class IntentStatus(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"  # created; waiting for the buyer's card at confirm_url
    PROCESSING = "processing"  # card submitted; the outcome follows by webhook
    AUTHORIZED = "authorized"  # the card was accepted; capture takes the money
    CAPTURED = "captured"  # money taken; refunds may return some or all of it
    REFUNDED = "refunded"  # everything captured was returned
    FAILED = "failed"  # the card was refused; failure_code says why
    CANCELED = "canceled"  # voided before capture: nothing was taken


class EventType(StrEnum):
    AUTHORIZED = "payment.authorized"
    FAILED = "payment.failed"
    CAPTURED = "payment.captured"
    REFUNDED = "payment.refunded"
    CANCELED = "payment.canceled"
    CHARGED_BACK = "payment.charged_back"  # the buyer's bank took the payment back (a dispute lost)


def check_money(amount_minor: int, currency: str) -> None:
    if type(amount_minor) is not int or not 0 < amount_minor <= provider_amount_minor_max:
        raise ValueError(f"amounts are positive integers of minor units up to {provider_amount_minor_max}")
    if _CURRENCY.fullmatch(currency) is None:
        raise ValueError("currencies are three uppercase letters (ISO 4217)")


def check_idempotency_key(key: str) -> None:
    if not 0 < len(key) <= idempotency_key_chars_max or not key.isascii() or not key.isprintable():
        raise ValueError(f"idempotency keys are 1..{idempotency_key_chars_max} printable ASCII characters")


def check_metadata(metadata: Mapping[str, str]) -> None:
    if len(metadata) > metadata_entries_max:
        raise ValueError(f"at most {metadata_entries_max} metadata entries")
    for key, value in metadata.items():
        if not (isinstance(key, str) and isinstance(value, str)):
            raise ValueError("metadata maps strings to strings")
        if not 0 < len(key) <= metadata_key_chars_max or len(value) > metadata_value_chars_max:
            raise ValueError("metadata key or value too long")


@dataclass(frozen=True, slots=True)
class CreateIntent:
    amount_minor: int
    currency: str
    idempotency_key: str  # derived from the platform's payment attempt, so a restart reuses it
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_money(self.amount_minor, self.currency)
        check_idempotency_key(self.idempotency_key)
        check_metadata(self.metadata)


@dataclass(frozen=True, slots=True)
class RefundRequest:
    intent_id: str
    amount_minor: int
    currency: str  # must be the intent's: a refund in another currency is refused
    idempotency_key: str
    reason: str = ""

    def __post_init__(self) -> None:
        check_money(self.amount_minor, self.currency)
        check_idempotency_key(self.idempotency_key)
        if len(self.reason) > refund_reason_chars_max:
            raise ValueError(f"refund reasons are at most {refund_reason_chars_max} characters")


@dataclass(frozen=True, slots=True)
class Intent:
    intent_id: str
    status: IntentStatus
    amount_minor: int
    currency: str
    captured_minor: int
    refunded_minor: int
    confirm_url: str
    metadata: Mapping[str, str]
    failure_code: str | None
    created_at_s: int

    def __post_init__(self) -> None:
        check_money(self.amount_minor, self.currency)
        # what a provider says must make sense before anyone books it: refused as malformed, not trusted
        check_metadata(self.metadata)
        taken = self.status in (IntentStatus.CAPTURED, IntentStatus.REFUNDED)
        if not 0 <= self.refunded_minor <= self.captured_minor <= self.amount_minor:
            raise ValueError("an intent refunds at most what it captured and captures at most its amount")
        if (self.captured_minor > 0) != taken:
            raise ValueError("an intent has captured money exactly when it is captured or refunded")
        if (self.status is IntentStatus.REFUNDED) != (0 < self.captured_minor == self.refunded_minor):
            raise ValueError("an intent is refunded exactly when everything captured was returned")
        if (self.failure_code is not None) != (self.status is IntentStatus.FAILED):
            raise ValueError("an intent has a failure code exactly when it failed")

    @property
    def refundable_minor(self) -> int:
        return self.captured_minor - self.refunded_minor


@dataclass(frozen=True, slots=True)
class Refund:
    refund_id: str
    intent_id: str
    amount_minor: int
    currency: str
    reason: str
    created_at_s: int

    def __post_init__(self) -> None:
        check_money(self.amount_minor, self.currency)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One outcome as the provider reported it. ``event_id`` is stable across redeliveries: the receiver's key
    for "already applied"."""

    event_id: str
    type: EventType
    created_at_s: int
    intent: Intent  # the intent as it was when the event happened
    refund: Refund | None = None  # set for payment.refunded

    def __post_init__(self) -> None:
        if (self.refund is not None) != (self.type is EventType.REFUNDED):
            raise ValueError("a refund comes with payment.refunded and only with it")
        if self.refund is not None and self.refund.intent_id != self.intent.intent_id:
            raise ValueError("a refund event names the refund's own intent")


class ProviderError(Exception):
    """A provider call did not succeed."""


class ProviderUnavailable(ProviderError):
    """No answer within the retry bounds (timeouts, refused connections, 5xx). The call may or may not have
    taken effect: retry it with the same idempotency key, or ask get_intent."""


class ProviderRefused(ProviderError):
    """The provider answered and said no (4xx): retrying the same call changes nothing."""

    def __init__(self, status: int, code: str, message: str = "") -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status = status
        self.code = code
