"""Sales and their tickets: written by the event's inventory owner in group commits, read back on recovery.

Fencing: each incarnation of an inventory takes a new epoch (events.take_inventory_epoch). A write locks the
event row FOR SHARE and checks the epoch it carries is still current, so a zombie incarnation writes nothing;
the epoch bump's UPDATE conflicts with that lock, so it waits for in-flight writes instead of racing them.

Tenancy: every function takes an ``OrgDb`` (persistence/tenancy.py), so row-level security holds on the hot
path too, and each query also filters by the org. The group commit (services/inventory/sales.py) audits every sale and
cancellation in the same transaction, so the log and the sales commit or roll back together.

A sale may give back some of its tickets and stand (a ticket cancelled on its own: 012_ticket_cancellations.sql);
a rebuild reads live tickets only, and the ids of those given back apart (``load_cancelled_tickets``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from engine.inventory.commands import SaleView, TicketView
from persistence.tenancy import OrgDb

# Not COPY: Postgres refuses COPY FROM into a table with row-level security for a role it applies to. One
# INSERT ... SELECT FROM unnest(arrays) per table per batch costs the same single round trip.
_INSERT_SALES_SQL = """
INSERT INTO sales (id, org_id, event_id, hold_id, buyer_id, order_ref, epoch)
SELECT s.id, $1, $2, s.hold_id, s.buyer_id, s.order_ref, $3
FROM unnest($4::text[], $5::text[], $6::text[], $7::text[]) AS s(id, hold_id, buyer_id, order_ref)
"""
# The GA type's unit bound goes on each GA ticket so the schema can check unit <= it row by row (the foreign key
# proves it is the type's real units_max: its highest capacity ever, 004_event_lifecycle.sql); an unknown type gets
# none, which the schema refuses.
_INSERT_TICKETS_SQL = """
INSERT INTO tickets (id, org_id, event_id, sale_id, ordinal, ticket_type, seat_id, unit, capacity)
SELECT t.id, $1, $2, t.sale_id, t.ordinal, t.ticket_type, t.seat_id, t.unit,
       CASE WHEN t.unit IS NULL THEN NULL ELSE (
           SELECT tt.units_max FROM ticket_types tt
           WHERE tt.org_id = $1 AND tt.event_id = $2 AND tt.code = t.ticket_type AND tt.kind = 'ga') END
FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::int[])
     AS t(id, sale_id, ordinal, ticket_type, seat_id, unit)
"""
_LOAD_SQL = """
SELECT s.id, s.hold_id, s.buyer_id, s.order_ref, t.id AS ticket_id, t.ticket_type, t.seat_id, t.unit
FROM sales s JOIN tickets t ON t.sale_id = s.id AND t.org_id = s.org_id AND t.status = 'live'
WHERE s.org_id = $1 AND s.event_id = $2 AND s.status = 'live'
ORDER BY s.created_at, s.id, t.ordinal
"""
# sale_status is the sale's status (a foreign key, 012_ticket_cancellations.sql): the partial index finds them
_LOAD_CANCELLED_TICKETS_SQL = """
SELECT s.hold_id, t.id AS ticket_id
FROM tickets t JOIN sales s ON s.id = t.sale_id AND s.org_id = t.org_id
WHERE t.org_id = $1 AND t.event_id = $2 AND t.status = 'cancelled' AND t.sale_status = 'live'
ORDER BY t.sale_id, t.ordinal
"""
_CANCEL_TICKETS_SQL = """
UPDATE tickets SET status = 'cancelled'
WHERE org_id = $1 AND event_id = $2 AND id = ANY($3::text[]) AND status = 'live'
RETURNING id
"""


class FencedOut(Exception):
    """The event's epoch moved on (or the event is gone): this incarnation must stop writing."""

    def __init__(self, event_id: str, epoch: int, current: int | None) -> None:
        super().__init__(f"event {event_id}: epoch {epoch} is fenced out (current {current})")
        self.event_id = event_id
        self.epoch = epoch
        self.current = current


class SaleNotFound(Exception):
    """A cancellation named a sale (or a live ticket) the event does not have: memory and Postgres disagree."""


async def write_sales(
    db: OrgDb, event_id: str, epoch: int, new_sales: Sequence[SaleView], cancelled: Sequence[SaleView],
    tickets_cancelled: Sequence[SaleView] = (),
) -> None:
    """Write a batch's cancellations and new sales in db's transaction (their audit entries are the caller's:
    services/inventory/sales.py writes them in the same transaction). ``tickets_cancelled``: tickets given back
    by sales (each a SaleView of just those tickets).

    Cancellations go first: a batch may cancel a sale and sell its seat again; given-back tickets before whole
    sales, since a batch may give back some of a sale's tickets and then cancel the rest. Raises FencedOut when
    ``epoch`` is stale; any other failure (a unique violation, a lost connection) also means nothing is committed.
    """
    if not new_sales and not cancelled and not tickets_cancelled:
        return
    conn, org_id = db.conn, db.org_id
    current = await conn.fetchval(
        "SELECT inventory_epoch FROM events WHERE id = $1 AND org_id = $2 FOR SHARE", event_id, org_id
    )
    if current != epoch:
        raise FencedOut(event_id, epoch, current)
    if tickets_cancelled:
        await _cancel_tickets(db, event_id, tickets_cancelled)
    if cancelled:
        await _cancel(db, event_id, cancelled)
    if new_sales:
        await _insert(db, event_id, epoch, new_sales)


