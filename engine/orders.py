"""An order's life as a state machine: its statuses, the events that move it, and what the shell must do after
each move. Pure: the shell records the event's facts (a webhook, the payment window's timer, the inventory's
confirm, a refund request, an event's cancellation), calls ``decide`` and applies the outcome in one unit of work.

``TRANSITIONS`` is exhaustive: every pair (status, event) says where the order goes (itself: unchanged, a replay
or a late signal) and what to do, or that the event does not apply (refused: ``invalid_transition``).

**A payment that succeeds after the hold was lost is refunded automatically, and the order says why.** Two ways
it happens, both decided here:
- the payment succeeds on an order that already gave its hold up (expired, failed, cancelled): the order becomes
  ``refunded`` with the reason (``paid_after_expiry`` ...), and the shell refunds the payment in full;
- the payment succeeds on a pending order, which becomes ``paid`` and owes its fulfilment (confirm the hold, issue
  tickets); the confirm then finds the hold gone (expired in Redis, released, lost): ``hold_lost`` makes the order
  ``refunded`` with reason ``hold_lost``, and the shell refunds the payment. Never a paid order without tickets:
  a paid order either gets its tickets or its money back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from engine import limits
from engine.refusals import Refusal

payment_window_s = 600  # how long a buyer has to pay once the order exists
fulfil_grace_s = 60  # the hold outlives the window by this much: a payment at the window's end still confirms
hold_kept_s = payment_window_s + fulfil_grace_s  # what checkout extends the hold by
assert hold_kept_s <= limits.payment_window_s_max
# a confirm refused for one of these can never succeed for the order: its hold is lost (HOLD_LOST)
HOLD_LOST_REFUSALS: frozenset[Refusal] = frozenset(
    {Refusal.HOLD_NOT_FOUND, Refusal.HOLD_EXPIRED, Refusal.INVALID_TRANSITION, Refusal.NOT_ON_SALE}
)


def window_end_s(now_s: float, hold_expires_at_s: float) -> float | None:
    """When an order made now must be paid by: the window, inside the hold's life less the grace; None when the
    hold ends too soon for any payment window."""
    end = min(now_s + payment_window_s, hold_expires_at_s - fulfil_grace_s)
    return end if end > now_s else None


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"  # created at checkout: the hold is kept for the payment window
    PAID = "paid"  # the payment succeeded: its tickets are owed (the confirm, then the tickets)
    PARTIALLY_REFUNDED = "partially_refunded"  # some of its tickets were refunded, some are still valid
    REFUNDED = "refunded"  # all of its money went back (refund, chargeback, cancelled event, a hold lost)
    EXPIRED = "expired"  # the payment window passed unpaid: the hold was released
    FAILED = "failed"  # the payment failed (declined, insufficient funds): the hold was released
    CANCELLED = "cancelled"  # its event was cancelled before it was paid: the hold was released


class OrderEvent(StrEnum):
    PAYMENT_SUCCEEDED = "payment_succeeded"  # the provider captured the order's payment
    PAYMENT_FAILED = "payment_failed"  # the provider declined it
    PAYMENT_WINDOW_EXPIRED = "payment_window_expired"  # the order's timer: unpaid at expires_at
    HOLD_LOST = "hold_lost"  # fulfilment's confirm found the hold gone (expired, released, Redis lost it)
    REFUND_SOME = "refund_some"  # a refund of some of the order's tickets, others stay valid
    REFUND_ALL = "refund_all"  # a refund of every ticket left
    CHARGEBACK = "chargeback"  # the buyer's bank took the payment back
    EVENT_CANCELLED = "event_cancelled"  # the order's event was cancelled
    # another of the order's payment attempts succeeded after one already had (the buyer paid twice): the shell
    # tells it from a replay by the payment's id
    SECOND_PAYMENT_SUCCEEDED = "second_payment_succeeded"


class Action(StrEnum):
    """What the shell does after a move, in the move's unit of work (as outbox rows where it leaves Postgres)."""

    FULFIL = "fulfil"  # confirm the hold into a sale, then issue the tickets (exactly once)
    RELEASE_HOLD = "release_hold"
    RELEASE_PROMO_USE = "release_promo_use"  # the promo use goes back (docs/architecture.md "Promo use accounting")
    CANCEL_PAYMENT = "cancel_payment"  # ask the provider to cancel the intent, so it can no longer succeed
    REFUND_PAYMENT = "refund_payment"  # the automatic refund: the whole captured payment back, no tickets issued
    REFUND_TICKETS = "refund_tickets"  # the named tickets: money back (ledger refund), seats free, codes revoked
    REFUND_REST = "refund_rest"  # every ticket left, likewise
    REVOKE_REST = "revoke_rest"  # a chargeback: the money is already gone; seats free, codes revoked


