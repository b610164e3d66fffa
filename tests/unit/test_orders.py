"""engine/orders.py: every pair (status, event) of the order machine against the contract written out here
independently, the automatic refund of a payment that succeeds after its hold was lost, and (Hypothesis) random
event sequences: a paid order is always fulfilled or refunded, never both, and money is only taken back once."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.orders import (
    FINAL,
    HOLDS_MONEY,
    TRANSITIONS,
    Action,
    Change,
    OrderEvent,
    OrderStatus,
    Reason,
    decide,
    refund_event,
    tickets_refundable,
)

S = OrderStatus
E = OrderEvent
AUTO = (Action.REFUND_PAYMENT,)
GIVE_UP = (Action.RELEASE_HOLD, Action.RELEASE_PROMO_USE, Action.CANCEL_PAYMENT)
# The machine, written out independently of the engine's table: (status, event) -> (status after, actions, reason);
# "same" marks an event that applies and changes nothing; a pair not listed is refused.
SAME = "same"
EXPECTED: dict[tuple[OrderStatus, OrderEvent], object] = {
    (S.PENDING_PAYMENT, E.PAYMENT_SUCCEEDED): (S.PAID, (Action.FULFIL,), None),
    (S.PENDING_PAYMENT, E.PAYMENT_FAILED): (S.FAILED, (Action.RELEASE_HOLD, Action.RELEASE_PROMO_USE),
                                            Reason.PAYMENT_DECLINED),
    (S.PENDING_PAYMENT, E.PAYMENT_WINDOW_EXPIRED): (S.EXPIRED, GIVE_UP, Reason.PAYMENT_WINDOW_EXPIRED),
    (S.PENDING_PAYMENT, E.HOLD_LOST): (S.EXPIRED, (Action.RELEASE_PROMO_USE, Action.CANCEL_PAYMENT), Reason.HOLD_LOST),
    (S.PENDING_PAYMENT, E.EVENT_CANCELLED): (S.CANCELLED, GIVE_UP, Reason.EVENT_CANCELLED),
    (S.PAID, E.PAYMENT_SUCCEEDED): SAME,
    (S.PAID, E.PAYMENT_FAILED): SAME,
    (S.PAID, E.PAYMENT_WINDOW_EXPIRED): SAME,
    (S.PAID, E.HOLD_LOST): (S.REFUNDED, AUTO, Reason.HOLD_LOST),
    (S.PAID, E.REFUND_SOME): (S.PARTIALLY_REFUNDED, (Action.REFUND_TICKETS,), None),
    (S.PAID, E.REFUND_ALL): (S.REFUNDED, (Action.REFUND_REST,), Reason.REFUNDED_ON_REQUEST),
    (S.PAID, E.CHARGEBACK): (S.REFUNDED, (Action.REVOKE_REST,), Reason.CHARGEBACK),
    (S.PAID, E.EVENT_CANCELLED): (S.REFUNDED, (Action.REFUND_REST,), Reason.EVENT_CANCELLED),
    (S.PAID, E.SECOND_PAYMENT_SUCCEEDED): (S.PAID, AUTO, None),
    (S.PARTIALLY_REFUNDED, E.PAYMENT_SUCCEEDED): SAME,
    (S.PARTIALLY_REFUNDED, E.PAYMENT_FAILED): SAME,
    (S.PARTIALLY_REFUNDED, E.PAYMENT_WINDOW_EXPIRED): SAME,
    (S.PARTIALLY_REFUNDED, E.HOLD_LOST): SAME,
    (S.PARTIALLY_REFUNDED, E.REFUND_SOME): (S.PARTIALLY_REFUNDED, (Action.REFUND_TICKETS,), None),
    (S.PARTIALLY_REFUNDED, E.REFUND_ALL): (S.REFUNDED, (Action.REFUND_REST,), Reason.REFUNDED_ON_REQUEST),
    (S.PARTIALLY_REFUNDED, E.CHARGEBACK): (S.REFUNDED, (Action.REVOKE_REST,), Reason.CHARGEBACK),
    (S.PARTIALLY_REFUNDED, E.EVENT_CANCELLED): (S.REFUNDED, (Action.REFUND_REST,), Reason.EVENT_CANCELLED),
    (S.PARTIALLY_REFUNDED, E.SECOND_PAYMENT_SUCCEEDED): (S.PARTIALLY_REFUNDED, AUTO, None),
    (S.REFUNDED, E.PAYMENT_SUCCEEDED): SAME,
    (S.REFUNDED, E.PAYMENT_FAILED): SAME,
    (S.REFUNDED, E.PAYMENT_WINDOW_EXPIRED): SAME,
    (S.REFUNDED, E.HOLD_LOST): SAME,
    (S.REFUNDED, E.CHARGEBACK): SAME,
    (S.REFUNDED, E.EVENT_CANCELLED): SAME,
    (S.REFUNDED, E.SECOND_PAYMENT_SUCCEEDED): (S.REFUNDED, AUTO, None),
    (S.EXPIRED, E.PAYMENT_SUCCEEDED): (S.REFUNDED, AUTO, Reason.PAID_AFTER_EXPIRY),
    (S.FAILED, E.PAYMENT_SUCCEEDED): (S.REFUNDED, AUTO, Reason.PAID_AFTER_FAILURE),
    (S.CANCELLED, E.PAYMENT_SUCCEEDED): (S.REFUNDED, AUTO, Reason.PAID_AFTER_CANCELLATION),
    **{(status, event): SAME for status in (S.EXPIRED, S.FAILED, S.CANCELLED)
       for event in (E.PAYMENT_FAILED, E.PAYMENT_WINDOW_EXPIRED, E.HOLD_LOST, E.EVENT_CANCELLED)},
}
PAIRS = sorted(itertools.product(OrderStatus, OrderEvent))


def test_the_table_has_every_pair_and_the_statuses_are_the_contracts() -> None:
    assert set(TRANSITIONS) == set(PAIRS)
    assert [s.value for s in OrderStatus] == [
        "pending_payment", "paid", "partially_refunded", "refunded", "expired", "failed", "cancelled"]


@pytest.mark.parametrize(("status", "event"), PAIRS)
def test_each_pair(status: OrderStatus, event: OrderEvent) -> None:
    outcome = decide(status, event)
    expected = EXPECTED.get((status, event))
    if expected is None:
        assert outcome.change is Change.REFUSED and outcome.status is status and not outcome.actions
    elif expected == SAME:
        assert outcome.change is Change.UNCHANGED and outcome.status is status and not outcome.actions
    else:
        after, actions, reason = expected  # type: ignore[misc]
        assert (outcome.status, outcome.actions, outcome.reason) == (after, actions, reason)
        assert outcome.change is (Change.MOVED if after is not status else Change.ACTED)


def test_a_payment_after_the_hold_was_lost_is_refunded_and_the_order_says_why() -> None:
    # the hold expired first, then the (slow) payment succeeded
    late = decide(S.EXPIRED, E.PAYMENT_SUCCEEDED)
    assert (late.status, late.actions, late.reason) == (S.REFUNDED, AUTO, Reason.PAID_AFTER_EXPIRY)
    # paid in time, but the confirm found the hold gone (Redis lost it): never paid without tickets
    paid = decide(S.PENDING_PAYMENT, E.PAYMENT_SUCCEEDED)
    lost = decide(paid.status, E.HOLD_LOST)
    assert (lost.status, lost.actions, lost.reason) == (S.REFUNDED, AUTO, Reason.HOLD_LOST)
    # the hold vanished before the payment: the order ends, and a payment still arriving goes back
    gone = decide(S.PENDING_PAYMENT, E.HOLD_LOST)
    assert decide(gone.status, E.PAYMENT_SUCCEEDED).reason is Reason.PAID_AFTER_EXPIRY


def test_final_statuses_only_ever_move_to_refunded_by_a_late_payment() -> None:
    for status, event in PAIRS:
        outcome = decide(status, event)
        if status in FINAL and outcome.change is Change.MOVED:
            assert outcome.status is S.REFUNDED and outcome.actions == AUTO


def test_refund_event() -> None:
    assert refund_event(3, 1) is E.REFUND_SOME
    assert refund_event(3, 3) is E.REFUND_ALL
    for bad in ((3, 0), (3, 4), (0, 1)):
        with pytest.raises(ValueError):
            refund_event(*bad)


@settings(max_examples=500, deadline=None)
@given(events=st.lists(st.sampled_from(list(OrderEvent)), max_size=12))
def test_any_sequence_pays_once_and_gives_money_back_at_most_once(events: list[OrderEvent]) -> None:
    """Follow one order from checkout through any events: each success either fulfils (once) or is refunded;
    a fulfilled order's money goes back at most once in full; an order that gave its hold up is never fulfilled;
    every refused event leaves the order as it was."""
    status = S.PENDING_PAYMENT
    captured = fulfilled = returned_whole = 0
    for event in events:
        outcome = decide(status, event)
        if outcome.change is Change.REFUSED:
            assert outcome.status is status
            continue
        if event in (E.PAYMENT_SUCCEEDED, E.SECOND_PAYMENT_SUCCEEDED) and outcome.change is not Change.UNCHANGED:
            captured += 1
        fulfilled += outcome.actions.count(Action.FULFIL)
        returned_whole += sum(outcome.actions.count(a) for a in (Action.REFUND_PAYMENT, Action.REFUND_REST,
                                                                 Action.REVOKE_REST))
        if Action.FULFIL in outcome.actions:
            assert status is S.PENDING_PAYMENT  # a hold given up is never confirmed
        status = outcome.status
    assert fulfilled <= 1
    # every capture is kept by at most one fulfilled order; every other capture went back
    assert returned_whole >= captured - fulfilled
    if status is S.REFUNDED:
        assert returned_whole >= captured or captured == 0
    if status in (S.PAID, S.PARTIALLY_REFUNDED):
        assert fulfilled == 1


def test_the_payment_window_stays_inside_the_hold_less_the_grace() -> None:
    from engine.orders import fulfil_grace_s, payment_window_s, window_end_s

    assert window_end_s(1_000.0, 1_000.0 + payment_window_s + fulfil_grace_s) == 1_000.0 + payment_window_s
    assert window_end_s(1_000.0, 1_000.0 + 100 + fulfil_grace_s) == 1_100.0  # a hold kept less long: its end
    assert window_end_s(1_000.0, 1_000.0 + fulfil_grace_s) is None  # no time left to pay


def test_tickets_are_refundable_only_when_money_is_held_and_they_exist() -> None:
    for status in OrderStatus:
        assert tickets_refundable(status, True) == (status in HOLDS_MONEY)
        assert not tickets_refundable(status, False)
