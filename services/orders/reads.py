"""Checkout's reads: an order with its tickets, refunds and payment; a page of orders; one ticket's code. Another
org's order or ticket is as unknown as a made-up id (404)."""

from __future__ import annotations

from dataclasses import dataclass

from engine import ids
from engine.orders import OrderStatus
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence import orders as pg_orders
from services.unit_of_work import UnitsOfWork

READER = audit.Actor("system", "orders-read")


@dataclass(frozen=True, slots=True)
class OrderDetails:
    order: pg_orders.OrderRecord
    payment: pg_orders.AttemptRecord | None
    tickets: tuple[pg_orders.OrderTicket, ...]
    refunds: tuple[pg_orders.RefundRecord, ...]


def order_not_found(order_id: str) -> Refused:
    return Refused(Refusal.ORDER_NOT_FOUND, "no such order", {"order_id": order_id})


async def order_details(units: UnitsOfWork, org_id: str, order_id: str) -> OrderDetails:
    if not ids.is_order_id(order_id):
        raise order_not_found(order_id)
    async with units.begin(org_id, READER) as uow:
        order = await pg_orders.get_order(uow.db, order_id)
        if order is None:
            raise order_not_found(order_id)
        payment = await pg_orders.get_attempt(uow.db, ids.payment_attempt_id(order_id))
        tickets = await pg_orders.tickets_of_sale(uow.db, order_id, ids.sale_id_of_hold(order.hold_id))
        refunds = await pg_orders.refunds_of(uow.db, order_id)
    # a sale exists once the hold was confirmed; its tickets are the order's once their codes are issued
    issued = tuple(t for t in tickets if t.payload is not None)
    return OrderDetails(order, payment, issued, tuple(refunds))


async def order_page(
    units: UnitsOfWork, org_id: str, *, event_id: str | None, status: OrderStatus | None, after_id: str | None,
    limit: int,
) -> pg_orders.OrderPage:
    async with units.begin(org_id, READER) as uow:
        return await pg_orders.list_orders(uow.db, event_id=event_id, status=status, after_id=after_id, limit=limit)


def ticket_not_found(ticket_id: str) -> Refused:
    return Refused(Refusal.TICKET_NOT_FOUND, "no such ticket", {"ticket_id": ticket_id})


async def ticket_payload(units: UnitsOfWork, org_id: str, ticket_id: str) -> str:
    """The signed QR payload of an issued ticket of the org."""
    if ids.event_id_of_ticket(ticket_id) is None:
        raise ticket_not_found(ticket_id)
    async with units.begin(org_id, READER) as uow:
        found = await pg_orders.ticket_code(uow.db, ticket_id)
    if found is None:
        raise ticket_not_found(ticket_id)
    return found[1]
