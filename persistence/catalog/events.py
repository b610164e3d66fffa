"""Events with their seats and ticket types: created as drafts, published once, then owned by one inventory.

Every function takes an ``OrgDb`` (persistence/tenancy.py): its transaction is bound to the org, so row-level
security hides every other org's rows, and each query also filters by ``db.org_id`` (defence in depth). Another
org's event id therefore reads as unknown.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import asyncpg

from engine.catalog import presales as sale_schedule
from engine.catalog import rules as catalog
from engine.catalog.lifecycle import EventStatus
from engine.catalog.rules import TicketKind
from engine.ids import EVENT_PREFIX, event_hex_chars
from engine.inventory.best_available import SeatGeometry
from engine.inventory.machine import InventorySpec
from persistence.tenancy import OrgDb

_EVENT_COLUMNS = (
    "id, org_id, name, starts_at, hold_ttl_s, max_tickets_per_buyer, status, dedicated, "
    "seating::text AS seating, seat_count, created_at, published_at, layout_id, "
    "sale_opens_at, sale_closes_at, presales::text AS presales, revision"
)
_TICKET_TYPES_SQL = (
    "SELECT code, kind, capacity, price_minor, currency, zone, units_max FROM ticket_types "
    "WHERE org_id = $1 AND event_id = $2 ORDER BY position"
)
_SEAT_IDS_SQL = (
    "SELECT coalesce(array_agg(seat_id ORDER BY seat_index), '{}') FROM seats WHERE org_id = $1 AND event_id = $2"
)
seats_inserted_per_statement_max = 20_000
_SEAT_TYPES_SQL = (
    "SELECT coalesce(array_agg(ticket_type ORDER BY seat_index), '{}') FROM seats "
    "WHERE org_id = $1 AND event_id = $2"
)


@dataclass(frozen=True)
class TicketTypeRecord:
    code: str
    kind: str  # a catalog.TicketKind
    capacity: int  # seated: the number of seats
    price_minor: int
    currency: str
    zone: str | None = None  # seated, on a layout: the zone whose seats it sells
    units_max: int = 0  # GA: the highest capacity the type ever had (units are 1..units_max); 0: its capacity


@dataclass(frozen=True)
class PresaleRecord:
    code: str
    opens_at: datetime
    closes_at: datetime
    buyer_ids: tuple[str, ...] | None = None


@dataclass(frozen=True)
class NewEvent:
    name: str
    starts_at: datetime
    hold_ttl_s: int
    max_tickets_per_buyer: int
    seating: dict[str, Any] | None
    seat_ids: tuple[str, ...]
    ticket_types: tuple[TicketTypeRecord, ...]
    dedicated: bool = False
    # per seat, the seated type selling it (None: blocked); empty: every seat is the one seated type's
    seat_types: tuple[str | None, ...] = ()
    layout_id: str | None = None


@dataclass(frozen=True)
class EventRecord:
    id: str
    org_id: str
    name: str
    starts_at: datetime
    hold_ttl_s: int
    max_tickets_per_buyer: int
    status: str  # a lifecycle.EventStatus
    dedicated: bool
    seating: dict[str, Any] | None
    seat_count: int
    ticket_types: tuple[TicketTypeRecord, ...]
    created_at: datetime
    published_at: datetime | None
    layout_id: str | None = None
    sale_opens_at: datetime | None = None
    sale_closes_at: datetime | None = None
    presales: tuple[PresaleRecord, ...] = ()
    revision: int = 0  # bumped by every change of the event's meta (004_event_lifecycle.sql)

    def schedule(self) -> sale_schedule.SaleSchedule:
        """The sale schedule as the engine's rules read it (epoch seconds)."""
        return schedule_of(self.sale_opens_at, self.sale_closes_at, self.presales)


def schedule_of(
    sale_opens_at: datetime | None, sale_closes_at: datetime | None, presales: tuple[PresaleRecord, ...]
) -> sale_schedule.SaleSchedule:
    return sale_schedule.SaleSchedule(
        _seconds(sale_opens_at),
        _seconds(sale_closes_at),
        tuple(
            sale_schedule.Presale(
                p.code, p.opens_at.timestamp(), p.closes_at.timestamp(),
                None if p.buyer_ids is None else frozenset(p.buyer_ids),
            )
            for p in presales
        ),
    )


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def presales_json(presales: tuple[PresaleRecord, ...]) -> str:
    """The presales as events.presales stores them."""
    return json.dumps(
        [
            {"code": p.code, "opens_at": audit_time(p.opens_at), "closes_at": audit_time(p.closes_at)}
            | ({} if p.buyer_ids is None else {"buyer_ids": list(p.buyer_ids)})
            for p in presales
        ]
    )


