"""What both baselines truly share: the event's static shape, the engine's refusals, and the sale INSERT.

The sale goes into the platform's own ``sales`` and ``tickets`` tables with the engine's id rules, so the schema's
unique indexes defend every mode alike and the harness audits them all with the same queries.

The baselines run inside the platform's gateway on its pool (role voelgoed_app), so row-level security holds for
them as for the engine: every read of the platform's tables and every sale goes through an ``OrgDb``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine import limits
from engine.ids import sale_id_of_hold, ticket_id_of_hold
from engine.inventory.commands import HoldView, Rejected, SaleView, TicketView
from engine.refusals import Refusal
from persistence.inventory.live_state import TicketTypeCounts
from persistence.tenancy import OrgDb
from voelgoed.settings import ORDERS_WORKER_ACTOR, ORDERS_WORKER_GATEWAY, Settings

BASELINE_EPOCH = 1  # sales.epoch must be >= 1; baselines have no incarnations to fence


@dataclass(frozen=True, slots=True)
class EventShape:
    """An on-sale event's immutable inventory shape, read once per process from the platform's tables."""

    org_id: str
    event_id: str
    hold_ttl_s: int
    max_tickets_per_buyer: int
    seated_type: str | None
    seat_ids: tuple[str, ...]
    ga_capacity: dict[str, int]  # in ticket type position order


_SHAPE_SQL = """
SELECT e.org_id, e.hold_ttl_s, e.max_tickets_per_buyer,
       (SELECT coalesce(array_agg(seat_id ORDER BY seat_index), '{}') FROM seats
        WHERE org_id = e.org_id AND event_id = e.id) AS seat_ids,
       ARRAY(SELECT code FROM ticket_types WHERE org_id = e.org_id AND event_id = e.id AND kind = 'seated') AS seated,
       ARRAY(SELECT code FROM ticket_types WHERE org_id = e.org_id AND event_id = e.id AND kind = 'ga'
             ORDER BY position) AS ga_codes,
       ARRAY(SELECT capacity FROM ticket_types WHERE org_id = e.org_id AND event_id = e.id AND kind = 'ga'
             ORDER BY position) AS ga_caps
FROM events e WHERE e.org_id = $1 AND e.id = $2 AND e.status = 'on_sale'
"""


async def load_shape(db: OrgDb, event_id: str) -> EventShape | None:
    """The org's on-sale event's shape, or None when it is unknown, another org's or still a draft."""
    row = await db.conn.fetchrow(_SHAPE_SQL, db.org_id, event_id)
    if row is None:
        return None
    return EventShape(
        org_id=row["org_id"],
        event_id=event_id,
        hold_ttl_s=row["hold_ttl_s"],
        max_tickets_per_buyer=row["max_tickets_per_buyer"],
        seated_type=row["seated"][0] if row["seated"] else None,
        seat_ids=tuple(row["seat_ids"]),
        ga_capacity=dict(zip(row["ga_codes"], row["ga_caps"], strict=True)),
    )


def orders_worker_here(settings: Settings) -> Settings:
    """Checkout's orders worker in the gateway's processes, never in the fulfilment actor: the actor confirms
    through the engine's inventory actors, and a baseline's holds live in its own store, which only this
    process's inventory client reaches (`voelgoed up` asks for the actor whenever payments are configured)."""
    if settings.orders_worker == ORDERS_WORKER_ACTOR:
        return dataclasses.replace(settings, orders_worker=ORDERS_WORKER_GATEWAY)
    return settings


# ---- the engine's refusals, word for word ---------------------------------------------------------------------

NOT_ON_SALE = Rejected(Refusal.NOT_ON_SALE, "the event is not on sale")
CONFIRM_IN_FLIGHT = Rejected(Refusal.INVENTORY_UNAVAILABLE, "a confirm of this hold is in flight; retry")


def hold_not_found(hold_id: str) -> Rejected:
    return Rejected(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})


def hold_expired(hold_id: str) -> Rejected:
    return Rejected(Refusal.HOLD_EXPIRED, "the hold has expired", {"hold_id": hold_id})


def hold_released(hold_id: str) -> Rejected:
    return Rejected(Refusal.INVALID_TRANSITION, "the hold was released", {"hold_id": hold_id})


def sold_elsewhere(hold_id: str) -> Rejected:
    return Rejected(Refusal.INVALID_TRANSITION, "hold already confirmed with another order_ref", {"hold_id": hold_id})


def sold_not_releasable(hold_id: str) -> Rejected:
    return Rejected(Refusal.INVALID_TRANSITION, "a confirmed hold cannot be released", {"hold_id": hold_id})


def sold_not_extendable(hold_id: str) -> Rejected:
    return Rejected(Refusal.INVALID_TRANSITION, "a confirmed hold cannot be extended", {"hold_id": hold_id})


def extend_ttl_refusal(ttl_s: int) -> Rejected | None:
    """The engine's bound on an extension (checkout's payment window), or None when ``ttl_s`` is within it."""
    if limits.hold_ttl_s_min <= ttl_s <= limits.payment_window_s_max:
        return None
    return Rejected(Refusal.INVALID_HOLD_REQUEST, f"ttl_s must be 1..{limits.payment_window_s_max}", {"field": "ttl_s"})


def hold_id_taken(hold_id: str) -> Rejected:
    return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold id already used", {"hold_id": hold_id})


def unknown_seats(seats: Sequence[str]) -> Rejected:
    return Rejected(Refusal.UNKNOWN_SEATS, "no such seats in this event", {"seats": list(seats)})


def seats_unavailable(seats: Sequence[str]) -> Rejected:
    return Rejected(Refusal.SEATS_UNAVAILABLE, "some seats are no longer available", {"seats": list(seats)})


