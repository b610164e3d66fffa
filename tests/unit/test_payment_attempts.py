"""An attempt's status only moves forward whatever order the provider's deliveries come in, and the webhook types
that move an order are exactly the outcomes and the chargeback (engine/payments/attempts.py)."""

from __future__ import annotations

from itertools import permutations

from hypothesis import given
from hypothesis import strategies as st

from engine.orders import OrderEvent
from engine.payments.attempts import CREATING, ENDED, may_replace, order_event_of
from engine.payments.provider import EventType, IntentStatus

FORWARD = [IntentStatus.REQUIRES_PAYMENT, IntentStatus.PROCESSING, IntentStatus.AUTHORIZED, IntentStatus.CAPTURED,
           IntentStatus.REFUNDED]


def test_the_order_moving_webhooks() -> None:
    assert {t: order_event_of(t) for t in EventType if order_event_of(t) is not None} == {
        EventType.AUTHORIZED: OrderEvent.PAYMENT_SUCCEEDED, EventType.FAILED: OrderEvent.PAYMENT_FAILED,
        EventType.CHARGED_BACK: OrderEvent.CHARGEBACK,
    }


def test_along_the_forward_path_only_later_steps_replace() -> None:
    for i, recorded in enumerate(FORWARD):
        for j, reported in enumerate(FORWARD):
            assert may_replace(recorded, reported) == (j >= i), (recorded, reported)
    assert all(may_replace(CREATING, status) for status in IntentStatus)


def test_an_ended_attempt_never_reopens() -> None:
    for recorded in ENDED:
        for reported in IntentStatus:
            if reported not in ENDED:
                assert not may_replace(recorded, reported), (recorded, reported)


@given(st.permutations(FORWARD))
def test_deliveries_in_any_order_leave_the_latest_step(deliveries: list[IntentStatus]) -> None:
    status: str = CREATING
    for reported in deliveries:
        if may_replace(status, reported):
            status = reported
    assert status == IntentStatus.REFUNDED


def test_every_order_of_the_outcomes_settles_the_same() -> None:
    for deliveries in permutations([IntentStatus.AUTHORIZED, IntentStatus.CAPTURED]):
        status: str = IntentStatus.PROCESSING
        for reported in deliveries:
            if may_replace(status, reported):
                status = reported
        assert status == IntentStatus.CAPTURED
