"""The event lifecycle's writes: status moves (the organizer's, the timer's, the inventory's), the schedule and the
sale limits an organizer edits, a live GA type's capacity, and the catalog timer's lease and scan.

Every move is a compare-and-set on the status it was decided from, and bumps the event's revision (the order of
its metas). Which moves are allowed is engine/catalog/lifecycle.py's to decide, before calling; Postgres repeats
the set in its trigger (004_event_lifecycle.sql). Fencing: the inventory's moves and capacity writes carry its
epoch (as its sales do); the timer's writes carry its lease's epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.catalog.lifecycle import EventStatus
from engine.catalog.presales import SaleSchedule
from persistence.catalog import events as pg_events
from persistence.db import Connection
from persistence.tenancy import OrgDb

# The event columns an organizer may edit (PATCH /v1/events/{id}); presales is written as JSON.
EDITABLE_COLUMNS = (
    "name", "starts_at", "sale_opens_at", "sale_closes_at", "hold_ttl_s", "max_tickets_per_buyer", "presales"
)
TIMER_LEASE = "catalog-timer"


class Fenced(Exception):
    """The writer's epoch (an inventory's, or the timer's lease) is no longer the current one: it must stop."""


async def move(db: OrgDb, event: pg_events.EventRecord, to: EventStatus) -> pg_events.EventRecord | None:
    """``event`` moved to ``to`` if it is still in the status it was read in (else None). Cancelling also fences
    out the inventory's incarnation (events.move_status)."""
    return await pg_events.move_status(db, event, to)


async def move_fenced(
    db: OrgDb, event_id: str, before: EventStatus, to: EventStatus, *, inventory_epoch: int
) -> pg_events.EventRecord | None:
    """The inventory's own move (sold_out in and out): only while its epoch is current and the event is still
    ``before``; None otherwise (another move came first, or the incarnation is fenced out: both mean "do nothing")."""
    row = await db.conn.fetchrow(
        "UPDATE events SET status = $3, revision = revision + 1 "
        "WHERE org_id = $1 AND id = $2 AND status = $4 AND inventory_epoch = $5 "
        f"RETURNING {pg_events.EVENT_COLUMNS}",
        db.org_id,
        event_id,
        to.value,
        before.value,
        inventory_epoch,
    )
    return await pg_events.record_of_row(db, row)


@dataclass(frozen=True)
class EventPatch:
    """Column -> new value, for the columns given (``EDITABLE_COLUMNS``; None clears a nullable one)."""

    values: Mapping[str, Any]


async def patch(db: OrgDb, event_id: str, changes: EventPatch) -> pg_events.EventRecord | None:
    """The event with ``changes`` applied (and its revision bumped); None when the org has no such event."""
    assert changes.values and set(changes.values) <= set(EDITABLE_COLUMNS), changes.values
    columns = sorted(changes.values)
    sets = ", ".join(
        f"{column} = ${i}::jsonb" if column == "presales" else f"{column} = ${i}"
        for i, column in enumerate(columns, 3)
    )
    values = [
        pg_events.presales_json(changes.values[c]) if c == "presales" else changes.values[c] for c in columns
    ]
    row = await db.conn.fetchrow(
        f"UPDATE events SET {sets}, revision = revision + 1 WHERE org_id = $1 AND id = $2 "
        f"RETURNING {pg_events.EVENT_COLUMNS}",
        db.org_id,
        event_id,
        *values,
    )
    return await pg_events.record_of_row(db, row)


async def lock_event(db: OrgDb, event_id: str) -> pg_events.EventRecord | None:
    """The event, its row locked until the transaction ends (a patch decides on what it read). NO KEY UPDATE: it
    queues every other writer of the row, but not the inserts whose foreign key points at the event (they take KEY
    SHARE): a promo code being added holds its event's price list row and then checks that key, while a price
    change holds the event row and then waits for the price list row (FOR UPDATE here would deadlock the two)."""
    row = await db.conn.fetchrow(
        f"SELECT {pg_events.EVENT_COLUMNS} FROM events WHERE org_id = $1 AND id = $2 FOR NO KEY UPDATE",
        db.org_id,
        event_id,
    )
    return await pg_events.record_of_row(db, row)