def unknown_ticket_type(code: str) -> Rejected:
    return Rejected(Refusal.UNKNOWN_TICKET_TYPE, "no such GA ticket type", {"ticket_type": code})


def insufficient(code: str, available: int) -> Rejected:
    details = {"ticket_type": code, "available": available}
    return Rejected(Refusal.INSUFFICIENT_INVENTORY, "not enough tickets left", details)


def buyer_limit(limit: int, held_or_bought: int, requested: int) -> Rejected:
    return Rejected(
        Refusal.BUYER_LIMIT_EXCEEDED,
        f"a buyer may hold and buy at most {limit} tickets",
        {"max_tickets_per_buyer": limit, "held_or_bought": held_or_bought, "requested": requested},
    )


def rejection(code: str, hold_id: str, details: dict[str, Any]) -> Rejected:
    """A refusal a script or query named by code, with the engine's wording."""
    makers = {
        "hold_not_found": hold_not_found,
        "hold_expired": hold_expired,
        "released": hold_released,
        "sold_elsewhere": sold_elsewhere,
        "sold": sold_not_releasable,
        "sold_not_extendable": sold_not_extendable,
        "hold_id_taken": hold_id_taken,
    }
    if code in makers:
        return makers[code](hold_id)
    if code == "confirming":
        return CONFIRM_IN_FLIGHT
    if code == "unknown_seats":
        return unknown_seats(details["seats"])
    if code == "seats_unavailable":
        return seats_unavailable(details["seats"])
    if code == "unknown_ticket_type":
        return unknown_ticket_type(details["ticket_type"])
    if code == "insufficient_inventory":
        return insufficient(details["ticket_type"], int(details["available"]))
    if code == "buyer_limit_exceeded":
        return buyer_limit(int(details["limit"]), int(details["held_or_bought"]), int(details["requested"]))
    raise ValueError(f"unknown refusal {code!r}")


# ---- views and the sale -----------------------------------------------------------------------------------------


def hold_view(
    hold_id: str, buyer_id: str, seats: Sequence[str], ticket_type: str, quantity: int,
    units: Sequence[int], expires_at: float, status: str,
) -> HoldView:
    return HoldView(hold_id, buyer_id, tuple(seats), ticket_type, quantity, tuple(units), expires_at, status)


def sale_view(
    hold_id: str, buyer_id: str, order_ref: str, ticket_type: str, seats: Sequence[str], units: Sequence[int]
) -> SaleView:
    """The engine's sale: ``sal_<hold suffix>``, tickets ``tkt_<hold suffix>_<n>`` in seat or unit order."""
    tickets = [TicketView(ticket_id_of_hold(hold_id, n), ticket_type, seat, None) for n, seat in enumerate(seats, 1)]
    tickets += [TicketView(ticket_id_of_hold(hold_id, n), ticket_type, None, unit) for n, unit in enumerate(units, 1)]
    return SaleView(sale_id_of_hold(hold_id), hold_id, buyer_id, order_ref, tuple(tickets))


# One statement for the sale and its tickets: the tickets' foreign keys are checked at its end, and a sale that
# already exists (a retried confirm) inserts nothing, so the caller learns the truth from the row count.
_INSERT_SALE_SQL = """
WITH sale AS (
    INSERT INTO sales (id, org_id, event_id, hold_id, buyer_id, order_ref, epoch)
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id
)
INSERT INTO tickets (id, org_id, event_id, sale_id, ordinal, ticket_type, seat_id, unit, capacity)
SELECT t.id, $2, $3, sale.id, t.ordinal, $8, t.seat_id, t.unit, $9
FROM sale, unnest($10::text[], $11::int[], $12::text[], $13::int[]) AS t (id, ordinal, seat_id, unit)
RETURNING sale_id
"""


async def insert_sale(db: OrgDb, shape: EventShape, sale: SaleView) -> bool:
    """Insert the sale and its tickets; False when the hold already has a sale (nothing inserted)."""
    if db.org_id != shape.org_id:
        raise ValueError("a sale goes into its event's org")
    ticket_type = sale.tickets[0].ticket_type
    rows = await db.conn.fetch(
        _INSERT_SALE_SQL,
        sale.sale_id, shape.org_id, shape.event_id, sale.hold_id, sale.buyer_id, sale.order_ref, BASELINE_EPOCH,
        ticket_type, shape.ga_capacity.get(ticket_type),
        [t.ticket_id for t in sale.tickets], list(range(1, len(sale.tickets) + 1)),
        [t.seat_id for t in sale.tickets], [t.unit for t in sale.tickets],
    )
    return bool(rows)


def seat_counts(shape: EventShape, held: int, sold: int) -> tuple[TicketTypeCounts, ...]:
    """The seated type's counts row (first, as the engine lists it), or nothing for a GA-only event."""
    if shape.seated_type is None:
        return ()
    total = len(shape.seat_ids)
    return (TicketTypeCounts(shape.seated_type, total, total - held - sold, held, sold),)


def bitmap_without(seats_total: int, taken: Sequence[int]) -> bytes:
    """Bit i (MSB first) is 1 when seat i is available; padding bits are 0, as the engine writes them."""
    if not seats_total:
        return b""
    bitmap = bytearray(b"\xff" * (seats_total // 8))
    if seats_total % 8:
        bitmap.append((0xFF << (8 - seats_total % 8)) & 0xFF)
    for index in taken:
        bitmap[index // 8] &= ~(0x80 >> (index % 8)) & 0xFF
    return bytes(bitmap)


async def stop_task(task: asyncio.Future[None] | None) -> None:
    """Cancels a background task (a baseline's sweeper) and waits until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def running(task: asyncio.Future[None] | None) -> bool:
    return task is not None and not task.done()
