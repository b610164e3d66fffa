"""engine/payments/reconcile.py: what the provider's answer means for an attempt stuck pending (every provider
status against a table written out here), the event id that makes a reconciliation apply once, and the bounds."""

from __future__ import annotations

import pytest

from engine.orders import Change, OrderEvent, OrderStatus, decide
from engine.payments import reconcile
from engine.payments.provider import Intent, IntentStatus
from engine.payments.reconcile import ReconcilePolicy, reconcile_event_id, reconcile_event_type, settling_event

S = IntentStatus
SUCCEEDED, FAILED = OrderEvent.PAYMENT_SUCCEEDED, OrderEvent.PAYMENT_FAILED
EXPECTED: dict[IntentStatus, OrderEvent | None] = {
    S.REQUIRES_PAYMENT: None,  # the buyer has not paid (yet)
    S.PROCESSING: None,  # the outcome is not known yet
    S.AUTHORIZED: SUCCEEDED,
    S.CAPTURED: SUCCEEDED,
    S.REFUNDED: SUCCEEDED,
    S.FAILED: FAILED,
    S.CANCELED: FAILED,  # it can never take money: the order gives its hold back now
}


def intent(status: IntentStatus, intent_id: str = "pi_0123456789abcdef01234567") -> Intent:
    taken = status in (S.CAPTURED, S.REFUNDED)
    return Intent(
        intent_id=intent_id, status=status, amount_minor=30_000, currency="ZAR",
        captured_minor=30_000 if taken else 0, refunded_minor=30_000 if status is S.REFUNDED else 0,
        confirm_url="http://sim/v1/intents/x/confirm", metadata={},
        failure_code="card_declined" if status is S.FAILED else None, created_at_s=1,
    )  # fmt: skip


def test_every_provider_status_is_decided() -> None:
    assert set(EXPECTED) == set(IntentStatus)


@pytest.mark.parametrize("attempt_status", sorted(reconcile.UNSETTLED))
@pytest.mark.parametrize("status", list(IntentStatus))
def test_an_unsettled_attempt_takes_what_the_provider_says(attempt_status: str, status: IntentStatus) -> None:
    assert settling_event(attempt_status, intent(status)) is EXPECTED[status]


@pytest.mark.parametrize("attempt_status", ["creating", "failed", "canceled", "captured", "refunded"])
@pytest.mark.parametrize("status", list(IntentStatus))
def test_an_attempt_with_an_outcome_or_no_intent_is_left_alone(attempt_status: str, status: IntentStatus) -> None:
    assert settling_event(attempt_status, intent(status)) is None


def test_the_unsettled_statuses_are_those_before_an_outcome() -> None:
    unsettled = reconcile.UNSETTLED
    assert unsettled == {S.REQUIRES_PAYMENT, S.PROCESSING, S.AUTHORIZED}


@pytest.mark.parametrize("status", [s for s, event in EXPECTED.items() if event is not None])
def test_a_settling_event_moves_a_pending_order_and_is_a_replay_once_it_has(status: IntentStatus) -> None:
    event = settling_event(S.REQUIRES_PAYMENT, intent(status))
    assert event is not None
    moved = decide(OrderStatus.PENDING_PAYMENT, event)
    assert moved.change is Change.MOVED
    # the real webhook arriving after the reconciler: the same event again changes nothing
    assert decide(moved.status, event).change is Change.UNCHANGED


def test_one_event_id_per_intent_and_status() -> None:
    assert reconcile_event_id(intent(S.AUTHORIZED, "pi_a")) == "reconcile:pi_a:authorized"
    assert reconcile_event_id(intent(S.AUTHORIZED, "pi_a")) == reconcile_event_id(intent(S.AUTHORIZED, "pi_a"))
    assert reconcile_event_id(intent(S.FAILED, "pi_a")) != reconcile_event_id(intent(S.AUTHORIZED, "pi_a"))
    assert reconcile_event_id(intent(S.AUTHORIZED, "pi_b")) != reconcile_event_id(intent(S.AUTHORIZED, "pi_a"))
    assert reconcile_event_type(intent(S.CANCELED)) == "reconcile.canceled"


def test_the_default_bounds() -> None:
    policy = ReconcilePolicy()
    assert (policy.after_s, policy.per_sweep_max, policy.every_s) == (20.0, 100, 5.0)
    assert policy.asks_in_flight_max == reconcile.reconcile_asks_in_flight_max


@pytest.mark.parametrize("bad", [{"after_s": -1.0}, {"every_s": 0.0}, {"per_sweep_max": 0}, {"asks_in_flight_max": 0}])
def test_bounds_that_would_not_bound_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReconcilePolicy(**bad)  # type: ignore[arg-type]
