"""Reads what the audit compares, straight from Postgres, the inventory's store and the availability endpoint."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Iterable

import aiohttp
import asyncpg
from redis.asyncio import Redis

from loadtests.flashsale.audit import Counts, InventoryView, LiveTicket, held
from loadtests.flashsale.scenario import SEATED_CODE
from persistence.inventory import live_state
from persistence.inventory.live_state import AvailabilityView, TicketTypeCounts

settle_poll_s = 0.5
settle_margin_s = 15.0  # past the hold TTL: the engine's expiry sweep and the baselines' reclaim run this often


# The truth readers connect straight with the URL's own (super)user, never through persistence.db (whose
# connections act as voelgoed_app under row-level security): an auditor must see every row there is, whatever
# org it carries, or a row written under a wrong org could hide from the very check meant to find it.


async def live_tickets(database_url: str, event_id: str) -> list[LiveTicket]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT t.sale_id, s.hold_id, t.ticket_type, t.seat_id, t.unit FROM tickets t"
            " JOIN sales s ON s.id = t.sale_id WHERE t.event_id = $1 AND t.status = 'live'",
            event_id,
        )
    finally:
        await conn.close()
    return [LiveTicket(r["sale_id"], r["hold_id"], r["ticket_type"], r["seat_id"], r["unit"]) for r in rows]


async def store_view(mode: str, database_url: str, redis_url: str, org_id: str, event_id: str) -> InventoryView | None:
    """The inventory store's own state: Redis for the engine and redis-lua, the baseline's tables for postgres."""
    if mode == "postgres":
        import loadtests.baselines.postgres as pg_baseline

        conn = await asyncpg.connect(database_url)
        try:
            found = await pg_baseline.store_availability(conn, org_id, event_id)
        finally:
            await conn.close()
    else:
        redis = Redis.from_url(redis_url)
        try:
            if mode == "redis-lua":
                import loadtests.baselines.redis_lua as redis_lua

                found = await redis_lua.store_availability(redis, org_id, event_id)
            else:
                found = await live_state.read_availability(redis, org_id, event_id)
        finally:
            await redis.aclose()
    return None if found is None else _from_view(found)


async def endpoint_view(http: aiohttp.ClientSession, event_id: str) -> InventoryView | None:
    """None when the endpoint did not answer 200 with a readable body (the audit then fails: nothing compared)."""
    try:
        async with http.get(f"/v1/events/{event_id}/availability") as answer:
            if answer.status != 200:
                return None
            body = await answer.json()
        counts = [TicketTypeCounts(t["code"], t["capacity"], t["available"], t["held"], t["sold"])
                  for t in body["ticket_types"]]
        return _view(base64.b64decode(body["seats"]["bitmap"]), counts)
    except (TimeoutError, aiohttp.ClientError, ValueError, KeyError, TypeError):
        return None


async def settle(http: aiohttp.ClientSession, event_id: str, hold_ttl_s: int,
                 held_allowed: Callable[[], Awaitable[int]] | None = None) -> float:
    """Waits (bounded) until nothing is held any more, or no more than ``held_allowed()`` says may be (the holds
    of open orders, --checkout); the seconds waited."""
    started = time.monotonic()
    deadline = started + hold_ttl_s + settle_margin_s
    while time.monotonic() < deadline:
        units = held(await endpoint_view(http, event_id))
        if units is not None and units <= (await held_allowed() if held_allowed else 0):
            break
        await asyncio.sleep(settle_poll_s)
    return time.monotonic() - started



def _from_view(view: AvailabilityView) -> InventoryView:
    return _view(view.bitmap, view.ticket_types)


def _view(bitmap: bytes, counts: Iterable[TicketTypeCounts]) -> InventoryView:
    seated: Counts | None = None
    ga: dict[str, Counts] = {}
    for c in counts:
        numbers = Counts(c.capacity, c.available, c.held, c.sold)
        if c.code == SEATED_CODE:
            seated = numbers
        else:
            ga[c.code] = numbers
    return InventoryView(bitmap, seated, ga)
