"""One move of an order, applied: the engine decides (engine/orders.py ``decide``), this writes the new status
and its audit entry, and owes the outcome's actions to the outbox, all in the caller's unit of work. So an order
is paid if and only if its fulfilment is owed, and expired if and only if its hold's release is.

The outbox topics are this domain's; their handlers are services/orders/fulfilment.py's.
"""

from __future__ import annotations

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
TOPICS = (FULFIL_TOPIC, RELEASE_HOLD_TOPIC, RELEASE_PROMO_TOPIC, CANCEL_PAYMENT_TOPIC, REFUND_PAYMENT_TOPIC)
ORDER_MOVE = "order.move"


def auto_refund_id(order_id: str) -> str:
    """The one automatic refund an order can have (its payment, whole, when its hold was gone)."""
    return f"{ids.REFUND_PREFIX}{order_id[len(ids.ORDER_PREFIX):]}_auto"


async def move(uow: UnitOfWork, order: pg_orders.OrderRecord, event: OrderEvent, now: datetime) -> Outcome:
    """Apply ``event`` to ``order`` (read under its row lock in ``uow``); refused moves change nothing."""
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
        # refunds on request and chargebacks: no route or provider event makes these events yet
        raise NotImplementedError(f"{action.value} is not built yet")
