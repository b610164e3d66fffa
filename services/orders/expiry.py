"""Unpaid orders expire: a pending order past the end of its payment window moves to ``expired`` and owes the
release of its hold, of its promo use and the cancellation of its payment (services/orders/moves.py), each in its
own unit of work under the order's row lock, so a payment arriving at the same moment is applied before or after,
never lost (a payment after expiry is refunded: engine/orders.py)."""

from __future__ import annotations

from engine.orders import OrderEvent, OrderStatus
from persistence import orders as pg_orders
from services.orders import moves
from services.orders.ports import FULFILMENT_ACTOR, Checkout
from services.unit_of_work import Platform


async def expire_due(deps: Checkout, platform: Platform) -> int:
    """Expire the due orders (at most ``persistence.orders.expiring_per_sweep_max`` per call); how many."""
    now = deps.now()
    async with platform.unscoped("the expiry sweep finds every org's unpaid orders past their window") as conn:
        due = await pg_orders.expired_pending(conn, now)
    expired = 0
    for org_id, order_id in due:
        async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
            order = await pg_orders.get_order(uow.db, order_id, for_update=True)
            if order is None or order.status is not OrderStatus.PENDING_PAYMENT or order.expires_at > now:
                continue
            await moves.move(uow, order, OrderEvent.PAYMENT_WINDOW_EXPIRED, now)
            expired += 1
    return expired
