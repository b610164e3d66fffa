"""Price changes after an event's creation, on real Postgres and Redis (services/catalog/lifecycle.py
``change_ticket_type`` and ``patch_event``): the change and its audit entry commit together, every process's price
cache (two here, each its own Redis clients and subscription: what two gateway processes hold) quotes the new prices
within a second of the announcement, quotes still work from Redis with Postgres gone, and a refused change
(422, 409 on an ended event, another org's event) changes nothing anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from engine.catalog import pricing
from engine.catalog import rules as catalog
from engine.catalog.price_changes import RulesChange, TypePriceChange
from engine.catalog.rules import Price
from engine.inventory.commands import Command, Result
from engine.refusals import Refusal, Refused
from gateway.price_cache import PriceCache
from persistence import audit
from persistence.access.orgs import create_org
from persistence.catalog import events as pg_events
from persistence.catalog import prices as pg_prices
from persistence.db import connect, create_pool
from persistence.outages import POSTGRES_OUTAGES
from persistence.tenancy import TenantPool
from services.catalog import events as catalog_cases
from services.catalog import lifecycle as catalog_lifecycle
from services.catalog import pricing as pricing_cases
from services.unit_of_work import UnitsOfWork
from tests.bounded_wait import until

ACTOR = audit.Actor("key", "key_price_change_test", "192.0.2.10")
DEAD_DATABASE_URL = "postgresql://voelgoed@127.0.0.1:1/nothing"
announcement_s_max = 1.0  # the bound: every process quotes the new prices within a second
concurrent_changes = 12
FAR = datetime(2099, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)
ITEMS = [pricing.Item("GA", 2), pricing.Item("VIP", 1)]


class Ports:
    """SharedEvents, Activations and Schedules: nothing to do here (no inventory: the events stay drafts or end)."""

    async def share_record(self, record: pg_events.EventRecord) -> None:
        return None

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        return None

    async def changed(self, org_id: str, event_id: str) -> None:
        return None


class NoInventory:
    """A draft's capacity is Postgres's alone: the inventory must not be asked."""

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        raise AssertionError(f"a draft's change reached the inventory: {command}")


@dataclass
class Process:
    """One gateway process's price cache, on its own Redis clients (its subscription included)."""

    cache: PriceCache
    redis: Redis
    listener: Redis
    task: asyncio.Task[None]