class Reason(StrEnum):
    """Why an order ended where it did (shown on the order)."""

    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_WINDOW_EXPIRED = "payment_window_expired"
    EVENT_CANCELLED = "event_cancelled"
    REFUNDED_ON_REQUEST = "refunded_on_request"
    CHARGEBACK = "chargeback"
    # automatic refunds: the payment succeeded but the hold was gone
    HOLD_LOST = "hold_lost"
    PAID_AFTER_EXPIRY = "paid_after_expiry"
    PAID_AFTER_FAILURE = "paid_after_failure"
    PAID_AFTER_CANCELLATION = "paid_after_cancellation"


class Change(StrEnum):
    MOVED = "moved"  # the order is now in another status (and the outcome's actions are owed)
    ACTED = "acted"  # the order stays where it is, and the outcome's actions are owed (another partial refund)
    UNCHANGED = "unchanged"  # applies, and nothing changes: a replayed webhook, a late timer
    REFUSED = "refused"  # does not apply in this status


@dataclass(frozen=True, slots=True)
class Step:
    """One cell of the table: where the order goes (None: refused), what the shell does, and the reason the order
    then shows."""

    to: OrderStatus | None
    actions: tuple[Action, ...] = ()
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    change: Change
    status: OrderStatus  # after the event: the same status unless it moved
    actions: tuple[Action, ...] = ()
    reason: Reason | None = None


_S = OrderStatus
_E = OrderEvent
_A = Action
_GIVE_UP_HOLD = (_A.RELEASE_HOLD, _A.RELEASE_PROMO_USE, _A.CANCEL_PAYMENT)
_AUTO_REFUND = (_A.REFUND_PAYMENT,)
_REFUSED = Step(None)

# The pairs that move an order or act; every other pair is UNCHANGED for the statuses where the event is a replay
# or a late signal (_IGNORED) and refused otherwise (the full table is TRANSITIONS, below).
_MOVES: dict[tuple[OrderStatus, OrderEvent], Step] = {
    (_S.PENDING_PAYMENT, _E.PAYMENT_SUCCEEDED): Step(_S.PAID, (_A.FULFIL,)),
    (_S.PENDING_PAYMENT, _E.PAYMENT_FAILED): Step(_S.FAILED, (_A.RELEASE_HOLD, _A.RELEASE_PROMO_USE),
                                                  Reason.PAYMENT_DECLINED),
    (_S.PENDING_PAYMENT, _E.PAYMENT_WINDOW_EXPIRED): Step(_S.EXPIRED, _GIVE_UP_HOLD, Reason.PAYMENT_WINDOW_EXPIRED),
    # the hold vanished before payment (Redis lost it): the order cannot be fulfilled, so it ends now; a payment
    # that still succeeds is then refunded as paid_after_expiry
    (_S.PENDING_PAYMENT, _E.HOLD_LOST): Step(_S.EXPIRED, (_A.RELEASE_PROMO_USE, _A.CANCEL_PAYMENT), Reason.HOLD_LOST),
    (_S.PENDING_PAYMENT, _E.EVENT_CANCELLED): Step(_S.CANCELLED, _GIVE_UP_HOLD, Reason.EVENT_CANCELLED),
    # paid: the tickets are owed, or being issued
    (_S.PAID, _E.HOLD_LOST): Step(_S.REFUNDED, _AUTO_REFUND, Reason.HOLD_LOST),
    (_S.PAID, _E.REFUND_SOME): Step(_S.PARTIALLY_REFUNDED, (_A.REFUND_TICKETS,)),
    (_S.PAID, _E.REFUND_ALL): Step(_S.REFUNDED, (_A.REFUND_REST,), Reason.REFUNDED_ON_REQUEST),
    (_S.PAID, _E.CHARGEBACK): Step(_S.REFUNDED, (_A.REVOKE_REST,), Reason.CHARGEBACK),
    (_S.PAID, _E.EVENT_CANCELLED): Step(_S.REFUNDED, (_A.REFUND_REST,), Reason.EVENT_CANCELLED),
    (_S.PARTIALLY_REFUNDED, _E.REFUND_SOME): Step(_S.PARTIALLY_REFUNDED, (_A.REFUND_TICKETS,)),
    (_S.PARTIALLY_REFUNDED, _E.REFUND_ALL): Step(_S.REFUNDED, (_A.REFUND_REST,), Reason.REFUNDED_ON_REQUEST),
    (_S.PARTIALLY_REFUNDED, _E.CHARGEBACK): Step(_S.REFUNDED, (_A.REVOKE_REST,), Reason.CHARGEBACK),
    (_S.PARTIALLY_REFUNDED, _E.EVENT_CANCELLED): Step(_S.REFUNDED, (_A.REFUND_REST,), Reason.EVENT_CANCELLED),
    # the payment succeeded although the order had given its hold up: its money goes straight back
    (_S.EXPIRED, _E.PAYMENT_SUCCEEDED): Step(_S.REFUNDED, _AUTO_REFUND, Reason.PAID_AFTER_EXPIRY),
    (_S.FAILED, _E.PAYMENT_SUCCEEDED): Step(_S.REFUNDED, _AUTO_REFUND, Reason.PAID_AFTER_FAILURE),
    (_S.CANCELLED, _E.PAYMENT_SUCCEEDED): Step(_S.REFUNDED, _AUTO_REFUND, Reason.PAID_AFTER_CANCELLATION),
    # charged twice: the second payment goes back, whatever became of the first
    **{(status, _E.SECOND_PAYMENT_SUCCEEDED): Step(status, _AUTO_REFUND)
       for status in (_S.PAID, _S.PARTIALLY_REFUNDED, _S.REFUNDED)},
}

