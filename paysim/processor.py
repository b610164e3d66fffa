"""The simulated processor's books: intents, refunds and the counts an audit needs, in memory, synchronous.

Each method is one atomic step of the card processor (the HTTP shell calls it between awaits, so no two requests
interleave inside it) and returns the events it caused; the shell delivers them. Invariants are asserted on
every change: an intent captures at most once and at most its amount, and refunds never exceed what was captured.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from paysim.cards import CardOutcome

intents_max = 1_000_000  # the simulator refuses new intents beyond this rather than grow without bound
refunds_per_intent_max = 100
amount_minor_max = 10**12
metadata_entries_max = 20
metadata_key_chars_max = 40
metadata_value_chars_max = 500
reason_chars_max = 500
_CURRENCY = re.compile(r"[A-Z]{3}")

REQUIRES_PAYMENT = "requires_payment"
PROCESSING = "processing"
AUTHORIZED = "authorized"
CAPTURED = "captured"
REFUNDED = "refunded"
FAILED = "failed"
CANCELED = "canceled"


class SimRefused(Exception):
    """A 4xx (or the simulator's own 503) with a code, like the provider's API error body."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class RefundRecord:
    refund_id: str
    amount_minor: int
    reason: str
    created_at_s: int


@dataclass
class IntentRecord:
    intent_id: str
    amount_minor: int
    currency: str
    metadata: dict[str, str]
    created_at_s: int
    status: str = REQUIRES_PAYMENT
    captured_minor: int = 0
    refunds: list[RefundRecord] = field(default_factory=list)
    failure_code: str | None = None
    outcome_deliveries: int = 1
    charged_back_minor: int = 0  # what the buyer's bank took back (a dispute lost): nothing more can be refunded

    @property
    def refunded_minor(self) -> int:
        return sum(refund.amount_minor for refund in self.refunds)

    def check(self) -> None:
        assert 0 <= self.refunded_minor <= self.captured_minor <= self.amount_minor, self
        assert 0 <= self.charged_back_minor <= self.captured_minor - self.refunded_minor, self
        assert (self.captured_minor > 0) == (self.status in (CAPTURED, REFUNDED)), self
        assert (self.status == REFUNDED) == (0 < self.captured_minor == self.refunded_minor), self
        assert len(self.refunds) <= refunds_per_intent_max, self


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event to deliver ``deliveries`` times, all with the same id."""

    body: dict[str, Any]
    deliveries: int = 1


@dataclass
class Stats:
    intents: int = 0
    confirms: int = 0
    authorizations: int = 0
    failures: int = 0
    captures: int = 0
    cancels: int = 0
    refunds: int = 0
    chargebacks: int = 0
    captured_minor: dict[str, int] = field(default_factory=dict)
    refunded_minor: dict[str, int] = field(default_factory=dict)


class Processor:
    def __init__(self, public_url: str, clock: Callable[[], float], new_token: Callable[[], str] | None = None) -> None:
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._new_token = new_token or (lambda: secrets.token_hex(12))
        self._intents: dict[str, IntentRecord] = {}
        self.stats = Stats()

    # -- the platform's calls ------------------------------------------------------------------------------

    def create(self, amount_minor: Any, currency: Any, metadata: Any) -> dict[str, Any]:
        _check_money(amount_minor, currency)
        _check_metadata(metadata)
        if len(self._intents) >= intents_max:
            raise SimRefused(503, "simulator_full", f"the simulator holds at most {intents_max} intents")
        intent = IntentRecord(
            intent_id="pi_" + self._new_token(),
            amount_minor=amount_minor,
            currency=currency,
            metadata=dict(metadata),
            created_at_s=self._now(),
        )
        self._intents[intent.intent_id] = intent
        self.stats.intents += 1
        return self.intent_json(intent)

    def get(self, intent_id: str) -> dict[str, Any]:
        return self.intent_json(self._intent(intent_id))

    def capture(self, intent_id: str) -> tuple[dict[str, Any], list[Emitted]]:
        intent = self._intent(intent_id)
        if intent.status in (CAPTURED, REFUNDED):
            raise SimRefused(409, "already_captured", "this intent was captured already")
        if intent.status != AUTHORIZED:
            raise SimRefused(409, "not_capturable", f"an intent that is {intent.status} cannot be captured")
        intent.status = CAPTURED
        intent.captured_minor = intent.amount_minor
        intent.check()
        self.stats.captures += 1
        _add(self.stats.captured_minor, intent.currency, intent.amount_minor)
        return self.intent_json(intent), [self._event("payment.captured", intent)]

    def cancel(self, intent_id: str) -> tuple[dict[str, Any], list[Emitted]]:
        intent = self._intent(intent_id)
        if intent.status not in (REQUIRES_PAYMENT, AUTHORIZED):
            raise SimRefused(409, "not_cancelable", f"an intent that is {intent.status} cannot be canceled")
        intent.status = CANCELED
        intent.check()
        self.stats.cancels += 1
        return self.intent_json(intent), [self._event("payment.canceled", intent)]

    def refund(
        self, intent_id: str, amount_minor: Any, currency: Any, reason: Any
    ) -> tuple[dict[str, Any], list[Emitted]]:
        intent = self._intent(intent_id)
        _check_money(amount_minor, currency)
        if not isinstance(reason, str) or len(reason) > reason_chars_max:
            raise SimRefused(422, "invalid_request", f"'reason' is a string of at most {reason_chars_max} characters")
        if currency != intent.currency:
            raise SimRefused(422, "currency_mismatch", f"this intent is in {intent.currency}")
        if intent.status not in (CAPTURED, REFUNDED):
            raise SimRefused(409, "not_refundable", f"an intent that is {intent.status} has nothing to refund")
        if intent.charged_back_minor:
            raise SimRefused(409, "charged_back", "the buyer's bank took this payment back: nothing to refund")
        refundable = intent.captured_minor - intent.refunded_minor
        if amount_minor > refundable:
            raise SimRefused(422, "refund_exceeds_captured", f"at most {refundable} can still be refunded")
        if len(intent.refunds) >= refunds_per_intent_max:
            raise SimRefused(409, "too_many_refunds", f"at most {refunds_per_intent_max} refunds per intent")
        refund = RefundRecord("re_" + self._new_token(), amount_minor, reason, self._now())
        intent.refunds.append(refund)
        if intent.refunded_minor == intent.captured_minor:
            intent.status = REFUNDED
        intent.check()
        self.stats.refunds += 1
        _add(self.stats.refunded_minor, intent.currency, amount_minor)
        refund_json = self.refund_json(intent, refund)
        return refund_json, [self._event("payment.refunded", intent, refund=refund_json)]

    # -- the buyer's bank ----------------------------------------------------------------------------------

    def chargeback(self, intent_id: str) -> tuple[dict[str, Any], list[Emitted]]:
        """The buyer disputed the payment and the bank took back what was not refunded (a test's switch)."""
        intent = self._intent(intent_id)
        left = intent.captured_minor - intent.refunded_minor
        if intent.status != CAPTURED or intent.charged_back_minor or left == 0:
            raise SimRefused(409, "not_disputable", f"an intent that is {intent.status} cannot be charged back")
        intent.charged_back_minor = left
        intent.check()
        self.stats.chargebacks += 1
        return self.intent_json(intent), [self._event("payment.charged_back", intent)]

    # -- the buyer's call, and the processor's own later steps ---------------------------------------------

    def confirm(self, intent_id: str, outcome: CardOutcome) -> tuple[dict[str, Any], list[Emitted]]:
        intent = self._intent(intent_id)
        if intent.status != REQUIRES_PAYMENT:
            raise SimRefused(409, "already_confirmed", f"this intent is {intent.status}")
        self.stats.confirms += 1
        intent.status = PROCESSING
        intent.failure_code = outcome.failure_code
        intent.outcome_deliveries = outcome.outcome_deliveries
        if outcome.settle_after_s > 0:
            intent.check()
            return self.intent_json(intent), []
        return self.settle(intent_id)

    def settle(self, intent_id: str) -> tuple[dict[str, Any], list[Emitted]]:
        """A processing intent's outcome is decided: authorized, or failed with the card's failure code."""
        intent = self._intent(intent_id)
        assert intent.status == PROCESSING, intent
        if intent.failure_code is None:
            intent.status = AUTHORIZED
            self.stats.authorizations += 1
            kind = "payment.authorized"
        else:
            intent.status = FAILED
            self.stats.failures += 1
            kind = "payment.failed"
        intent.check()
        return self.intent_json(intent), [self._event(kind, intent, deliveries=intent.outcome_deliveries)]

    # -- what an audit reads -------------------------------------------------------------------------------

    def audit(self) -> dict[str, Any]:
        """The counters, and the same figures recomputed from the intents themselves (they must agree)."""
        captured = [i for i in self._intents.values() if i.status in (CAPTURED, REFUNDED)]
        by_status: dict[str, int] = {}
        for intent in self._intents.values():
            by_status[intent.status] = by_status.get(intent.status, 0) + 1
        return {
            "intents": self.stats.intents,
            "confirms": self.stats.confirms,
            "authorizations": self.stats.authorizations,
            "failures": self.stats.failures,
            "captures": self.stats.captures,
            "captured_intents": len(captured),
            "cancels": self.stats.cancels,
            "refunds": self.stats.refunds,
            "chargebacks": self.stats.chargebacks,
            "captured_minor": dict(self.stats.captured_minor),
            "refunded_minor": dict(self.stats.refunded_minor),
            "intents_by_status": by_status,
        }

    def intent_json(self, intent: IntentRecord) -> dict[str, Any]:
        return {
            "id": intent.intent_id,
            "status": intent.status,
            "amount_minor": intent.amount_minor,
            "currency": intent.currency,
            "captured_minor": intent.captured_minor,
            "refunded_minor": intent.refunded_minor,
            "confirm_url": f"{self._public_url}/v1/intents/{intent.intent_id}/confirm",
            "metadata": dict(intent.metadata),
            # a failure code is told once the outcome is known, not while the card is still processing
            "failure_code": intent.failure_code if intent.status == FAILED else None,
            "created_at": intent.created_at_s,
        }

    def refund_json(self, intent: IntentRecord, refund: RefundRecord) -> dict[str, Any]:
        return {
            "id": refund.refund_id,
            "intent_id": intent.intent_id,
            "amount_minor": refund.amount_minor,
            "currency": intent.currency,
            "reason": refund.reason,
            "created_at": refund.created_at_s,
        }

    def _event(
        self, kind: str, intent: IntentRecord, *, refund: dict[str, Any] | None = None, deliveries: int = 1
    ) -> Emitted:
        data: dict[str, Any] = {"intent": self.intent_json(intent)}
        if refund is not None:
            data["refund"] = refund
        body = {"id": "pevt_" + self._new_token(), "type": kind, "created_at": self._now(), "data": data}
        return Emitted(body=body, deliveries=deliveries)

    def _intent(self, intent_id: str) -> IntentRecord:
        intent = self._intents.get(intent_id)
        if intent is None:
            raise SimRefused(404, "intent_not_found", "no such intent")
        return intent

    def _now(self) -> int:
        return int(self._clock())


def _add(totals: dict[str, int], currency: str, amount_minor: int) -> None:
    totals[currency] = totals.get(currency, 0) + amount_minor


def _check_money(amount_minor: Any, currency: Any) -> None:
    if type(amount_minor) is not int or not 0 < amount_minor <= amount_minor_max:
        raise SimRefused(422, "invalid_amount", f"'amount_minor' is an integer from 1 to {amount_minor_max}")
    if not isinstance(currency, str) or _CURRENCY.fullmatch(currency) is None:
        raise SimRefused(422, "invalid_currency", "'currency' is three uppercase letters")


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, Mapping) or len(metadata) > metadata_entries_max:
        raise SimRefused(422, "invalid_metadata", f"'metadata' is an object of at most {metadata_entries_max} entries")
    for key, value in metadata.items():
        if not isinstance(value, str) or not 0 < len(key) <= metadata_key_chars_max:
            raise SimRefused(422, "invalid_metadata", "metadata maps short names to strings")
        if len(value) > metadata_value_chars_max:
            raise SimRefused(422, "invalid_metadata", f"metadata values are at most {metadata_value_chars_max} chars")