def presales_of_json(raw: str | None) -> tuple[PresaleRecord, ...]:
    return tuple(
        PresaleRecord(
            p["code"], datetime.fromisoformat(p["opens_at"]), datetime.fromisoformat(p["closes_at"]),
            None if p.get("buyer_ids") is None else tuple(p["buyer_ids"]),
        )
        for p in json.loads(raw or "[]")
    )


@dataclass(frozen=True)
class EventSeats:
    """An event's seat ids in index order, and per seat the seated type selling it (None: blocked)."""

    ids: tuple[str, ...]
    types: tuple[str | None, ...]


def new_event(
    event: catalog.StockedEvent, seating: dict[str, Any] | None, layout_id: str | None = None
) -> NewEvent:
    """What to store of a stocked event; ``seating`` is the layout as the organizer gave it, kept as JSON, or
    ``layout_id`` the venue layout it is made on."""
    return NewEvent(
        name=event.name,
        starts_at=event.starts_at,
        hold_ttl_s=event.hold_ttl_s,
        max_tickets_per_buyer=event.max_tickets_per_buyer,
        seating=seating,
        seat_ids=event.seat_ids,
        ticket_types=tuple(
            TicketTypeRecord(t.code, t.kind, t.capacity or 0, t.price.amount_minor, t.price.currency, t.zone)
            for t in event.ticket_types
        ),
        dedicated=event.dedicated,
        seat_types=event.seat_types,
        layout_id=layout_id,
    )


def _stocked(new: NewEvent) -> catalog.StockedEvent:
    return catalog.StockedEvent(
        name=new.name,
        starts_at=new.starts_at,
        hold_ttl_s=new.hold_ttl_s,
        max_tickets_per_buyer=new.max_tickets_per_buyer,
        seat_ids=new.seat_ids,
        ticket_types=tuple(
            catalog.TicketType(t.code, t.kind, t.capacity, catalog.Price(t.price_minor, t.currency), zone=t.zone)
            for t in new.ticket_types
        ),
        dedicated=new.dedicated,
        seat_types=new.seat_types,
    )


class EventRejected(ValueError):
    """A new event the catalog's rules refuse."""


def check_new_event(new: NewEvent) -> None:
    """Refuse (EventRejected) an event the catalog's rules refuse: the gateway refuses it first, so this is a
    caller's bug, stopped before anything is written."""
    problems = catalog.stocked_problems(_stocked(new))
    if problems:
        raise EventRejected(catalog.describe(problems))


def audit_time(moment: datetime | None) -> str | None:
    """A time as the audit log keeps an event's: RFC 3339 in UTC, 'Z'-suffixed, as the API shows it."""
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def audit_view(record: EventRecord) -> dict[str, Any]:
    """What the audit log keeps of an event: the fields a person reviewing the log needs, no seat list."""
    return {
        "name": record.name,
        "starts_at": audit_time(record.starts_at),
        "status": record.status,
        "dedicated": record.dedicated,
        "seat_count": record.seat_count,
        "ticket_types": [t.code for t in record.ticket_types],
    }


def _ticket_type(row: asyncpg.Record) -> TicketTypeRecord:
    return TicketTypeRecord(
        row["code"], row["kind"], row["capacity"], row["price_minor"], row["currency"], row["zone"], row["units_max"]
    )


def _event(row: asyncpg.Record, ticket_types: tuple[TicketTypeRecord, ...]) -> EventRecord:
    return EventRecord(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        starts_at=row["starts_at"],
        hold_ttl_s=row["hold_ttl_s"],
        max_tickets_per_buyer=row["max_tickets_per_buyer"],
        status=row["status"],
        dedicated=row["dedicated"],
        seating=None if row["seating"] is None else json.loads(row["seating"]),
        seat_count=row["seat_count"],
        ticket_types=ticket_types,
        created_at=row["created_at"],
        published_at=row["published_at"],
        layout_id=row["layout_id"],
        sale_opens_at=row["sale_opens_at"],
        sale_closes_at=row["sale_closes_at"],
        presales=presales_of_json(row["presales"]),
        revision=row["revision"],
    )


async def _with_ticket_types(db: OrgDb, row: asyncpg.Record | None) -> EventRecord | None:
    if row is None:
        return None
    types = tuple(_ticket_type(r) for r in await db.conn.fetch(_TICKET_TYPES_SQL, db.org_id, row["id"]))
    return _event(row, types)


