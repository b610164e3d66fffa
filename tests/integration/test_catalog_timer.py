"""The catalog timer (actors/catalog_timer.py TimerCore) and the lifecycle's store on real Postgres and Redis:

- a timed move fires when its time comes (time moved by the test, FakeClock), audited as the timer's, its meta
  shared and its inventory activated;
- a restart across a due time still fires it: the new incarnation plans from Postgres and fires the missed time
  at once, and the old incarnation is fenced out (its lease epoch is stale);
- a sale window opening and closing moves the event within a second, on the wall clock;
- Postgres's trigger accepts exactly the lifecycle's moves (engine/catalog/lifecycle.py stored_moves), pair by pair.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.catalog_timer import TimerCore, TimerFenced
from engine.catalog import rules as catalog
from engine.catalog.lifecycle import EventStatus, stored_moves
from persistence import audit
from persistence.access.orgs import create_org
from persistence.catalog import event_metas
from persistence.catalog import events as pg_events
from persistence.db import connect, create_pool
from persistence.tenancy import TenantPool
from services.catalog import events as catalog_use_cases
from services.catalog import lifecycle as catalog_lifecycle
from services.unit_of_work import UnitsOfWork
from tests.bounded_wait import until
from tests.fakes.clock import FakeClock

ACTOR = audit.Actor("key", "key_timer_test", "192.0.2.9")
S = EventStatus


class Ports:
    """SharedEvents and Activations: what the use cases called."""

    def __init__(self) -> None:
        self.activated: list[str] = []
        self.shared: list[tuple[str, str]] = []

    async def share_record(self, record: pg_events.EventRecord) -> None:
        self.shared.append((record.id, record.status))

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        self.activated.append(event_id)

    async def changed(self, org_id: str, event_id: str) -> None:
        return None


@pytest.fixture
async def tenants(database_url: str) -> AsyncIterator[TenantPool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield TenantPool(pool)
    await pool.close()


@pytest.fixture
async def org_id(database_url: str) -> str:
    conn = await connect(database_url)
    try:
        org, _ = await create_org(conn, "Timer")
    finally:
        await conn.close()
    return org


def definition() -> catalog.EventDefinition:
    return catalog.EventDefinition(
        name="Timed", starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC), hold_ttl_s=600, max_tickets_per_buyer=4,
        layout=None, ticket_types=(catalog.TicketType("GA", "ga", 10, catalog.Price(100, "ZAR")),),
    )


async def published(tenants: TenantPool, org_id: str, ports: Ports, opens: datetime, closes: datetime) -> str:
    units = UnitsOfWork(tenants)
    record = await catalog_use_cases.create_event(units, ports, org_id, ACTOR, definition(), None)
    await catalog_lifecycle.patch_event(
        units, ports, ports, ports, org_id, ACTOR, record.id, {"sale_opens_at": opens, "sale_closes_at": closes}
    )
    await catalog_lifecycle.transition(units, ports, ports, ports, org_id, ACTOR, record.id, "published")
    return record.id


async def status_of(tenants: TenantPool, org_id: str, event_id: str) -> str:
    async with tenants.tenant(org_id) as db:
        record = await pg_events.get_event(db, event_id)
    assert record is not None
    return record.status


async def test_a_timed_move_fires_at_its_time_and_is_the_timers(
    tenants: TenantPool, org_id: str, redis: Redis
) -> None:
    ports = Ports()
    opens = datetime.now(UTC) + timedelta(hours=1)
    event_id = await published(tenants, org_id, ports, opens, opens + timedelta(hours=1))
    clock = FakeClock(start=opens.timestamp() - 10)
    core = TimerCore(tenants, redis, ports, clock=clock)
    await core.start()
    assert core.planned_at(org_id, event_id) == opens.timestamp()
    await core.fire_due()  # (other tests' events share the database: counts would be theirs too)
    assert await status_of(tenants, org_id, event_id) == S.PUBLISHED
    clock.advance(10)
    assert await core.fire_due() >= 1
    assert await status_of(tenants, org_id, event_id) == S.ON_SALE
    assert ports.activated[-1] == event_id
    meta = await event_metas.get_event_meta(redis, org_id, event_id)
    assert meta is not None and meta["status"] == S.ON_SALE  # every gateway process learns it
    clock.advance(3_600)
    assert await core.fire_due() >= 1
    assert await status_of(tenants, org_id, event_id) == S.CLOSED
    async with tenants.tenant(org_id) as db:
        moves = await audit.query(db, action=catalog_lifecycle.EVENT_TRANSITION, object_id=event_id, limit=10)
    assert [(m.entry.actor_type, m.entry.actor_id, (m.entry.after or {})["status"]) for m in reversed(moves)] == [
        ("key", ACTOR.id, "published"), ("system", "catalog-timer", "on_sale"), ("system", "catalog-timer", "closed")
    ]


async def test_a_restart_across_a_due_time_still_fires_it(tenants: TenantPool, org_id: str, redis: Redis) -> None:
    ports = Ports()
    opens = datetime.now(UTC) + timedelta(hours=2)
    event_id = await published(tenants, org_id, ports, opens, opens + timedelta(hours=1))
    clock = FakeClock(start=opens.timestamp() - 60)
    first = TimerCore(tenants, redis, ports, clock=clock)
    await first.start()
    await first.fire_due()
    assert await status_of(tenants, org_id, event_id) == S.PUBLISHED
    # The timer goes down; the due time passes while it is down; a new incarnation starts.
    clock.advance(120)
    second = TimerCore(tenants, redis, ports, clock=clock)
    await second.start()
    assert second.epoch is not None and first.epoch is not None and second.epoch > first.epoch
    assert second.planned_at(org_id, event_id) == opens.timestamp()  # planned from Postgres, already past
    assert await second.fire_due() >= 1
    assert await status_of(tenants, org_id, event_id) == S.ON_SALE
    # The old incarnation (a zombie that missed its own death) is fenced out when it tries to write.
    clock.advance(3_600)
    with pytest.raises(TimerFenced):
        await first.fire_due()
    assert await status_of(tenants, org_id, event_id) == S.ON_SALE
    assert await second.fire_due() >= 1
    assert await status_of(tenants, org_id, event_id) == S.CLOSED


async def test_a_sale_window_moves_the_event_within_a_second(tenants: TenantPool, org_id: str, redis: Redis) -> None:
    ports = Ports()
    core = TimerCore(tenants, redis, ports)
    await core.start()
    runner = asyncio.ensure_future(core.run_forever())
    try:
        opens = datetime.now(UTC) + timedelta(seconds=1.5)
        closes = opens + timedelta(seconds=1.5)
        event_id = await published(tenants, org_id, ports, opens, closes)
        await core.changed(org_id, event_id)  # what the gateway's after-commit step does
        seen: dict[str, float] = {}

        async def watch() -> None:
            while len(seen) < 2:
                status = await status_of(tenants, org_id, event_id)
                if status in (S.ON_SALE, S.CLOSED):
                    seen.setdefault(status, time.time())
                await asyncio.sleep(0.02)

        await asyncio.wait_for(watch(), 10)
        assert 0 <= seen[S.ON_SALE] - opens.timestamp() <= 1.0, seen
        assert 0 <= seen[S.CLOSED] - closes.timestamp() <= 1.0, seen
        await until(lambda: len(core.fired) >= 2)
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_the_store_accepts_exactly_the_lifecycles_moves(
    tenants: TenantPool, org_id: str, database_url: str
) -> None:
    record = await catalog_use_cases.create_event(UnitsOfWork(tenants), Ports(), org_id, ACTOR, definition(), None)
    conn = await asyncpg.connect(database_url)  # the superuser: it may put the event anywhere to start from
    try:
        for before, after in itertools.product(EventStatus, EventStatus):
            if before == after:
                continue
            async with conn.transaction():
                await conn.execute("SET LOCAL session_replication_role = replica")  # triggers off: place it
                await conn.execute(
                    "UPDATE events SET status = $2, published_at = CASE WHEN $2 = 'draft' THEN NULL ELSE now() END "
                    "WHERE id = $1",
                    record.id,
                    before.value,
                )
            accepted = True
            try:
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE events SET status = $2, "
                        "published_at = CASE WHEN $2 = 'draft' THEN NULL ELSE coalesce(published_at, now()) END "
                        "WHERE id = $1",
                        record.id,
                        after.value,
                    )
            except asyncpg.CheckViolationError:
                accepted = False
            assert accepted == ((before, after) in stored_moves()), (before, after)
    finally:
        await conn.close()