@pytest.fixture
async def tenants(database_url: str) -> AsyncIterator[TenantPool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    yield TenantPool(pool)
    await pool.close()


async def _process(tenants: TenantPool, redis_url: str) -> Process:
    redis, listener = Redis.from_url(redis_url), Redis.from_url(redis_url)
    cache = PriceCache(tenants, redis, listener_redis=listener)
    task = asyncio.create_task(cache.listen())
    await until(lambda: cache._listening)
    return Process(cache, redis, listener, task)


@pytest.fixture
async def processes(tenants: TenantPool, clean_redis: str) -> AsyncIterator[list[Process]]:
    made = [await _process(tenants, clean_redis) for _ in range(2)]
    yield made
    for process in made:
        process.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await process.task
        await process.redis.aclose()
        await process.listener.aclose()


async def _org(database_url: str, name: str) -> str:
    conn = await connect(database_url)
    try:
        org, _ = await create_org(conn, name)
    finally:
        await conn.close()
    return org


@pytest.fixture
async def org_id(database_url: str) -> str:
    return await _org(database_url, "Price Changes")


def definition() -> catalog.EventDefinition:
    return catalog.EventDefinition(
        name="Repriced",
        starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
        hold_ttl_s=600,
        max_tickets_per_buyer=10,
        layout=None,
        ticket_types=(
            catalog.TicketType(
                "GA", "ga", 1_000, Price(15_000, "ZAR"), price_tiers=(pricing.PriceTier(FAR, 12_000, "ZAR"),)
            ),
            catalog.TicketType("VIP", "ga", 100, Price(50_000, "ZAR")),
        ),
        fees=(pricing.Fee("BOOKING", "ticket", amount_minor=500),),
        tax=pricing.Tax("VAT", 1_500, False),
    )


async def _event(tenants: TenantPool, process: Process, org_id: str) -> str:
    record = await catalog_cases.create_event(
        UnitsOfWork(tenants), Ports(), org_id, ACTOR, definition(), None, prices=process.cache
    )
    return record.id


async def _quote(process: Process, org_id: str, event_id: str) -> pricing.Quote:
    return await pricing_cases.quote(process.cache, org_id, event_id, "buyer-1", ITEMS, None, NOW)


async def change_type(
    tenants: TenantPool, process: Process, org_id: str, event_id: str, change: TypePriceChange,
    capacity: int | None = None,
) -> pg_events.EventRecord:
    return await catalog_lifecycle.change_ticket_type(
        UnitsOfWork(tenants), Ports(), process.cache, NoInventory(), org_id, ACTOR, event_id, change.code, capacity,
        change, "capacity:test",
    )


async def patch(
    tenants: TenantPool, process: Process, org_id: str, event_id: str, values: dict[str, Any], rules: RulesChange
) -> pg_events.EventRecord:
    ports = Ports()
    return await catalog_lifecycle.patch_event(
        UnitsOfWork(tenants), ports, ports, ports, org_id, ACTOR, event_id, values,
        prices=rules, shared_prices=process.cache,
    )


@dataclass(frozen=True)
class Stored:
    postgres: pricing.PriceList
    redis: pricing.PriceList | None
    audited: int
    capacities: tuple[int, ...]


async def stored(tenants: TenantPool, redis: Redis, org_id: str, event_id: str) -> Stored:
    async with tenants.tenant(org_id) as db:
        prices = await pg_prices.load_price_list(db, event_id)
        entries = await audit.query(db, limit=1_000)
        record = await pg_events.get_event(db, event_id)
    assert prices is not None and record is not None
    shared = await pg_prices.get_price_list(redis, org_id, event_id)
    return Stored(prices, shared, len(entries), tuple(t.capacity for t in record.ticket_types))


async def _entries(tenants: TenantPool, org_id: str, action: str) -> list[audit.AuditRow]:
    async with tenants.tenant(org_id) as db:
        return await audit.query(db, action=action, limit=100)


# ---- a change reaches every process -------------------------------------------------------------------------


async def test_a_price_change_is_seen_by_the_next_quote_in_every_process(
    tenants: TenantPool, processes: list[Process], org_id: str
) -> None:
    a, b = processes
    event_id = await _event(tenants, a, org_id)
    for process in processes:  # both now hold version 1 in memory
        first = await _quote(process, org_id, event_id)
        assert (first.lines[0].amount_minor, first.price_list_version) == (24_000, 1)
    assert b.cache._lists.get((org_id, event_id)) is not None
    change = TypePriceChange("GA", price=Price(20_000, "ZAR"), tiers=())
    await change_type(tenants, a, org_id, event_id, change)
    changed_at = time.monotonic()
    mine = await _quote(a, org_id, event_id)  # the changing process: at once
    assert (mine.lines[0].amount_minor, mine.price_list_version) == (40_000, 2)
    await until(lambda: b.cache._lists.get((org_id, event_id)) is None, within_s=announcement_s_max)
    theirs = await _quote(b, org_id, event_id)
    assert time.monotonic() - changed_at < announcement_s_max
    assert (theirs.lines[0].amount_minor, theirs.price_list_version) == (40_000, 2)
    assert theirs.total_minor == mine.total_minor
    # A quote given before is a snapshot: it still says what it said (nothing re-prices it).
    assert first.lines[0].amount_minor == 24_000


async def test_a_type_change_and_its_audit_entry_commit_together(
    tenants: TenantPool, processes: list[Process], org_id: str, database_url: str
) -> None:
    a = processes[0]
    event_id = await _event(tenants, a, org_id)
    tiers = (pricing.PriceTier(FAR - timedelta(days=30), 9_000, "ZAR"), pricing.PriceTier(FAR, 11_000, "ZAR"))
    record = await change_type(tenants, a, org_id, event_id, TypePriceChange("GA", tiers=tiers), capacity=700)
    assert [(t.code, t.capacity, t.price_minor) for t in record.ticket_types] == [
        ("GA", 700, 15_000), ("VIP", 100, 50_000),
    ]
    [entry] = await _entries(tenants, org_id, "ticket_type.price")
    assert (entry.entry.object_type, entry.entry.object_id) == ("ticket_type", f"{event_id}/GA")
    assert (entry.entry.actor_type, entry.entry.actor_id, entry.entry.ip) == ("key", ACTOR.id, ACTOR.ip)
    assert entry.entry.before == {
        "price_tiers": [{"until": "2099-01-01T00:00:00Z", "price": {"amount_minor": 12_000, "currency": "ZAR"}}]
    }
    assert entry.entry.after == {
        "price_tiers": [
            {"until": "2098-12-02T00:00:00Z", "price": {"amount_minor": 9_000, "currency": "ZAR"}},
            {"until": "2099-01-01T00:00:00Z", "price": {"amount_minor": 11_000, "currency": "ZAR"}},
        ]
    }
    assert len(await _entries(tenants, org_id, "ticket_type.capacity")) == 1
    now = await stored(tenants, a.redis, org_id, event_id)
    assert now.postgres.ticket_types["GA"].tiers == tiers and now.postgres.version == 2
    assert now.redis == now.postgres  # shared as stored
    async with tenants.tenant(org_id) as db:
        verified = await audit.verify(db, org_id)
    assert verified.ok, verified
    # The same change again changes nothing: no new version, no new entry.
    await change_type(tenants, a, org_id, event_id, TypePriceChange("GA", tiers=tiers))
    again = await stored(tenants, a.redis, org_id, event_id)
    assert (again.postgres.version, again.audited) == (2, now.audited)


async def test_fees_tax_and_event_fields_change_in_one_audited_transaction(
    tenants: TenantPool, processes: list[Process], org_id: str
) -> None:
    a, b = processes
    event_id = await _event(tenants, a, org_id)
    await _quote(b, org_id, event_id)
    fees = (pricing.Fee("SERVICE", "order", percent_bp=1_000),)
    record = await patch(tenants, a, org_id, event_id, {"name": "Renamed"}, RulesChange(fees, True, None))
    assert record.name == "Renamed"
    [entry] = await _entries(tenants, org_id, "event.update")
    assert entry.entry.before == {
        "name": "Repriced",
        "fees": [{"code": "BOOKING", "per": "ticket", "amount_minor": 500, "percent_bp": None}],
        "tax": {"code": "VAT", "rate_bp": 1_500, "included": False},
    }
    assert entry.entry.after == {
        "name": "Renamed", "fees": [{"code": "SERVICE", "per": "order", "amount_minor": None, "percent_bp": 1_000}],
        "tax": None,
    }
    await until(lambda: b.cache._lists.get((org_id, event_id)) is None, within_s=announcement_s_max)
    theirs = await _quote(b, org_id, event_id)
    assert [(x.kind, x.code, x.amount_minor) for x in theirs.lines] == [
        ("ticket", "GA", 24_000), ("ticket", "VIP", 50_000), ("fee", "SERVICE", 7_400),
    ]
    assert (theirs.tax_minor, theirs.total_minor, theirs.price_list_version) == (0, 81_400, 2)
    # Fees only, then a tax again: each its own version.
    await patch(tenants, a, org_id, event_id, {}, RulesChange(tax_given=True, tax=pricing.Tax("VAT", 1_500, True)))
    await patch(tenants, a, org_id, event_id, {}, RulesChange(fees=()))
    final = await stored(tenants, a.redis, org_id, event_id)
    assert (final.postgres.fees, final.postgres.tax, final.postgres.version) == ((), pricing.Tax("VAT", 1_500, True), 4)
    assert final.redis == final.postgres


# ---- refused changes change nothing -------------------------------------------------------------------------


async def test_a_refused_change_changes_nothing(
    tenants: TenantPool, processes: list[Process], org_id: str, database_url: str
) -> None:
    a = processes[0]
    event_id = await _event(tenants, a, org_id)
    before = await stored(tenants, a.redis, org_id, event_id)
    bad_tiers = (pricing.PriceTier(FAR, 1, "ZAR"), pricing.PriceTier(FAR, 2, "USD"))
    with pytest.raises(catalog_lifecycle.InvalidPatch) as refused:
        await change_type(
            tenants, a, org_id, event_id, TypePriceChange("GA", Price(1, "USD"), bad_tiers), capacity=5
        )
    assert {p.field for p in refused.value.problems} == {
        "price.currency", "price_tiers.1.until", "price_tiers.1.price.currency",
    }
    with pytest.raises(catalog_lifecycle.InvalidPatch) as refused:  # the price alone
        await change_type(tenants, a, org_id, event_id, TypePriceChange("VIP", Price(1, "EUR")))
    assert {p.field for p in refused.value.problems} == {"price.currency"}
    bad_fees = (pricing.Fee("X", "order", amount_minor=1), pricing.Fee("X", "order", amount_minor=2))
    with pytest.raises(catalog_lifecycle.InvalidPatch) as refused:
        await patch(
            tenants, a, org_id, event_id, {"hold_ttl_s": 0},
            RulesChange(bad_fees, True, pricing.Tax("VAT", 10_001, False)),
        )
    assert {p.field for p in refused.value.problems} == {"hold_ttl_s", "fees.1.code", "tax.rate_bp"}
    with pytest.raises(Refused) as unknown:
        await change_type(tenants, a, org_id, event_id, TypePriceChange("NOPE", Price(1, "ZAR")))
    assert unknown.value.refusal is Refusal.TICKET_TYPE_NOT_FOUND
    assert await stored(tenants, a.redis, org_id, event_id) == before


async def test_another_orgs_event_is_not_found_and_unchanged(
    tenants: TenantPool, processes: list[Process], org_id: str, database_url: str
) -> None:
    a = processes[0]
    theirs = await _org(database_url, "Price Changes Other")
    event_id = await _event(tenants, a, theirs)
    before = await stored(tenants, a.redis, theirs, event_id)
    with pytest.raises(Refused) as refused:
        await change_type(tenants, a, org_id, event_id, TypePriceChange("GA", Price(1, "ZAR")))
    assert refused.value.refusal is Refusal.EVENT_NOT_FOUND
    with pytest.raises(Refused) as refused:
        await patch(tenants, a, org_id, event_id, {}, RulesChange(fees=()))
    assert refused.value.refusal is Refusal.EVENT_NOT_FOUND
    assert await stored(tenants, a.redis, theirs, event_id) == before


@pytest.mark.parametrize("to", ["cancelled", "closed"])
async def test_an_ended_events_prices_no_longer_change(
    tenants: TenantPool, processes: list[Process], org_id: str, to: str
) -> None:
    a = processes[0]
    event_id = await _event(tenants, a, org_id)
    ports = Ports()
    units = UnitsOfWork(tenants)
    path = ["cancelled"] if to == "cancelled" else ["published", "on_sale", "closed"]
    for status in path:
        await catalog_lifecycle.transition(units, ports, ports, ports, org_id, ACTOR, event_id, status)
    before = await stored(tenants, a.redis, org_id, event_id)
    for attempt in (
        change_type(tenants, a, org_id, event_id, TypePriceChange("GA", Price(1, "ZAR"))),
        patch(tenants, a, org_id, event_id, {"name": "Still renamable"}, RulesChange(fees=())),
    ):
        with pytest.raises(Refused) as refused:
            await attempt
        assert refused.value.refusal is Refusal.EVENT_ENDED
        assert refused.value.details == {"event_id": event_id, "status": to}
    after = await stored(tenants, a.redis, org_id, event_id)
    assert after == before
    async with tenants.tenant(org_id) as db:
        record = await pg_events.get_event(db, event_id)
    assert record is not None and record.name == "Repriced"  # the name in the refused patch was not applied


# ---- concurrency and outages --------------------------------------------------------------------------------


async def test_concurrent_changes_from_two_processes_converge_on_the_stored_list(
    tenants: TenantPool, processes: list[Process], org_id: str
) -> None:
    a = processes[0]
    event_id = await _event(tenants, a, org_id)

    async def one(n: int) -> None:
        process = processes[n % 2]
        if n % 3 == 0:
            await patch(tenants, process, org_id, event_id, {},
                        RulesChange(fees=(pricing.Fee("F", "order", amount_minor=n),)))
        elif n % 3 == 1:
            await change_type(tenants, process, org_id, event_id, TypePriceChange("VIP", Price(1_000 + n, "ZAR")))
        else:
            await pricing_cases.create_promo_code(
                UnitsOfWork(tenants), process.cache, org_id, ACTOR, event_id, pricing.Promo(f"P{n}", percent_off_bp=n)
            )

    await asyncio.gather(*(one(n) for n in range(concurrent_changes)))
    final = await stored(tenants, a.redis, org_id, event_id)
    assert final.postgres.version == 1 + concurrent_changes  # every change its own version
    assert final.redis == final.postgres  # the newest version won in Redis, whatever the order of the shares
    for process in processes:
        await until(lambda p=process: p.cache._announced.get((org_id, event_id)) == final.postgres.version)
        assert await process.cache.price_list(org_id, event_id) == final.postgres


async def test_quotes_after_a_change_work_with_postgres_gone(
    tenants: TenantPool, processes: list[Process], org_id: str, clean_redis: str
) -> None:
    a = processes[0]
    event_id = await _event(tenants, a, org_id)
    await change_type(tenants, a, org_id, event_id, TypePriceChange("VIP", Price(45_000, "ZAR")))
    dead_pool = await asyncpg.create_pool(DEAD_DATABASE_URL, min_size=0, max_size=1, timeout=0.5)
    assert dead_pool is not None
    try:
        cold = await _process(TenantPool(dead_pool), clean_redis)  # a new process: nothing in memory
        try:
            answered = await _quote(cold, org_id, event_id)
            assert (answered.lines[1].amount_minor, answered.price_list_version) == (45_000, 2)
            with pytest.raises(POSTGRES_OUTAGES):  # the control: this process really has no Postgres
                async with TenantPool(dead_pool).tenant(org_id) as db:
                    await pg_events.get_event(db, event_id)
        finally:
            cold.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await cold.task
            await cold.redis.aclose()
            await cold.listener.aclose()
    finally:
        await dead_pool.close()
