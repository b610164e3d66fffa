"""Baseline 1, "the way a plain web app does it": every hold, release and confirm is ONE Postgres transaction.

Run it as ``uvicorn loadtests.baselines.postgres:create_app --factory`` (or ``voelgoed up`` with
``VOELGOED_GATEWAY_APP=loadtests.baselines.postgres:create_app``). It is our gateway with this inventory plugged in.

Why each choice is what a typical team would do:
- A row per seat and ``SELECT ... FOR UPDATE`` on the requested rows, ordered by seat index: the textbook way to
  make "all or nothing" safe without deadlocks. A seat whose hold has expired simply counts as free, so seat holds
  need no sweeper.
- GA is a counter row per ticket type with a conditional decrement (``available >= q``): the usual way to sell
  "N left" without a row per unit. Expired GA holds go back by a per-process sweeper and, so a refusal is never
  caused by a hold that is already dead, by a bounded reclaim in the hold's own transaction before it refuses.
- The buyer limit sums the buyer's live holds and sales under a per-(event, buyer) advisory lock: the common way
  to serialise "check, then insert" for one user without a table lock.
- The confirm writes the platform's ``sales`` and ``tickets`` rows in the same transaction, so the schema's unique
  indexes defend this mode exactly as they defend the engine.
- One asyncpg pool per worker process (asyncpg prepares and caches each statement), acquired within a bounded
  time; statements are merged with CTEs so a hold costs five round trips including BEGIN and COMMIT.
- Availability is read from Postgres on every request, which is what a plain web app does.

The transactions themselves are in postgres_tx.py; this module is the InventoryClient, the availability and the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from redis.asyncio import Redis
from starlette.applications import Starlette

from engine.inventory.commands import Command, HoldView, Result
from gateway.app import create_app as create_gateway
from gateway.availability import AvailabilityCache
from gateway.errors import storage_outage_as_503
from gateway.inventory_errors import InventoryUnavailable
from loadtests.baselines import common, postgres_tx
from loadtests.baselines.common import EventShape
from persistence.db import Connection, connect_timeout_s, create_pool
from persistence.inventory.live_state import AvailabilityView, TicketTypeCounts
from persistence.tenancy import org_transaction
from services.inventory.holds import HoldCopies
from voelgoed.settings import Settings

log = logging.getLogger(__name__)

pool_connections_min = 4
pool_connections_max = 20
pool_acquire_s_max = 2.0
sweep_interval_s = 0.5
shapes_cached_max = 10_000
SCHEMA_PATH = Path(__file__).with_name("postgres.sql")
SCHEMA_LOCK_KEY = 0x766C_6270  # serialises CREATE ... IF NOT EXISTS across workers starting together

# The version is the snapshot's xmax, which rises with every committed write and stays put between writes.
_SEATS_VIEW_SQL = """
SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS version,
       EXISTS (SELECT 1 FROM bl_pg_events WHERE event_id = $1) AS active,
       ARRAY(SELECT seat_index FROM bl_pg_seats WHERE event_id = $1 AND sold) AS sold,
       ARRAY(SELECT seat_index FROM bl_pg_seats
             WHERE event_id = $1 AND NOT sold AND hold_id IS NOT NULL AND hold_expires_at > $2) AS held
"""
# Due GA holds the sweeper has not reached yet are shown as available, as the engine shows them.
_GA_VIEW_SQL = """
SELECT g.code, g.capacity, g.available + coalesce(d.n, 0) AS available, g.held - coalesce(d.n, 0) AS held, g.sold
FROM bl_pg_ga g LEFT JOIN (
    SELECT ticket_type, sum(quantity)::int AS n FROM bl_pg_holds
    WHERE status = 'held' AND is_ga AND expires_at <= $2 AND event_id = $1 GROUP BY ticket_type
) d ON d.ticket_type = g.code
WHERE g.event_id = $1
"""


async def read_view(conn: Connection, shape: EventShape, now: float) -> AvailabilityView | None:
    seats = await conn.fetchrow(_SEATS_VIEW_SQL, shape.event_id, now)
    if not seats["active"]:
        return None
    ga = {row["code"]: row for row in await conn.fetch(_GA_VIEW_SQL, shape.event_id, now)}
    held, sold = seats["held"], seats["sold"]
    types = common.seat_counts(shape, len(held), len(sold)) + tuple(
        TicketTypeCounts(code, ga[code]["capacity"], ga[code]["available"], ga[code]["held"], ga[code]["sold"])
        for code in shape.ga_capacity
        if code in ga
    )
    total = len(shape.seat_ids)
    bitmap = common.bitmap_without(total, [*held, *sold])
    return AvailabilityView(seats["version"], total, total - len(held) - len(sold), bitmap, types)


async def store_availability(conn: Connection, org_id: str, event_id: str) -> AvailabilityView | None:
    """The availability this baseline's tables hold now (the harness audit reads it)."""
    async with org_transaction(conn, org_id) as db:
        shape = await common.load_shape(db, event_id)
    if shape is None:
        return None
    return await read_view(conn, shape, time.time())


