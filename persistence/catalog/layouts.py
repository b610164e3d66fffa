"""Seating layouts: a venue's zones and seats, stored once and never changed (events copy the seats).

A layout is written in one statement per table (arrays unnested: COPY is refused into a table with row-level
security), and read back whole, in index order, as the engine's ``Layout`` (engine/catalog/layouts.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from engine.catalog.layouts import Layout, LayoutSeat, Zone
from engine.ids import LAYOUT_PREFIX, layout_hex_chars
from persistence.tenancy import OrgDb

seats_inserted_per_statement_max = 20_000


@dataclass(frozen=True)
class LayoutRecord:
    id: str
    venue_id: str
    layout: Layout
    created_at: datetime


def audit_view(record: LayoutRecord) -> dict[str, object]:
    """What the audit log keeps of a layout: its name, size and zones, no seat list."""
    return {
        "venue_id": record.venue_id,
        "name": record.layout.name,
        "seat_count": len(record.layout.seats),
        "zones": list(record.layout.zone_codes()),
    }


async def create_layout(db: OrgDb, venue_id: str, layout: Layout) -> LayoutRecord:
    """Insert the layout, its zones and its seats (in a savepoint of db's transaction). The venue must be the
    org's (a foreign key refuses another org's)."""
    conn, org_id = db.conn, db.org_id
    layout_id = LAYOUT_PREFIX + secrets.token_hex(layout_hex_chars // 2)
    seats = layout.seats
    async with conn.transaction():
        created_at = await conn.fetchval(
            "INSERT INTO layouts (id, org_id, venue_id, name, seat_count) VALUES ($1, $2, $3, $4, $5) "
            "RETURNING created_at",
            layout_id,
            org_id,
            venue_id,
            layout.name,
            len(seats),
        )
        if layout.zones:
            await conn.execute(
                "INSERT INTO layout_zones (org_id, layout_id, position, code, name) "
                "SELECT $1, $2, (n - 1)::int, code, name FROM unnest($3::text[], $4::text[]) "
                "WITH ORDINALITY AS z(code, name, n)",
                org_id,
                layout_id,
                [zone.code for zone in layout.zones],
                [zone.name for zone in layout.zones],
            )
        # attributes travel as one ';'-joined string per seat (unnest cannot take an array of arrays of
        # different lengths); the names have no ';' (engine/catalog/layouts.py SeatAttribute). In chunks, so
        # that no one statement nears the command timeout on a loaded machine.
        for start in range(0, len(seats), seats_inserted_per_statement_max):
            chunk = seats[start : start + seats_inserted_per_statement_max]
            await conn.execute(
                "INSERT INTO layout_seats (org_id, layout_id, seat_index, section, row_label, number, x, y, zone, "
                "attributes) SELECT $1, $2, (n - 1 + $10)::int, section, row_label, number, x, y, zone, "
                "CASE WHEN attributes = '' THEN '{}'::text[] ELSE string_to_array(attributes, ';') END "
                "FROM unnest($3::text[], $4::text[], $5::int[], $6::float8[], $7::float8[], $8::text[], $9::text[]) "
                "WITH ORDINALITY AS s(section, row_label, number, x, y, zone, attributes, n)",
                org_id,
                layout_id,
                [s.section for s in chunk],
                [s.row for s in chunk],
                [s.number for s in chunk],
                [s.x for s in chunk],
                [s.y for s in chunk],
                [s.zone for s in chunk],
                [";".join(s.attributes) for s in chunk],
                start,
            )
    return LayoutRecord(layout_id, venue_id, layout, created_at)


async def get_layout(db: OrgDb, layout_id: str) -> LayoutRecord | None:
    """The org's layout with every seat in index order, or None when unknown or another org's."""
    conn, org_id = db.conn, db.org_id
    row = await conn.fetchrow(
        "SELECT venue_id, name, created_at FROM layouts WHERE org_id = $1 AND id = $2", org_id, layout_id
    )
    if row is None:
        return None
    zones = await conn.fetch(
        "SELECT code, name FROM layout_zones WHERE org_id = $1 AND layout_id = $2 ORDER BY position",
        org_id,
        layout_id,
    )
    seats = await conn.fetch(
        "SELECT section, row_label, number, x, y, zone, attributes FROM layout_seats "
        "WHERE org_id = $1 AND layout_id = $2 ORDER BY seat_index",
        org_id,
        layout_id,
    )
    layout = Layout(
        row["name"],
        tuple(Zone(z["code"], z["name"]) for z in zones),
        tuple(
            LayoutSeat(s["section"], s["row_label"], s["number"], s["x"], s["y"], s["zone"], tuple(s["attributes"]))
            for s in seats
        ),
    )
    return LayoutRecord(layout_id, row["venue_id"], layout, row["created_at"])


@dataclass(frozen=True)
class LayoutSummary:
    id: str
    name: str
    seat_count: int
    created_at: datetime


async def list_layouts(db: OrgDb, venue_id: str) -> list[LayoutSummary]:
    """The venue's layouts, oldest first, without their seats."""
    rows = await db.conn.fetch(
        "SELECT id, name, seat_count, created_at FROM layouts WHERE org_id = $1 AND venue_id = $2 "
        "ORDER BY created_at, id",
        db.org_id,
        venue_id,
    )
    return [LayoutSummary(r["id"], r["name"], r["seat_count"], r["created_at"]) for r in rows]