# Replays and late signals: the event applies and changes nothing (a duplicated webhook, a timer that fired after
# the payment, a stale failure of an attempt that later succeeded, a cancellation reaching an order already over).
_IGNORED: frozenset[tuple[OrderStatus, OrderEvent]] = frozenset(
    {(status, event) for status in (_S.PAID, _S.PARTIALLY_REFUNDED, _S.REFUNDED)
     for event in (_E.PAYMENT_SUCCEEDED, _E.PAYMENT_FAILED, _E.PAYMENT_WINDOW_EXPIRED)}
    | {(_S.PARTIALLY_REFUNDED, _E.HOLD_LOST)}  # its tickets were issued: the hold was used, not lost
    | {(_S.REFUNDED, _E.HOLD_LOST), (_S.REFUNDED, _E.EVENT_CANCELLED)}
    # nothing is left to take: the dispute is answered with the refund already made
    | {(_S.REFUNDED, _E.CHARGEBACK)}
    | {(status, event) for status in (_S.EXPIRED, _S.FAILED, _S.CANCELLED)
       for event in (_E.PAYMENT_FAILED, _E.PAYMENT_WINDOW_EXPIRED, _E.HOLD_LOST, _E.EVENT_CANCELLED)}
)
assert not _IGNORED & set(_MOVES), "a pair is either a move or ignored"

# (status, event) -> what happens, for every pair.
TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], Step] = {
    (status, event): _MOVES.get((status, event), Step(status) if (status, event) in _IGNORED else _REFUSED)
    for status in OrderStatus
    for event in OrderEvent
}

FINAL: frozenset[OrderStatus] = frozenset({_S.REFUNDED, _S.EXPIRED, _S.FAILED, _S.CANCELLED})
HOLDS_MONEY: frozenset[OrderStatus] = frozenset({_S.PAID, _S.PARTIALLY_REFUNDED})  # captured, not all returned
KEEPS_HOLD: frozenset[OrderStatus] = frozenset({_S.PENDING_PAYMENT})


def decide(status: OrderStatus, event: OrderEvent) -> Outcome:
    """What ``event`` does to an order that is ``status``."""
    step = TRANSITIONS[(status, event)]
    if step.to is None:
        return Outcome(Change.REFUSED, status)
    if step.to == status:
        return Outcome(Change.ACTED if step.actions else Change.UNCHANGED, status, step.actions)
    return Outcome(Change.MOVED, step.to, step.actions, step.reason)


def refund_event(tickets_left: int, tickets_refunded: int) -> OrderEvent:
    """The event a refund of ``tickets_refunded`` tickets is, for an order with ``tickets_left`` valid tickets."""
    if not 1 <= tickets_refunded <= tickets_left:
        raise ValueError("a refund names 1 ticket or more, at most those left")
    return OrderEvent.REFUND_ALL if tickets_refunded == tickets_left else OrderEvent.REFUND_SOME


def tickets_refundable(status: OrderStatus, tickets_issued: bool) -> bool:
    """Whether the order's tickets can be given back now (a refund, a chargeback, its event cancelled): it holds
    money and its tickets exist. A paid order still issuing them waits: its fulfilment finishes first."""
    return status in HOLDS_MONEY and tickets_issued
