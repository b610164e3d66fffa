"""Seeding the integration tests share: an org and one event of 100 GA units in it, straight through persistence."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from persistence.access.orgs import create_org
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event
from persistence.tenancy import org_transaction


async def org_and_event(pool: asyncpg.Pool, org_name: str, event_name: str) -> tuple[str, str]:
    """(org id, event id) of a new org named ``org_name`` and its event named ``event_name``: 100 GA units at
    150.00 ZAR, on 2026-12-31."""
    async with pool.acquire() as conn:
        org_id, _ = await create_org(conn, org_name)
        new = NewEvent(
            name=event_name, starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC), hold_ttl_s=600,
            max_tickets_per_buyer=10, seating=None, seat_ids=(),
            ticket_types=(TicketTypeRecord("GA", "ga", 100, 15_000, "ZAR"),),
        )  # fmt: skip
        async with org_transaction(conn, org_id) as db:
            event = await create_event(db, new)
    return org_id, event.id
