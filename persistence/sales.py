"""Sales and their tickets: written by the event's inventory owner in group commits, read back on recovery.

Fencing: each incarnation of an inventory takes a new epoch (events.take_inventory_epoch). A write locks the
event row FOR SHARE and checks the epoch it carries is still current, so a zombie incarnation writes nothing;
the epoch bump's UPDATE conflicts with that lock, so it waits for in-flight writes instead of racing them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from engine.commands import SaleView, TicketView
from persistence.db import Connection

_SALE_COLUMNS = ["id", "org_id", "event_id", "hold_id", "buyer_id", "order_ref", "epoch"]
_TICKET_COLUMNS = [
    "id", "org_id", "event_id", "sale_id", "ordinal", "ticket_type", "seat_id", "unit", "capacity",
]
_LOAD_SQL = """
SELECT s.id, s.hold_id, s.buyer_id, s.order_ref, t.id AS ticket_id, t.ticket_type, t.seat_id, t.unit
FROM sales s LEFT JOIN tickets t ON t.sale_id = s.id
WHERE s.event_id = $1 AND s.status = 'live'
ORDER BY s.created_at, s.id, t.ordinal
"""


class FencedOut(Exception):
    """The event's epoch moved on (or the event is gone): this incarnation must stop writing."""

    def __init__(self, event_id: str, epoch: int, current: int | None) -> None:
        super().__init__(f"event {event_id}: epoch {epoch} is fenced out (current {current})")
        self.event_id = event_id
        self.epoch = epoch
        self.current = current


class SaleNotFound(Exception):
    """A cancellation named a sale the event does not have: memory and Postgres disagree."""


async def write_sales(
    conn: Connection,
    org_id: str,
    event_id: str,
    epoch: int,
    new_sales: Sequence[SaleView],
    cancelled: Sequence[SaleView],
) -> None:
    """Commit a batch's cancellations and new sales in ONE transaction, or nothing.

    Cancellations go first: a batch may cancel a sale and sell its seat again. Raises FencedOut when ``epoch``
    is stale; any other failure (a unique violation, a lost connection) also means nothing was committed.
    """
    if not new_sales and not cancelled:
        return
    async with conn.transaction():
        current = await conn.fetchval(
            "SELECT inventory_epoch FROM events WHERE id = $1 AND org_id = $2 FOR SHARE", event_id, org_id
        )
        if current != epoch:
            raise FencedOut(event_id, epoch, current)
        if cancelled:
            await _cancel(conn, org_id, event_id, cancelled)
        if new_sales:
            await _insert(conn, org_id, event_id, epoch, new_sales)


async def _cancel(conn: Connection, org_id: str, event_id: str, cancelled: Sequence[SaleView]) -> None:
    """Cancelling a sale cancels its tickets too (ON UPDATE CASCADE), which frees their seats and units."""
    sale_ids = sorted({sale.sale_id for sale in cancelled})
    rows = await conn.fetch(
        "UPDATE sales SET status = 'cancelled', cancelled_at = coalesce(cancelled_at, now()) "
        "WHERE org_id = $1 AND event_id = $2 AND id = ANY($3::text[]) RETURNING id",
        org_id,
        event_id,
        sale_ids,
    )
    if len(rows) != len(sale_ids):
        missing = sorted(set(sale_ids) - {row["id"] for row in rows})
        raise SaleNotFound(f"event {event_id} has no sales {missing[:10]}")


async def _insert(
    conn: Connection, org_id: str, event_id: str, epoch: int, sales: Sequence[SaleView]
) -> None:
    # The GA capacity goes on each GA ticket so the schema can check unit <= capacity row by row.
    capacity_of = dict(
        await conn.fetch(
            "SELECT code, capacity FROM ticket_types WHERE event_id = $1 AND kind = 'ga'", event_id
        )
    )
    await conn.copy_records_to_table(
        "sales",
        records=[(s.sale_id, org_id, event_id, s.hold_id, s.buyer_id, s.order_ref, epoch) for s in sales],
        columns=_SALE_COLUMNS,
    )
    await conn.copy_records_to_table(
        "tickets",
        records=[
            (
                t.ticket_id, org_id, event_id, s.sale_id, ordinal, t.ticket_type, t.seat_id, t.unit,
                None if t.unit is None else capacity_of.get(t.ticket_type),
            )
            for s in sales
            for ordinal, t in enumerate(s.tickets, 1)
        ],
        columns=_TICKET_COLUMNS,
    )


async def load_sales(conn: Connection, event_id: str) -> list[SaleView]:
    """Every live sale of the event, tickets in the order they were sold: the truth to rebuild from."""
    rows = await conn.fetch(_LOAD_SQL, event_id)
    sales = []
    for _, group in itertools.groupby(rows, key=lambda row: row["id"]):
        sale_rows = list(group)
        first = sale_rows[0]
        tickets = tuple(
            TicketView(row["ticket_id"], row["ticket_type"], row["seat_id"], row["unit"])
            for row in sale_rows
            if row["ticket_id"] is not None
        )
        sales.append(SaleView(first["id"], first["hold_id"], first["buyer_id"], first["order_ref"], tickets))
    return sales
