"""The inventory's group commit as a use case: a batch's sales and cancellations (of whole sales, and of tickets a
sale gave back), with their audit entries, in one org-bound transaction.

The event's inventory actor (actors/event_inventory.py) calls it on the connection it holds, bounded by its own
timeouts, after the engine has decided the batch: Postgres is the truth, so only once this commits does the
actor acknowledge a sale. Each ``sale.create`` names who confirmed the sale and from where (``confirmed_by``,
hold id -> actor); what no caller asked for (cancellations, sales without a confirmer) is the inventory's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.inventory.commands import SaleView
from persistence import audit
from persistence.db import Connection
from persistence.inventory import sales as pg_sales
from services.unit_of_work import unit_of_work_on

SALE_CREATE = "sale.create"
SALE_CANCEL = "sale.cancel"
SALE_CANCEL_TICKETS = "sale.cancel_tickets"  # some of a sale's tickets given back; the sale stands


def inventory_actor(event_id: str) -> audit.Actor:
    """Who the audit log names for what no caller asked for (cancellations): the event's inventory."""
    return audit.Actor("system", f"inventory:{event_id}")


async def commit_sales(
    conn: Connection,
    org_id: str,
    event_id: str,
    epoch: int,
    new_sales: Sequence[SaleView],
    cancelled: Sequence[SaleView],
    *,
    confirmed_by: Mapping[str, audit.Actor],
    tickets_cancelled: Sequence[SaleView] = (),
) -> None:
    """Write the batch (fenced by ``epoch``: ``pg_sales.FencedOut``) and its audit entries; all or nothing.
    ``tickets_cancelled``: per sale, the tickets it gave back (a SaleView of just those), audited as the
    inventory's own, like cancellations."""
    if not new_sales and not cancelled and not tickets_cancelled:
        return
    async with unit_of_work_on(conn, org_id, inventory_actor(event_id)) as uow:
        await pg_sales.write_sales(uow.db, event_id, epoch, new_sales, cancelled, tickets_cancelled)
        for given_back in tickets_cancelled:  # before: the tickets, as the sale had them; after: none of them
            change = audit.Change(SALE_CANCEL_TICKETS, "sale", given_back.sale_id, before=_sale_json(given_back))
            uow.record(change)
        for sale in cancelled:
            uow.record(audit.Change(SALE_CANCEL, "sale", sale.sale_id, before=_sale_json(sale), after=None))
        for sale in new_sales:
            change = audit.Change(SALE_CREATE, "sale", sale.sale_id, after=_sale_json(sale))
            uow.record(change, by=confirmed_by.get(sale.hold_id))


def _sale_json(sale: SaleView) -> dict[str, Any]:
    return {
        "hold_id": sale.hold_id,
        "buyer_id": sale.buyer_id,
        "order_ref": sale.order_ref,
        "tickets": [
            {"id": t.ticket_id, "ticket_type": t.ticket_type, "seat_id": t.seat_id, "unit": t.unit}
            for t in sale.tickets
        ],
    }
