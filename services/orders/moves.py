"""One move of an order, applied: the engine decides (engine/orders.py ``decide``), this writes the new status
and its audit entry, and owes the outcome's actions to the outbox, all in the caller's unit of work. So an order
is paid if and only if its fulfilment is owed, and expired if and only if its hold's release is.

The outbox topics are this domain's; their handlers are services/orders/fulfilment.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import ids
from engine.orders import Action, Change, OrderEvent, OrderStatus, Outcome, decide
from persistence import audit
from persistence import orders as pg_orders
from persistence.outbox import Owed
from services.unit_of_work import UnitOfWork

FULFIL_TOPIC = "orders.fulfil"
RELEASE_HOLD_TOPIC = "orders.release_hold"
RELEASE_PROMO_TOPIC = "orders.release_promo"
CANCEL_PAYMENT_TOPIC = "orders.cancel_payment"
REFUND_PAYMENT_TOPIC = "orders.refund_payment"
RETURN_TICKETS_TOPIC = "orders.return_tickets"  # a refund's seats or units back to the inventory
REFUND_MONEY_TOPIC = "orders.refund_money"  # a refund's money back through the provider
TOPICS = (FULFIL_TOPIC, RELEASE_HOLD_TOPIC, RELEASE_PROMO_TOPIC, CANCEL_PAYMENT_TOPIC, REFUND_PAYMENT_TOPIC,
          RETURN_TICKETS_TOPIC, REFUND_MONEY_TOPIC)
ORDER_MOVE = "order.move"
_GIVING_BACK = (Action.REFUND_TICKETS, Action.REFUND_REST, Action.REVOKE_REST)


@dataclass(frozen=True, slots=True)
class Refunding:
    """The refund a refunding move makes (services/orders/refunds.py recorded it, with its ledger posting):
    its tickets go back to the inventory and, unless a chargeback took it already, its money to the buyer."""

    refund_id: str
    ticket_ids: tuple[str, ...]
    amount_minor: int


def auto_refund_id(order_id: str) -> str:
    """The one automatic refund an order can have (its payment, whole, when its hold was gone)."""
    return f"{ids.REFUND_PREFIX}{order_id[len(ids.ORDER_PREFIX):]}_auto"


async def move(uow: UnitOfWork, order: pg_orders.OrderRecord, event: OrderEvent, now: datetime,
               refunding: Refunding | None = None) -> Outcome:
    """Apply ``event`` to ``order`` (read under its row lock in ``uow``); refused moves change nothing. A move
    that gives tickets back needs the ``refunding`` its caller recorded (services/orders/refunds.py)."""
    outcome = decide(order.status, event)
    if outcome.change is Change.REFUSED:
        return outcome
    if outcome.change is Change.MOVED:
        reason = outcome.reason.value if outcome.reason else None
        paid_at = now if outcome.status is OrderStatus.PAID else None
        await pg_orders.move_order(uow.db, order.order_id, outcome.status, reason, paid_at=paid_at)
        uow.record(audit.Change(
            ORDER_MOVE, "order", order.order_id, before={"status": order.status.value},
            after={"status": outcome.status.value, "reason": reason, "event": event.value},
        ))  # fmt: skip
    for action in outcome.actions:
        if action in _GIVING_BACK:
            assert refunding is not None, f"{action.value} needs its refund recorded first"
            await _owe_refund(uow, order, action, refunding)
        else:
            await _owe(uow, order, action, outcome)
    return outcome


async def _owe(uow: UnitOfWork, order: pg_orders.OrderRecord, action: Action, outcome: Outcome) -> None:
    order_id = order.order_id
    data: dict[str, Any] = {"order_id": order_id}
    paid_for = order.total_minor > 0
    if action is Action.FULFIL:
        uow.owe(Owed(FULFIL_TOPIC, order_id, data))
    elif action is Action.RELEASE_HOLD:
        uow.owe(Owed(RELEASE_HOLD_TOPIC, order_id, data))
    elif action is Action.RELEASE_PROMO_USE:
        if order.quote.promo_code:
            uow.owe(Owed(RELEASE_PROMO_TOPIC, order_id, data | {"promo_code": order.quote.promo_code}))
    elif action is Action.CANCEL_PAYMENT:
        if paid_for:
            uow.owe(Owed(CANCEL_PAYMENT_TOPIC, ids.payment_attempt_id(order_id), data))
    elif action is Action.REFUND_PAYMENT:
        if paid_for:
            refund_id = auto_refund_id(order_id)
            reason = (outcome.reason.value if outcome.reason else "second_payment")
            await pg_orders.add_refund(uow.db, refund_id, order_id, order.total_minor, order.currency, reason)
            uow.owe(Owed(REFUND_PAYMENT_TOPIC, ids.payment_attempt_id(order_id), data | {"refund_id": refund_id}))
    else:
        raise AssertionError(f"{action.value} is owed by _owe_refund")


async def _owe_refund(uow: UnitOfWork, order: pg_orders.OrderRecord, action: Action, refunding: Refunding) -> None:
    data = {"order_id": order.order_id, "refund_id": refunding.refund_id}
    uow.owe(Owed(RETURN_TICKETS_TOPIC, refunding.refund_id, data | {"ticket_ids": list(refunding.ticket_ids)}))
    if action is not Action.REVOKE_REST and refunding.amount_minor > 0:
        uow.owe(Owed(REFUND_MONEY_TOPIC, refunding.refund_id, data))
    else:  # nothing to send back: free tickets, or the bank took the money already
        await pg_orders.refund_done(uow.db, refunding.refund_id, None)
