"""The catalog's use cases (services/catalog/events.py) on a real database: what they write, what they audit, in which
order they call their ports, and publishing under concurrency (exactly one publish reports the move)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from engine.catalog import rules as catalog
from engine.catalog import seating
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.access.orgs import create_org
from persistence.catalog import events as pg_events
from persistence.db import connect, create_pool
from persistence.tenancy import TenantPool
from services.catalog import events as catalog_use_cases
from services.unit_of_work import UnitsOfWork

ACTOR = audit.Actor("key", "key_catalog_test", "192.0.2.7")
concurrent_publishes = 4
lock_wait_poll_s = 0.01
lock_wait_polls_max = 500  # 5 s


class Ports:
    """SharedEvents and Activations both: what was called, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bool]] = []

    async def share_record(self, record: pg_events.EventRecord) -> None:
        self.calls.append(("share", record.id, record.status == "on_sale"))

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        self.calls.append(("activate", event_id, dedicated))


@pytest.fixture
async def tenants(database_url: str) -> AsyncIterator[TenantPool]:
    pool = await create_pool(database_url, min_size=1, max_size=concurrent_publishes)
    yield TenantPool(pool)
    await pool.close()


@pytest.fixture
async def org_id(database_url: str) -> str:
    conn = await connect(database_url)
    try:
        org, _ = await create_org(conn, "Catalog Use Cases")
    finally:
        await conn.close()
    return org


def definition(*, dedicated: bool = False) -> catalog.EventDefinition:
    return catalog.EventDefinition(
        name="Use Case Live",
        starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
        hold_ttl_s=600,
        max_tickets_per_buyer=4,
        layout=(seating.Section("A", (seating.Row("1", 3),)),),
        ticket_types=(catalog.TicketType("SEAT", "seated", None, catalog.Price(30_000, "ZAR")),),
        dedicated=dedicated,
    )


async def entries(tenants: TenantPool, org_id: str, action: str, event_id: str) -> list[audit.AuditRow]:
    async with tenants.tenant(org_id) as db:
        return await audit.query(db, action=action, object_id=event_id, limit=100)


async def draft(tenants: TenantPool, org_id: str, ports: Ports, *, dedicated: bool = False) -> str:
    record = await catalog_use_cases.create_event(
        UnitsOfWork(tenants), ports, org_id, ACTOR, definition(dedicated=dedicated), None
    )
    return record.id


async def test_create_audits_in_its_transaction_then_shares(tenants: TenantPool, org_id: str) -> None:
    ports = Ports()
    event_id = await draft(tenants, org_id, ports)
    [created] = await entries(tenants, org_id, "event.create", event_id)
    assert created.entry.after == {
        "name": "Use Case Live",
        "starts_at": "2026-12-31T18:00:00Z",
        "status": "draft",
        "dedicated": False,
        "seat_count": 3,
        "ticket_types": ["SEAT"],
    }
    assert ports.calls == [("share", event_id, False)]


async def test_publish_moves_once_then_shares_and_activates(tenants: TenantPool, org_id: str) -> None:
    ports = Ports()
    event_id = await draft(tenants, org_id, ports, dedicated=True)
    units = UnitsOfWork(tenants)
    first = await catalog_use_cases.publish_event(units, ports, ports, org_id, ACTOR, event_id)
    again = await catalog_use_cases.publish_event(units, ports, ports, org_id, ACTOR, event_id)
    assert first.status == again.status == "on_sale" and first.published_at == again.published_at
    [published] = await entries(tenants, org_id, "event.publish", event_id)  # the retry audits nothing
    assert published.entry.before == {"status": "draft"}
    assert published.entry.after == {"status": "on_sale", "published_at": pg_events.audit_time(first.published_at)}
    after_create = ports.calls[1:]
    assert after_create == [("share", event_id, True), ("activate", event_id, True)] * 2


async def test_concurrent_publishes_report_one_move(tenants: TenantPool, org_id: str) -> None:
    ports = Ports()
    event_id = await draft(tenants, org_id, ports)
    units = UnitsOfWork(tenants)
    records = await asyncio.gather(
        *(
            catalog_use_cases.publish_event(units, ports, ports, org_id, ACTOR, event_id)
            for _ in range(concurrent_publishes)
        )
    )
    assert {(r.status, r.published_at) for r in records} == {("on_sale", records[0].published_at)}
    assert len(await entries(tenants, org_id, "event.publish", event_id)) == 1


async def test_a_publish_that_loses_the_race_reads_again_and_audits_nothing(
    database_url: str, tenants: TenantPool, org_id: str
) -> None:
    """Another transaction puts the event on sale between this publish's read and its update: the update finds
    the event moved, and the read that follows decides (unchanged)."""
    ports = Ports()
    event_id = await draft(tenants, org_id, ports)
    admin, observer = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        other = admin.transaction()
        await other.start()
        await admin.execute("UPDATE events SET status = 'on_sale', published_at = now() WHERE id = $1", event_id)
        publish = asyncio.create_task(
            catalog_use_cases.publish_event(UnitsOfWork(tenants), ports, ports, org_id, ACTOR, event_id)
        )
        await until_an_update_waits(observer)
        await other.commit()
        record = await publish
    finally:
        await admin.close()
        await observer.close()
    assert record.status == "on_sale"
    assert await entries(tenants, org_id, "event.publish", event_id) == []


async def until_an_update_waits(observer: asyncpg.Connection) -> None:
    """Until some backend's UPDATE of events waits for a lock: Postgres shows it, where a sleep would only guess.
    ``observer`` is in no transaction of its own (pg_stat_activity stays as first read inside one)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE events SET "
        "status%'"
    )
    for _ in range(lock_wait_polls_max):
        if await observer.fetchval(query):
            return
        await asyncio.sleep(lock_wait_poll_s)
    raise AssertionError("no publish ever waited for the row")


async def test_unknown_and_hidden_events_are_not_found(tenants: TenantPool, org_id: str) -> None:
    ports = Ports()
    event_id = await draft(tenants, org_id, ports)
    assert (await catalog_use_cases.get_event(tenants, org_id, event_id, on_sale_only=False)).id == event_id
    for wanted, on_sale_only in ((event_id, True), ("evt_" + "0" * 32, False), ("not-an-id", False)):
        with pytest.raises(Refused) as refused:
            await catalog_use_cases.get_event(tenants, org_id, wanted, on_sale_only=on_sale_only)
        assert refused.value.refusal is Refusal.EVENT_NOT_FOUND and refused.value.details == {"event_id": wanted}
    with pytest.raises(Refused) as refused:
        await catalog_use_cases.publish_event(UnitsOfWork(tenants), ports, ports, org_id, ACTOR, "evt_" + "1" * 32)
    assert refused.value.refusal is Refusal.EVENT_NOT_FOUND
    assert ports.calls == [("share", event_id, False)]  # a refused publish calls no port
