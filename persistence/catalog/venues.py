"""Venues: where an org's events take place, each with its seating layouts (persistence/catalog/layouts.py).

Every function takes an ``OrgDb``: row-level security hides every other org's rows, and each query also
filters by ``db.org_id``, so another org's venue id reads as unknown.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.ids import VENUE_PREFIX, venue_hex_chars
from persistence.tenancy import OrgDb

_COLUMNS = "id, name, timezone, address, created_at"
venues_listed_max = 1_000


@dataclass(frozen=True)
class NewVenue:
    name: str
    timezone: str  # an IANA zone name, checked by the gateway
    address: str | None


@dataclass(frozen=True)
class VenueRecord:
    id: str
    name: str
    timezone: str
    address: str | None
    created_at: datetime


def _venue(row: asyncpg.Record) -> VenueRecord:
    return VenueRecord(row["id"], row["name"], row["timezone"], row["address"], row["created_at"])


def audit_view(venue: VenueRecord) -> dict[str, object]:
    return {"name": venue.name, "timezone": venue.timezone, "address": venue.address}


async def create_venue(db: OrgDb, new: NewVenue) -> VenueRecord:
    venue_id = VENUE_PREFIX + secrets.token_hex(venue_hex_chars // 2)
    row = await db.conn.fetchrow(
        f"INSERT INTO venues (id, org_id, name, timezone, address) VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
        venue_id,
        db.org_id,
        new.name,
        new.timezone,
        new.address,
    )
    return _venue(row)


async def get_venue(db: OrgDb, venue_id: str) -> VenueRecord | None:
    row = await db.conn.fetchrow(f"SELECT {_COLUMNS} FROM venues WHERE org_id = $1 AND id = $2", db.org_id, venue_id)
    return None if row is None else _venue(row)


async def list_venues(db: OrgDb, limit: int = venues_listed_max) -> list[VenueRecord]:
    """The org's venues, oldest first (at most ``limit``)."""
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM venues WHERE org_id = $1 ORDER BY created_at, id LIMIT $2", db.org_id, limit
    )
    return [_venue(row) for row in rows]