# ---- the InventoryClient and the app -------------------------------------------------------------------------------


class PostgresInventory:
    """An InventoryClient (gateway.inventory_client) whose every command is one Postgres transaction."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self._shapes: dict[tuple[str, str], EventShape] = {}
        self._sweeper: asyncio.Future[None] | None = None

    async def start(self) -> None:
        await _create_schema(self._database_url)
        self._pool = await create_pool(
            self._database_url, min_size=pool_connections_min, max_size=pool_connections_max
        )
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def close(self) -> None:
        await common.stop_task(self._sweeper)
        if self._pool is not None:
            await self._pool.close()

    async def ready(self) -> bool:
        return self._pool is not None and common.running(self._sweeper)

    # One store serves every event here: the placement (``dedicated``) picks nothing.
    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        async with self._connection() as conn:
            await postgres_tx.activate_event(conn, org_id, event_id)

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        async with self._connection() as conn:
            shape = await self.shape(conn, org_id, event_id)
            if shape is None:
                return common.NOT_ON_SALE
            return await postgres_tx.apply(conn, shape, command, time.time())

    async def hold_copy(self, event_id: str, hold_id: str) -> HoldView | None:
        async with self._connection() as conn:
            return await postgres_tx.hold_copy(conn, event_id, hold_id)

    async def availability(self, org_id: str, event_id: str) -> AvailabilityView | None:
        async with self._connection() as conn:
            shape = await self.shape(conn, org_id, event_id)
            return None if shape is None else await read_view(conn, shape, time.time())

    async def shape(self, conn: Connection, org_id: str, event_id: str) -> EventShape | None:
        """The event's shape (cached: it never changes once on sale), or None unless it is this org's, on sale."""
        shape = self._shapes.get((org_id, event_id))
        if shape is None:
            async with org_transaction(conn, org_id) as db:
                shape = await common.load_shape(db, event_id)
            if shape is None:
                return None
            # an event published before this process started, or before the baseline ran, is activated here
            await postgres_tx.activate_event(conn, org_id, event_id)
            if len(self._shapes) >= shapes_cached_max:
                self._shapes.clear()
            self._shapes[(org_id, event_id)] = shape
        return shape

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        assert self._pool is not None, "start() first"
        try:
            with storage_outage_as_503():
                async with self._pool.acquire(timeout=pool_acquire_s_max) as conn:
                    yield conn
        except asyncpg.TransactionRollbackError as error:  # a deadlock or serialization failure: retry is safe
            raise InventoryUnavailable() from error

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(sweep_interval_s)
            try:
                async with self._connection() as conn:
                    await postgres_tx.sweep(conn, time.time())
            except Exception as error:  # a failed pass is retried by the next one
                log.warning("postgres baseline sweep failed: %r", error)


async def _create_schema(database_url: str) -> None:
    """Create the baseline's tables as the URL's own user: the platform's role (voelgoed_app, which every pooled
    connection acts as) may read and write tables, not create them. postgres.sql grants it its tables."""
    conn = await asyncpg.connect(database_url, timeout=connect_timeout_s)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", SCHEMA_LOCK_KEY)
            await conn.execute(SCHEMA_PATH.read_text())
    finally:
        await conn.close()


class PostgresHolds(HoldCopies):
    """Checkout reads a live hold from this baseline's hold rows (its store is Postgres: no Redis copy)."""

    def __init__(self, inventory: PostgresInventory) -> None:
        self._inventory = inventory

    async def read(self, org_id: str, event_id: str, hold_id: str) -> HoldView | None:
        return await self._inventory.hold_copy(event_id, hold_id)


class PostgresAvailability(AvailabilityCache):
    """Availability read from Postgres on every request; no live deltas (a websocket gets its snapshot)."""

    def __init__(self, inventory: PostgresInventory, redis: Redis) -> None:
        super().__init__(redis)
        self._inventory = inventory

    async def get(self, org_id: str, event_id: str) -> AvailabilityView | None:
        return await self._inventory.availability(org_id, event_id)

    async def listen(self) -> None:
        await asyncio.Event().wait()  # nothing is published: idle until the app cancels it


def create_app(settings: Settings | None = None) -> Starlette:
    """The uvicorn factory: our gateway serving this baseline's inventory."""
    settings = common.orders_worker_here(settings or Settings.from_env())
    inventory = PostgresInventory(settings.database_url)
    return create_gateway(
        settings,
        inventory=inventory,
        availability=lambda pool, redis, listener_redis: PostgresAvailability(inventory, redis),
        holds=lambda redis: PostgresHolds(inventory),
    )
