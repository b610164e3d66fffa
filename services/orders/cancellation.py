"""A cancelled event's orders, ended: the catalog owes ``events.cancelled`` in the transaction that cancels the
event (services/catalog/lifecycle.py), and this handler works through the event's open orders, a bounded batch
per row, each order in its own unit of work under its row lock:

- pending orders are cancelled (their holds, promo uses and intents given up, engine/orders.py);
- paid orders with their tickets issued are refunded whole (services/orders/refunds.py ``give_back``: the ledger,
  the revocations, the seats, the provider's refund), reason ``event_cancelled``;
- a paid order whose tickets are still being issued is left for a later try: the handler raises once the batch
  is done, and the outbox retries it (bounded) after fulfilment has issued them. (Its fulfilment may also find
  the event no longer selling and refund the order as ``hold_lost``: the money comes back either way.)

A full batch owes the next one (keyed by the last order id), so one row's work stays bounded however large the
event. Every step is idempotent: a retried batch finds its orders ended and skips them.
"""

from __future__ import annotations

from engine.orders import HOLDS_MONEY, OrderEvent, OrderStatus, tickets_refundable
from persistence import orders as pg_orders
from persistence.outbox import Claimed, Owed
from services.catalog.lifecycle import EVENT_CANCELLED_TOPIC
from services.orders import moves
from services.orders.ports import FULFILMENT_ACTOR, Checkout
from services.orders.refunds import give_back, tickets_left

orders_per_batch_max = 100
REASON = "event_cancelled"


class TicketsStillIssuing(RuntimeError):
    """Some paid orders of the cancelled event are still getting their tickets: refunded on the next try."""


async def end_orders_of_cancelled_event(deps: Checkout, row: Claimed) -> None:
    event_id = row.payload["event_id"]
    async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
        batch = await pg_orders.open_orders_of_event(uow.db, event_id, after_id=row.payload.get("after"),
                                                     limit=orders_per_batch_max)
    waiting = [order.order_id for order in batch if not await _end(deps, row.org_id, order.order_id)]
    if len(batch) == orders_per_batch_max:
        async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
            last = batch[-1].order_id
            uow.owe(Owed(EVENT_CANCELLED_TOPIC, f"{event_id}:{last}", {"event_id": event_id, "after": last}))
    if waiting:
        raise TicketsStillIssuing(f"{len(waiting)} paid orders of {event_id} are still issuing, e.g. {waiting[0]}")


async def _end(deps: Checkout, org_id: str, order_id: str) -> bool:
    """End one order; False when it must wait (paid, tickets not issued yet)."""
    now = deps.now()
    async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
        order = await pg_orders.get_order(uow.db, order_id, for_update=True)
        assert order is not None, order_id
        if order.status is OrderStatus.PENDING_PAYMENT:
            await moves.move(uow, order, OrderEvent.EVENT_CANCELLED, now)
        elif order.status in HOLDS_MONEY:
            if not tickets_refundable(order.status, order.tickets_issued_at is not None):
                return False
            await give_back(uow, order, OrderEvent.EVENT_CANCELLED, await tickets_left(uow, order), REASON, now)
    return True
