"""Pricing on real Postgres and Redis: price rules stored and shared (newest version wins), promo codes, and the
promo use accounting under concurrency.

The concurrency tests run many tasks against two independent "gateway processes" (each its own Postgres pool and
Redis client): a code with max_uses 100 never admits a 101st use, whether the Redis mirror is there, lost midway,
or unreachable, and Postgres alone (its trigger) holds the limit even when nothing else is asked.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from redis.asyncio import BlockingConnectionPool, Redis

from engine.catalog import pricing
from engine.catalog import rules as catalog
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.access.orgs import create_org
from persistence.catalog import events as pg_events
from persistence.catalog import prices as pg_prices
from persistence.catalog import promo_uses, redis_keys
from persistence.db import connect, create_pool
from persistence.tenancy import TenantPool
from services.catalog import events as catalog_cases
from services.catalog import pricing as pricing_cases
from services.unit_of_work import UnitsOfWork

ACTOR = audit.Actor("key", "key_pricing_test", "192.0.2.9")
connections_per_process = 8
pool_wait_s_max = 60.0  # hundreds of takers queue for 8 connections: longer than the gateway's 2 s
takers = 300
NOW = datetime.now(UTC)


class NoShare:
    async def share_record(self, record: pg_events.EventRecord) -> None:
        return None


class RedisPrices:
    """services.catalog.pricing.SharedPrices straight to Redis (gateway/price_cache.py's job, without its memory)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def share_prices(self, org_id: str, event_id: str, prices: pricing.PriceList) -> None:
        await pg_prices.put_price_list(self.redis, org_id, event_id, prices)


@dataclass
class Process:
    """One gateway process's view of the stores."""

    units: UnitsOfWork
    redis: Redis
    pool: asyncpg.Pool


@pytest.fixture
async def processes(database_url: str, clean_redis: str) -> AsyncIterator[list[Process]]:
    made = []
    for _ in range(2):
        pool = await create_pool(database_url, min_size=1, max_size=connections_per_process)
        tenants = TenantPool(pool, acquire_timeout_s=pool_wait_s_max)
        # Like the gateway's: a bounded pool that waits for a free connection (gateway/app.py).
        redis = Redis(connection_pool=BlockingConnectionPool.from_url(clean_redis, max_connections=64, timeout=30))
        made.append(Process(UnitsOfWork(tenants), redis, pool))
    yield made
    for process in made:
        await process.redis.aclose()
        await process.pool.close()


@pytest.fixture
async def org_id(database_url: str) -> str:
    conn = await connect(database_url)
    try:
        org, _ = await create_org(conn, "Pricing Store")
    finally:
        await conn.close()
    return org


def definition() -> catalog.EventDefinition:
    zar = catalog.Price(15_000, "ZAR")
    early = pricing.PriceTier(NOW + timedelta(days=7), 12_000, "ZAR")
    earlier = pricing.PriceTier(NOW + timedelta(days=1), 10_000, "ZAR")
    return catalog.EventDefinition(
        name="Priced",
        starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
        hold_ttl_s=600,
        max_tickets_per_buyer=10,
        layout=None,
        ticket_types=(
            catalog.TicketType("GA", "ga", 1_000, zar, price_tiers=(earlier, early)),
            catalog.TicketType("VIP", "ga", 100, catalog.Price(50_000, "ZAR")),
        ),
        fees=(pricing.Fee("BOOKING", "ticket", amount_minor=500), pricing.Fee("SERVICE", "order", percent_bp=250)),
        tax=pricing.Tax("VAT", 1_500, True),
    )


async def _event(process: Process, org_id: str) -> str:
    record = await catalog_cases.create_event(
        process.units, NoShare(), org_id, ACTOR, definition(), None, prices=RedisPrices(process.redis)
    )
    return record.id


async def _promo(process: Process, org_id: str, event_id: str, **limits: int) -> pricing.Promo:
    promo = pricing.Promo("Rush", percent_off_bp=1_000, **limits)  # type: ignore[arg-type]
    return await pricing_cases.create_promo_code(
        process.units, RedisPrices(process.redis), org_id, ACTOR, event_id, promo
    )


async def _live_uses(pool: asyncpg.Pool, org_id: str, event_id: str) -> list[tuple[str, str]]:
    async with TenantPool(pool).tenant(org_id) as db:
        return await promo_uses.live_uses(db, event_id, "RUSH")


# ---- price rules ----------------------------------------------------------------------------------------------


async def test_an_events_price_rules_are_stored_and_shared(processes: list[Process], org_id: str) -> None:
    process = processes[0]
    event_id = await _event(process, org_id)
    shared = await pg_prices.get_price_list(process.redis, org_id, event_id)
    async with TenantPool(process.pool).tenant(org_id) as db:
        stored = await pg_prices.load_price_list(db, event_id)
    assert stored is not None and shared is not None
    expected = pg_prices.price_list_of(catalog.stocked(definition()), 1)
    for found in (stored, shared):
        assert found.version == 1 and found.currency == "ZAR"
        assert dict(found.ticket_types) == dict(expected.ticket_types)
        assert found.fees == expected.fees and found.tax == expected.tax
        assert dict(found.promos) == {}
    # The codec keeps times to the microsecond.
    assert pg_prices.decode_price_list(pg_prices.encode_price_list(stored)) == stored


async def test_redis_keeps_the_newest_price_list_and_announces_each_change(
    processes: list[Process], org_id: str
) -> None:
    redis = processes[0].redis
    event_id = await _event(processes[0], org_id)
    async with TenantPool(processes[0].pool).tenant(org_id) as db:
        prices = await pg_prices.load_price_list(db, event_id)
    assert prices is not None
    heard: list[bytes] = []
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(redis_keys.prices_changed(org_id, event_id))
        assert await pg_prices.put_price_list(redis, org_id, event_id, pricing_replace(prices, 5))
        assert not await pg_prices.put_price_list(redis, org_id, event_id, pricing_replace(prices, 4))
        assert not await pg_prices.put_price_list(redis, org_id, event_id, pricing_replace(prices, 5))

        async def listen() -> None:
            while len(heard) < 1:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    heard.append(message["data"])

        await asyncio.wait_for(listen(), timeout=5)
    assert heard == [b"5"]
    found = await pg_prices.get_price_list(redis, org_id, event_id)
    assert found is not None and found.version == 5


def pricing_replace(prices: pricing.PriceList, version: int) -> pricing.PriceList:
    return replace(prices, version=version)


async def test_a_promo_code_is_audited_bumps_the_version_and_is_shared(
    processes: list[Process], org_id: str
) -> None:
    process = processes[0]
    event_id = await _event(process, org_id)
    promo = await _promo(process, org_id, event_id, max_uses=5)
    assert promo.code == "RUSH"  # upper-cased
    shared = await pg_prices.get_price_list(process.redis, org_id, event_id)
    assert shared is not None and shared.version == 2 and shared.promos["RUSH"] == promo
    with pytest.raises(Refused) as again:
        await _promo(process, org_id, event_id, max_uses=5)
    assert again.value.refusal is Refusal.PROMO_CODE_EXISTS
    async with TenantPool(process.pool).tenant(org_id) as db:
        rows = await audit.query(db, action=pricing_cases.PROMO_CODE_CREATE, limit=10)
        assert [r.entry.object_id for r in rows] == [f"{event_id}:RUSH"]
        refreshed = await pg_prices.load_price_list(db, event_id)
    assert refreshed is not None and refreshed.version == 2  # the refused one rolled back its bump


# ---- promo uses under concurrency --------------------------------------------------------------------------------


async def _take(process: Process, org_id: str, event_id: str, use_id: str, buyer_id: str) -> str:
    try:
        await pricing_cases.take_promo_use(
            process.units, process.redis, org_id, ACTOR, event_id, "rush", use_id, buyer_id
        )
    except Refused as refused:
        return f"{refused.refusal.value}:{refused.details.get('reason')}"
    return "taken"


async def _rush(processes: list[Process], org_id: str, event_id: str, buyers: list[str]) -> Counter[str]:
    outcomes = await asyncio.gather(
        *(
            _take(processes[n % len(processes)], org_id, event_id, f"order-{n}-{buyer}", buyer)
            for n, buyer in enumerate(buyers)
        )
    )
    return Counter(outcomes)


async def test_max_uses_100_never_admits_a_101st_across_processes(processes: list[Process], org_id: str) -> None:
    event_id = await _event(processes[0], org_id)
    await _promo(processes[0], org_id, event_id, max_uses=100)
    outcomes = await _rush(processes, org_id, event_id, [f"buyer-{n}" for n in range(takers)])
    assert outcomes == {"taken": 100, "promo_code_invalid:used_up": takers - 100}
    assert len(await _live_uses(processes[0].pool, org_id, event_id)) == 100
    usage = await promo_uses.read_usage(processes[0].redis, org_id, event_id, "RUSH", "buyer-0")
    assert usage is not None and usage.total == 100


async def test_max_uses_per_buyer_holds_under_concurrency(processes: list[Process], org_id: str) -> None:
    event_id = await _event(processes[0], org_id)
    await _promo(processes[0], org_id, event_id, max_uses_per_buyer=3)
    outcomes = await _rush(processes, org_id, event_id, ["greedy"] * 40 + ["modest"])
    assert outcomes == {"taken": 4, "promo_code_invalid:buyer_limit_reached": 37}
    uses = await _live_uses(processes[0].pool, org_id, event_id)
    assert Counter(buyer for _, buyer in uses) == {"greedy": 3, "modest": 1}


async def test_a_lost_mirror_is_rebuilt_and_postgres_still_holds_the_limit(
    processes: list[Process], org_id: str
) -> None:
    event_id = await _event(processes[0], org_id)
    await _promo(processes[0], org_id, event_id, max_uses=100)
    key = redis_keys.promo_uses(org_id, event_id, "RUSH")
    first = await _rush(processes, org_id, event_id, [f"early-{n}" for n in range(60)])
    assert first == {"taken": 60}

    async def lose_the_mirror_repeatedly() -> None:
        for _ in range(20):
            await processes[1].redis.delete(key)
            await asyncio.sleep(0.005)

    later, _ = await asyncio.gather(
        _rush(processes, org_id, event_id, [f"late-{n}" for n in range(200)]), lose_the_mirror_repeatedly()
    )
    assert later["taken"] == 40, later
    assert sum(later.values()) == 200 and set(later) <= {"taken", "promo_code_invalid:used_up"}
    assert len(await _live_uses(processes[0].pool, org_id, event_id)) == 100


async def test_postgres_alone_holds_the_limit(processes: list[Process], org_id: str) -> None:
    """Writers that skip the mirror altogether still cannot pass max_uses: the schema's trigger counts."""
    event_id = await _event(processes[0], org_id)
    await _promo(processes[0], org_id, event_id, max_uses=10)

    async def insert(n: int) -> promo_uses.Taken:
        async with processes[n % 2].units.begin(org_id, ACTOR) as uow:
            taken, _ = await promo_uses.insert_use(uow.db, event_id, "RUSH", f"raw-{n}", f"buyer-{n}")
        return taken

    outcomes = Counter(await asyncio.gather(*(insert(n) for n in range(60))))
    assert outcomes == {promo_uses.Taken.TAKEN: 10, promo_uses.Taken.USED_UP: 50}


async def test_without_redis_postgres_decides(processes: list[Process], org_id: str) -> None:
    event_id = await _event(processes[0], org_id)
    await _promo(processes[0], org_id, event_id, max_uses=5)
    dead = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    try:
        blind = [Process(p.units, dead, p.pool) for p in processes]
        outcomes = await _rush(blind, org_id, event_id, [f"buyer-{n}" for n in range(30)])
    finally:
        await dead.aclose()
    assert outcomes == {"taken": 5, "promo_code_invalid:used_up": 25}


async def test_a_release_frees_a_use_once_and_a_retry_takes_nothing_more(
    processes: list[Process], org_id: str
) -> None:
    process = processes[0]
    event_id = await _event(process, org_id)
    await _promo(process, org_id, event_id, max_uses=2)
    assert await _take(process, org_id, event_id, "order-a", "ann") == "taken"
    assert await _take(process, org_id, event_id, "order-a", "ann") == "taken"  # a retry: the same use
    assert await _take(process, org_id, event_id, "order-b", "bob") == "taken"
    assert await _take(process, org_id, event_id, "order-c", "cat") == "promo_code_invalid:used_up"
    release = pricing_cases.release_promo_use
    assert await release(process.units, process.redis, org_id, ACTOR, event_id, "RUSH", "order-a")
    assert not await release(process.units, process.redis, org_id, ACTOR, event_id, "RUSH", "order-a")
    assert await _take(process, org_id, event_id, "order-c", "cat") == "taken"
    assert await _take(process, org_id, event_id, "order-a", "ann") in (
        "promo_code_invalid:used_up",  # the mirror refuses first: the code is full again
        "promo_use_released:None",
    )
    async with TenantPool(process.pool).tenant(org_id) as db:
        taken = await audit.query(db, action=pricing_cases.PROMO_USE_TAKE, limit=10)
        released = await audit.query(db, action=pricing_cases.PROMO_USE_RELEASE, limit=10)
    assert sorted(r.entry.object_id for r in taken) == ["order-a", "order-b", "order-c"]
    assert [r.entry.object_id for r in released] == ["order-a"]
    usage = await promo_uses.read_usage(process.redis, org_id, event_id, "RUSH", "ann")
    assert usage == pricing.Usage(2, 0)


async def test_unknown_and_expired_codes_are_refused_with_their_reason(
    processes: list[Process], org_id: str
) -> None:
    process = processes[0]
    event_id = await _event(process, org_id)
    expired = pricing.Promo("OLD", amount_off_minor=100, valid_until=NOW - timedelta(seconds=1))
    await pricing_cases.create_promo_code(process.units, RedisPrices(process.redis), org_id, ACTOR, event_id, expired)
    for code, reason in (("NOPE", "unknown"), ("old", "expired")):
        with pytest.raises(Refused) as refused:
            await pricing_cases.take_promo_use(process.units, process.redis, org_id, ACTOR, event_id, code, "o", "b")
        assert (refused.value.refusal, refused.value.details["reason"]) == (Refusal.PROMO_CODE_INVALID, reason)


async def test_the_schema_defends_the_price_rules(processes: list[Process], org_id: str) -> None:
    """What a buggy writer cannot store: a fee both fixed and a percentage, tiers out of order, a tier in another
    currency than its type, a released use brought back."""
    process = processes[0]
    event_id = await _event(process, org_id)
    await _promo(process, org_id, event_id)
    later = NOW + timedelta(days=30)
    refused = [
        ("INSERT INTO event_fees (org_id, event_id, code, position, per, amount_minor, percent_bp) "
         "VALUES ($1, $2, 'BOTH', 5, 'order', 1, 1)", ()),
        ("INSERT INTO event_fees (org_id, event_id, code, position, per, percent_bp) "
         "VALUES ($1, $2, 'BIG', 5, 'order', 10001)", ()),
        ("INSERT INTO price_tiers (org_id, event_id, ticket_type, position, until, price_minor, currency) "
         "VALUES ($1, $2, 'GA', 2, $3, 1, 'ZAR')", (NOW,)),  # position 2 but before the tiers at 0 and 1
        ("INSERT INTO price_tiers (org_id, event_id, ticket_type, position, until, price_minor, currency) "
         "VALUES ($1, $2, 'GA', 2, $3, 1, 'USD')", (later,)),
        ("INSERT INTO price_lists (org_id, event_id, tax_code) VALUES ($1, $2, 'VAT')", ()),
    ]
    async with TenantPool(process.pool).tenant(org_id) as db:
        for sql, extra in refused:
            with pytest.raises((asyncpg.CheckViolationError, asyncpg.ForeignKeyViolationError,
                                asyncpg.UniqueViolationError)):
                async with db.conn.transaction():
                    await db.conn.execute(sql, org_id, event_id, *extra)
        taken, _ = await promo_uses.insert_use(db, event_id, "RUSH", "use-1", "ann")
        assert taken is promo_uses.Taken.TAKEN
        assert await promo_uses.release_use(db, event_id, "RUSH", "use-1") is not None
        with pytest.raises(asyncpg.CheckViolationError, match="only be released"):
            async with db.conn.transaction():
                await db.conn.execute("UPDATE promo_uses SET released_at = NULL WHERE use_id = 'use-1'")


async def test_the_price_cache_never_keeps_a_list_older_than_one_announced(
    processes: list[Process], org_id: str
) -> None:
    """A read racing a change: the change's announcement (version 2) arrives while the read still brings version 1
    from Redis; the cache answers it but does not keep it, so the next quote reads again."""
    from gateway.price_cache import PriceCache  # the gateway's cache over these stores

    process = processes[0]
    event_id = await _event(process, org_id)
    cache = PriceCache(TenantPool(process.pool), process.redis)
    cache._connected()  # as the subscription does on connect
    key = (org_id, event_id)
    cache._on_message(redis_keys.prices_changed(org_id, event_id), b"2")
    first = await cache.price_list(org_id, event_id)
    assert first is not None and first.version == 1
    assert key not in cache._lists  # older than announced: not kept
    await _promo(process, org_id, event_id)  # version 2 reaches Redis
    second = await cache.price_list(org_id, event_id)
    assert second is not None and second.version == 2 and "RUSH" in second.promos
    assert cache._lists[key] is second
    cache._on_message(redis_keys.prices_changed(org_id, event_id), b"3")
    assert key not in cache._lists  # a newer announcement evicts
    cache._disconnected()
    assert await cache.price_list(org_id, event_id) is not None and key not in cache._lists  # nothing kept offline
    await process.redis.delete(redis_keys.price_list(org_id, event_id))
    repaired = await cache.price_list(org_id, event_id)  # Redis lost it: rebuilt from Postgres and written back
    assert repaired is not None and repaired.version == 2
    assert await pg_prices.get_price_list(process.redis, org_id, event_id) == repaired