async def _cancel(db: OrgDb, event_id: str, cancelled: Sequence[SaleView]) -> None:
    """Cancelling a sale cancels its tickets too (ON UPDATE CASCADE), which frees their seats and units."""
    sale_ids = sorted({sale.sale_id for sale in cancelled})
    rows = await db.conn.fetch(
        "UPDATE sales SET status = 'cancelled', cancelled_at = coalesce(cancelled_at, now()) "
        "WHERE org_id = $1 AND event_id = $2 AND id = ANY($3::text[]) RETURNING id",
        db.org_id,
        event_id,
        sale_ids,
    )
    if len(rows) != len(sale_ids):
        missing = sorted(set(sale_ids) - {row["id"] for row in rows})
        raise SaleNotFound(f"event {event_id} has no sales {missing[:10]}")


async def _cancel_tickets(db: OrgDb, event_id: str, given_back: Sequence[SaleView]) -> None:
    """Each ticket on its own (its sale stands): the seat or unit is free, as the live indexes cover live tickets."""
    ticket_ids = sorted({t.ticket_id for sale in given_back for t in sale.tickets})
    rows = await db.conn.fetch(_CANCEL_TICKETS_SQL, db.org_id, event_id, ticket_ids)
    if len(rows) != len(ticket_ids):  # memory gives back only live tickets of live sales
        missing = sorted(set(ticket_ids) - {row["id"] for row in rows})
        raise SaleNotFound(f"event {event_id} has no live tickets {missing[:10]}")


async def _insert(db: OrgDb, event_id: str, epoch: int, sales: Sequence[SaleView]) -> None:
    await db.conn.execute(
        _INSERT_SALES_SQL,
        db.org_id,
        event_id,
        epoch,
        [s.sale_id for s in sales],
        [s.hold_id for s in sales],
        [s.buyer_id for s in sales],
        [s.order_ref for s in sales],
    )
    tickets = [(s.sale_id, ordinal, t) for s in sales for ordinal, t in enumerate(s.tickets, 1)]
    if not tickets:
        return
    await db.conn.execute(
        _INSERT_TICKETS_SQL,
        db.org_id,
        event_id,
        [t.ticket_id for _, _, t in tickets],
        [sale_id for sale_id, _, _ in tickets],
        [ordinal for _, ordinal, _ in tickets],
        [t.ticket_type for _, _, t in tickets],
        [t.seat_id for _, _, t in tickets],
        [t.unit for _, _, t in tickets],
    )


async def mark_for_refund(db: OrgDb, event_id: str) -> int:
    """Mark every live sale of the event for refund (its cancellation; the checkout issue refunds them); the
    number newly marked."""
    status = await db.conn.execute(
        "UPDATE sales SET refund_requested_at = now() "
        "WHERE event_id = $2 AND status = 'live' AND org_id = $1 AND refund_requested_at IS NULL",
        db.org_id,
        event_id,
    )
    return int(status.split()[-1])


async def load_sales(db: OrgDb, event_id: str) -> list[SaleView]:
    """Every live sale of the org's event with its live tickets, in the order they were sold: the truth to rebuild
    from. A sale with no live ticket left (none is: giving back its last ticket cancels it) does not come back."""
    rows = await db.conn.fetch(_LOAD_SQL, db.org_id, event_id)
    sales = []
    for _, group in itertools.groupby(rows, key=lambda row: row["id"]):
        sale_rows = list(group)
        first = sale_rows[0]
        tickets = tuple(
            TicketView(row["ticket_id"], row["ticket_type"], row["seat_id"], row["unit"])
            for row in sale_rows
        )
        sales.append(SaleView(first["id"], first["hold_id"], first["buyer_id"], first["order_ref"], tickets))
    return sales


async def load_cancelled_tickets(db: OrgDb, event_id: str) -> list[tuple[str, str]]:
    """(hold id, ticket id) of every ticket a live sale of the org's event gave back: so the rebuilt inventory
    still tells a retried give-back (skipped) from a ticket the sale never had (refused)."""
    rows = await db.conn.fetch(_LOAD_CANCELLED_TICKETS_SQL, db.org_id, event_id)
    return [(row["hold_id"], row["ticket_id"]) for row in rows]
