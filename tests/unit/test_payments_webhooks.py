"""Reading a provider's webhook (engine/payments/webhooks.py, wire.py): a signed, well-formed event is read into
values; a forged, stale, oversized or malformed one is refused with a reason and never half-read; an intent
whose figures do not add up (refunded more than captured, captured without the status) is malformed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.payments.provider import (
    CreateIntent,
    EventType,
    Intent,
    IntentStatus,
    Refund,
    RefundRequest,
    WebhookEvent,
)
from engine.payments.signature import SignatureRefusal, sign, signature_age_s_max
from engine.payments.webhooks import (
    BODY_MALFORMED,
    BODY_TOO_LARGE,
    WebhookRefused,
    read_webhook,
    webhook_body_bytes_max,
)
from engine.payments.wire import MalformedProviderData, event_from_json, event_to_json, intent_from_json

SECRET = b"whsec_unit"
NOW = 1_790_000_000


def intent_json(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "pi_1",
        "status": "captured",
        "amount_minor": 1_000,
        "currency": "ZAR",
        "captured_minor": 1_000,
        "refunded_minor": 0,
        "confirm_url": "http://sim/v1/intents/pi_1/confirm",
        "metadata": {"order": "ord_1"},
        "failure_code": None,
        "created_at": NOW - 10,
    }
    return {**base, **changes}


def event_json(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "pevt_1",
        "type": "payment.captured",
        "created_at": NOW,
        "data": {"intent": intent_json()},
    }
    return {**base, **changes}


def signed(body: bytes, at_s: int = NOW) -> str:
    return sign(SECRET, body, at_s)


def test_a_signed_event_is_read_into_values() -> None:
    body = json.dumps(event_json()).encode()
    event = read_webhook(SECRET, body, signed(body), now_s=NOW)
    assert event.event_id == "pevt_1" and event.type is EventType.CAPTURED
    assert event.intent.status is IntentStatus.CAPTURED and event.intent.captured_minor == 1_000
    assert event.intent.metadata == {"order": "ord_1"} and event.refund is None


def test_a_refund_event_carries_its_refund() -> None:
    refund = {
        "id": "re_1",
        "intent_id": "pi_1",
        "amount_minor": 400,
        "currency": "ZAR",
        "reason": "",
        "created_at": NOW,
    }
    raw = event_json(type="payment.refunded", data={"intent": intent_json(refunded_minor=400), "refund": refund})
    body = json.dumps(raw).encode()
    event = read_webhook(SECRET, body, signed(body), now_s=NOW)
    assert event.refund == Refund("re_1", "pi_1", 400, "ZAR", "", NOW)


def test_values_survive_the_round_trip() -> None:
    event = event_from_json(event_json())
    assert event_from_json(json.loads(json.dumps(event_to_json(event)))) == event


def test_the_signature_is_checked_before_the_body_is_read() -> None:
    body = b"not json at all"
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(SECRET, body, signed(b"something else"), now_s=NOW)
    assert refused.value.reason == SignatureRefusal.MISMATCH.value
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(SECRET, body, signed(body), now_s=NOW)
    assert refused.value.reason == BODY_MALFORMED


def test_a_stale_delivery_is_refused() -> None:
    body = json.dumps(event_json()).encode()
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(SECRET, body, signed(body, NOW - signature_age_s_max - 1), now_s=NOW)
    assert refused.value.reason == SignatureRefusal.STALE.value


def test_an_oversized_body_is_refused_before_any_work() -> None:
    body = b" " * (webhook_body_bytes_max + 1)
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(SECRET, body, signed(body), now_s=NOW)
    assert refused.value.reason == BODY_TOO_LARGE


@pytest.mark.parametrize(
    "raw",
    [
        event_json(type="payment.exploded"),
        event_json(id=""),
        event_json(id=7),
        event_json(created_at="now"),
        event_json(data=None),
        event_json(data={"intent": intent_json(status="mostly_paid")}),
        event_json(data={"intent": intent_json(amount_minor=True)}),
        event_json(data={"intent": intent_json(amount_minor=10.5)}),
        event_json(data={"intent": intent_json(amount_minor=0)}),
        event_json(data={"intent": intent_json(currency="zar")}),
        event_json(data={"intent": intent_json(refunded_minor=1_001)}),  # refunded more than captured
        event_json(data={"intent": intent_json(captured_minor=2_000)}),  # captured more than the amount
        event_json(data={"intent": intent_json(status="authorized")}),  # captured money while only authorized
        event_json(data={"intent": intent_json(refunded_minor=1_000)}),  # all refunded yet "captured"
        event_json(data={"intent": intent_json(status="failed", captured_minor=0)}),  # failed without a code
        event_json(data={"intent": intent_json(metadata=[1])}),
        event_json(type="payment.refunded"),  # a refund event without its refund
        [1, 2],
        "a string",
    ],
)
def test_malformed_events_are_refused(raw: Any) -> None:
    body = json.dumps(raw).encode()
    with pytest.raises(WebhookRefused) as refused:
        read_webhook(SECRET, body, signed(body), now_s=NOW)
    assert refused.value.reason == BODY_MALFORMED


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)


@given(raw=json_values)
def test_any_json_is_read_or_refused_never_crashes(raw: Any) -> None:
    body = json.dumps(raw).encode()
    try:
        event = read_webhook(SECRET, body, signed(body), now_s=NOW)
    except WebhookRefused as refused:
        assert refused.reason == BODY_MALFORMED
    else:
        assert isinstance(event, WebhookEvent)


@given(field=st.sampled_from(sorted(intent_json())), value=json_values)
def test_any_single_bad_intent_field_is_refused_or_read_consistently(field: str, value: Any) -> None:
    try:
        intent = intent_from_json(intent_json(**{field: value}))
    except MalformedProviderData:
        return
    assert isinstance(intent, Intent)
    assert 0 <= intent.refunded_minor <= intent.captured_minor <= intent.amount_minor


def test_requests_refuse_what_no_provider_should_be_sent() -> None:
    with pytest.raises(ValueError):
        CreateIntent(amount_minor=0, currency="ZAR", idempotency_key="k")
    with pytest.raises(ValueError):
        CreateIntent(amount_minor=100, currency="ZAR", idempotency_key="")
    with pytest.raises(ValueError):
        CreateIntent(amount_minor=100, currency="ZAR", idempotency_key="k", metadata={str(i): "" for i in range(21)})
    with pytest.raises(ValueError):
        RefundRequest(intent_id="pi_1", amount_minor=-1, currency="ZAR", idempotency_key="k")
    with pytest.raises(ValueError):
        WebhookEvent("pevt_1", EventType.REFUNDED, NOW, intent_from_json(intent_json()), refund=None)