async def create_event(db: OrgDb, new: NewEvent) -> EventRecord:
    """Insert a draft event, its ticket types and its seats in one transaction (a savepoint of db's)."""
    check_new_event(new)
    conn, org_id = db.conn, db.org_id
    event_id = EVENT_PREFIX + secrets.token_hex(event_hex_chars // 2)
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO events (id, org_id, name, starts_at, hold_ttl_s, max_tickets_per_buyer, seating, "
            "seat_count, dedicated, layout_id) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10) "
            f"RETURNING {_EVENT_COLUMNS}",
            event_id,
            org_id,
            new.name,
            new.starts_at,
            new.hold_ttl_s,
            new.max_tickets_per_buyer,
            None if new.seating is None else json.dumps(new.seating),
            len(new.seat_ids),
            new.dedicated,
            new.layout_id,
        )
        await conn.executemany(
            "INSERT INTO ticket_types (org_id, event_id, code, position, kind, capacity, price_minor, "
            "currency, zone) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (org_id, event_id, t.code, position, t.kind, t.capacity, t.price_minor, t.currency, t.zone)
                for position, t in enumerate(new.ticket_types)
            ],
        )
        if new.seat_ids:
            # One statement for all seats. Not COPY: Postgres refuses COPY FROM into a table with row-level
            # security for a role it applies to. WITH ORDINALITY numbers them from 1, the index from 0.
            seated = [t.code for t in new.ticket_types if t.kind == TicketKind.SEATED]
            seat_types = new.seat_types or (seated[0],) * len(new.seat_ids)
            # In chunks, so that no one statement nears the command timeout on a loaded machine (100,000 seats
            # with their indexes and the ticket type's foreign key take seconds).
            for start in range(0, len(new.seat_ids), seats_inserted_per_statement_max):
                end = start + seats_inserted_per_statement_max
                await conn.execute(
                    "INSERT INTO seats (org_id, event_id, seat_id, seat_index, ticket_type) "
                    "SELECT $1, $2, seat_id, (n - 1 + $5)::int, ticket_type "
                    "FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS s(seat_id, ticket_type, n)",
                    org_id,
                    event_id,
                    list(new.seat_ids[start:end]),
                    list(seat_types[start:end]),
                    start,
                )
    # as read back: a new type's units_max is its capacity (the insert trigger's default)
    return _event(row, tuple(replace(t, units_max=max(t.units_max, t.capacity)) for t in new.ticket_types))


async def get_event(db: OrgDb, event_id: str) -> EventRecord | None:
    """The org's event, or None when it is unknown or belongs to another org."""
    row = await db.conn.fetchrow(
        f"SELECT {_EVENT_COLUMNS} FROM events WHERE org_id = $1 AND id = $2", db.org_id, event_id
    )
    return await _with_ticket_types(db, row)


@dataclass(frozen=True)
class Published:
    event: EventRecord
    changed: bool  # False when the event was already on sale (nothing happened, nothing to audit)


async def publish_event(db: OrgDb, event_id: str) -> Published | None:
    """Put a draft on sale (an event already on sale stays as it is); None when the org has no such event.

    A concurrent publish waits for the row and then finds it on sale: exactly one of them reports a change.
    """
    row = await db.conn.fetchrow(
        "UPDATE events SET status = $3, published_at = now(), revision = revision + 1 "
        f"WHERE org_id = $1 AND id = $2 AND status = $4 RETURNING {_EVENT_COLUMNS}",
        db.org_id,
        event_id,
        EventStatus.ON_SALE.value,
        EventStatus.DRAFT.value,
    )
    if row is not None:
        record = await _with_ticket_types(db, row)
        assert record is not None
        return Published(record, changed=True)
    existing = await get_event(db, event_id)
    return None if existing is None else Published(existing, changed=False)


async def move_status(db: OrgDb, event: EventRecord, status: EventStatus) -> EventRecord | None:
    """``event`` moved to ``status`` (going on sale stamps published_at), if it is still in the status it was read
    in; None when it is not (or the org has no such event). Which moves are allowed is the lifecycle's
    (engine/catalog/lifecycle.py) to decide, before calling this.

    The conditional UPDATE is a compare-and-set: a concurrent move waits for the row, then finds it in another
    status and changes nothing, so of two concurrent moves from one status exactly one reports a change.
    """
    row = await db.conn.fetchrow(
        "UPDATE events SET status = $3, revision = revision + 1, "
        "published_at = CASE WHEN $3 = $5 THEN NULL WHEN $3 = $6 THEN published_at "
        "ELSE coalesce(published_at, now()) END, "
        # cancelling fences out the inventory's current incarnation: no sale commits after the cancellation
        "inventory_epoch = inventory_epoch + CASE WHEN $3 = $6 THEN 1 ELSE 0 END "
        f"WHERE org_id = $1 AND id = $2 AND status = $4 RETURNING {_EVENT_COLUMNS}",
        db.org_id,
        event.id,
        status.value,
        event.status,
        EventStatus.DRAFT.value,
        EventStatus.CANCELLED.value,
    )
    return None if row is None else _event(row, event.ticket_types)  # a move changes no ticket type


