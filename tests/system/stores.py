"""Read the truth straight from the stores (never from the platform's answers) for the system tests' audits."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis

from engine.ids import event_id_of_hold
from persistence.inventory import redis_keys


async def event_org(database_url: str, event_id: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        org_id: str = await conn.fetchval("SELECT org_id FROM events WHERE id = $1", event_id)
    finally:
        await conn.close()
    return org_id


async def sold_tickets(database_url: str, event_id: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            "SELECT s.id AS sale_id, s.hold_id, t.seat_id, t.ticket_type, t.unit FROM tickets t"
            " JOIN sales s ON s.id = t.sale_id WHERE t.event_id = $1 AND t.status = 'live'",
            event_id,
        )
    finally:
        await conn.close()


async def redis_available_seats(redis_url: str, org_id: str, event_id: str, seats_total: int) -> set[int]:
    redis = Redis.from_url(redis_url)
    try:
        bitmap = await redis.get(redis_keys.availability_bitmap(org_id, event_id)) or b""
    finally:
        await redis.aclose()
    return {i for i in range(seats_total) if bitmap[i // 8] & (0x80 >> (i % 8))}


async def redis_live_holds(redis_url: str, org_id: str, event_id: str) -> int:
    redis = Redis.from_url(redis_url)
    try:
        return int(await redis.hlen(redis_keys.holds(org_id, event_id)))
    finally:
        await redis.aclose()


async def sale_audit_entries(database_url: str, org_id: str, event_id: str) -> list[asyncpg.Record]:
    """The event's sale.create entries (sale id, who confirmed, from where), oldest first."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT object_id AS sale_id, after->>'hold_id' AS hold_id, actor_type, actor_id, ip FROM audit_log"
            " WHERE org_id = $1 AND action = 'sale.create' ORDER BY seq",
            org_id,
        )
    finally:
        await conn.close()
    # the system tests' org is shared by their events: keep this event's sales (a hold id names its event)
    return [row for row in rows if event_id_of_hold(row["hold_id"]) == event_id]