async def set_capacity(db: OrgDb, event_id: str, code: str, capacity: int, *, inventory_epoch: int) -> None:
    """A GA type's new capacity (its units_max grows with it), written by the event's inventory under its epoch;
    raises Fenced when that epoch is stale. The event's revision moves too: its meta lists capacities."""
    current = await db.conn.fetchval(
        "SELECT inventory_epoch FROM events WHERE id = $1 AND org_id = $2 FOR UPDATE", event_id, db.org_id
    )
    if current != inventory_epoch:
        raise Fenced(f"event {event_id}: epoch {inventory_epoch} is fenced out (current {current})")
    updated = await db.conn.execute(
        "UPDATE ticket_types SET capacity = $4, units_max = greatest(units_max, $4) "
        "WHERE org_id = $1 AND event_id = $2 AND code = $3 AND kind = 'ga'",
        db.org_id,
        event_id,
        code,
        capacity,
    )
    if updated != "UPDATE 1":
        raise Fenced(f"event {event_id} has no GA type {code}: memory and Postgres disagree")
    await db.conn.execute(
        "UPDATE events SET revision = revision + 1 WHERE id = $1 AND org_id = $2", event_id, db.org_id
    )


async def set_capacity_of_draft(db: OrgDb, event_id: str, code: str, capacity: int) -> None:
    """A draft's GA type's capacity (nothing is held or sold before publishing: any value within bounds)."""
    await db.conn.execute(
        "UPDATE ticket_types SET capacity = $4, units_max = greatest(units_max, $4) "
        "WHERE org_id = $1 AND event_id = $2 AND code = $3 AND kind = 'ga'",
        db.org_id,
        event_id,
        code,
        capacity,
    )
    await db.conn.execute(
        "UPDATE events SET revision = revision + 1 WHERE id = $1 AND org_id = $2", event_id, db.org_id
    )


# ---- the catalog timer -------------------------------------------------------------------------------------


async def take_timer_lease(conn: Connection, name: str = TIMER_LEASE) -> int:
    """A new epoch for a new incarnation of the timer (waits for the writes of older ones holding the lease row)."""
    epoch: int = await conn.fetchval(
        "INSERT INTO catalog_timer_leases (name, epoch) VALUES ($1, 1) "
        "ON CONFLICT (name) DO UPDATE SET epoch = catalog_timer_leases.epoch + 1, taken_at = now() RETURNING epoch",
        name,
    )
    return epoch


async def check_timer_lease(db: OrgDb, epoch: int, name: str = TIMER_LEASE) -> None:
    """In the timer's write transaction: hold the lease row FOR SHARE and raise Fenced unless ``epoch`` is current."""
    current = await db.conn.fetchval("SELECT epoch FROM catalog_timer_leases WHERE name = $1 FOR SHARE", name)
    if current != epoch:
        raise Fenced(f"the catalog timer's epoch {epoch} is fenced out (current {current})")


@dataclass(frozen=True)
class TimedEvent:
    org_id: str
    event_id: str
    status: str
    schedule: SaleSchedule


async def timed_events(conn: Connection, limit: int) -> list[TimedEvent]:
    """Every event with a timed move or presale pending, with its status and schedule, across orgs (the caller's
    transaction is ``unscoped``: the timer serves every org), at most ``limit``, soonest first."""
    rows = await conn.fetch(
        "SELECT org_id, id, status, sale_opens_at, sale_closes_at, presales::text AS presales FROM events "
        "WHERE status IN ('published', 'on_sale', 'paused', 'sold_out') "
        "AND (sale_opens_at IS NOT NULL OR sale_closes_at IS NOT NULL OR jsonb_array_length(presales) > 0) "
        "ORDER BY least(CASE WHEN status = 'published' THEN sale_opens_at END, sale_closes_at) NULLS LAST, id "
        "LIMIT $1",
        limit,
    )
    return [
        TimedEvent(
            row["org_id"],
            row["id"],
            row["status"],
            pg_events.schedule_of(
                row["sale_opens_at"], row["sale_closes_at"], pg_events.presales_of_json(row["presales"])
            ),
        )
        for row in rows
    ]