async def list_seat_ids(db: OrgDb, event_id: str) -> tuple[str, ...] | None:
    """The event's seat ids in index order (the bitmap's order); None when the org has no such event."""
    row = await db.conn.fetchrow(
        "SELECT (SELECT coalesce(array_agg(seat_id ORDER BY seat_index), '{}') FROM seats "
        "WHERE org_id = e.org_id AND event_id = e.id) FROM events e WHERE e.org_id = $1 AND e.id = $2",
        db.org_id,
        event_id,
    )
    return None if row is None else tuple(row[0])


async def take_inventory_epoch(db: OrgDb, event_id: str) -> tuple[int, EventRecord, EventSeats] | None:
    """For a new incarnation of the event's inventory: a fresh epoch (fencing out every older incarnation),
    the event and its seats (ids and ticket types). None when the org has no such event or it is a draft (and then
    no epoch moves: a call naming the wrong org cannot fence out the real owner).

    The UPDATE waits for any write_sales holding the event row FOR SHARE, so once this returns no older
    incarnation can commit another sale.
    """
    conn = db.conn
    async with conn.transaction():
        row = await conn.fetchrow(
            "UPDATE events SET inventory_epoch = inventory_epoch + 1 "
            "WHERE org_id = $1 AND id = $2 AND status <> $3 "
            f"RETURNING inventory_epoch, {_EVENT_COLUMNS}",
            db.org_id,
            event_id,
            EventStatus.DRAFT.value,  # every status but draft has an inventory (lifecycle.has_inventory)
        )
        event = await _with_ticket_types(db, row)
        if row is None or event is None:
            return None
        seat_ids = tuple(await conn.fetchval(_SEAT_IDS_SQL, db.org_id, event_id))
        seat_types = tuple(await conn.fetchval(_SEAT_TYPES_SQL, db.org_id, event_id))
    return row["inventory_epoch"], event, EventSeats(seat_ids, seat_types)


async def get_event_seats(db: OrgDb, event_id: str) -> EventSeats | None:
    """The event's seats (ids and ticket types) in index order; None when the org has no such event."""
    exists = await db.conn.fetchval("SELECT EXISTS (SELECT FROM events WHERE org_id = $1 AND id = $2)", db.org_id,
                                    event_id)
    if not exists:
        return None
    seat_ids = tuple(await db.conn.fetchval(_SEAT_IDS_SQL, db.org_id, event_id))
    seat_types = tuple(await db.conn.fetchval(_SEAT_TYPES_SQL, db.org_id, event_id))
    return EventSeats(seat_ids, seat_types)



def inventory_spec(
    event: EventRecord, seats: EventSeats | tuple[str, ...], geometry: SeatGeometry | None = None
) -> InventorySpec:
    """The inventory of ``event`` over its seats (ids alone: every seat is the one seated type's); ``geometry``:
    where its seats are, for best available (None: read from the seat ids)."""
    seated = [t.code for t in event.ticket_types if t.kind == TicketKind.SEATED]
    seat_ids, seat_types = (seats.ids, seats.types) if isinstance(seats, EventSeats) else (seats, ())
    one_type = len(seated) == 1 and all(code == seated[0] for code in seat_types)
    return InventorySpec(
        event_id=event.id,
        seat_ids=seat_ids,
        seated_type=seated[0] if seated else None,
        seat_types=() if one_type else seat_types,
        ga_capacity=tuple((t.code, t.capacity) for t in event.ticket_types if t.kind == TicketKind.GA),
        ga_units_max=tuple(
            (t.code, t.units_max) for t in event.ticket_types if t.kind == TicketKind.GA and t.units_max > t.capacity
        ),
        hold_ttl_s=event.hold_ttl_s,
        max_tickets_per_buyer=event.max_tickets_per_buyer,
        geometry=geometry,
    )


# For the catalog's other stores (persistence/catalog/lifecycle.py): the columns an EventRecord reads, and a row
# of them made into one, with its ticket types.
EVENT_COLUMNS = _EVENT_COLUMNS


async def record_of_row(db: OrgDb, row: asyncpg.Record | None) -> EventRecord | None:
    return await _with_ticket_types(db, row)
