"""The Postgres adapters against a real database: keys, orgs, events, fenced sale writes and recovery reads.

The adapters run as the platform does: on a connection acting as voelgoed_app (row-level security applies), each
call inside an org transaction. Raw checks of what landed use the superuser's connection (``admin``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime

import asyncpg
import pytest

from engine import limits
from engine.access.rules import OWNER_SCOPES
from engine.ids import hold_id_for, is_event_id, sale_id_of_hold, ticket_id_of_hold
from engine.inventory.commands import Confirm, Hold, Ok, SaleView, TicketView
from engine.inventory.machine import Inventory, InventorySnapshot
from persistence.access.apikeys import (
    ApiKeyRecord,
    KeyRejected,
    create_api_key,
    find_api_key,
    new_api_key,
    parse_api_key,
    revoke_api_key,
)
from persistence.access.orgs import create_org
from persistence.access.secret_hashes import secret_matches
from persistence.audit import Actor, verify
from persistence.catalog.events import (
    EventRecord,
    EventSeats,
    NewEvent,
    TicketTypeRecord,
    create_event,
    get_event,
    inventory_spec,
    list_seat_ids,
    publish_event,
    take_inventory_epoch,
)
from persistence.db import connect, create_pool
from persistence.inventory.sales import FencedOut, SaleNotFound, load_sales, write_sales
from persistence.tenancy import OrgDb, org_transaction, unscoped
from services.inventory.sales import commit_sales

SEAT_IDS = tuple(f"A-1-{n}" for n in range(1, 13))
CREATED_BY = "system:test"
CONFIRMER = "key:key_test"  # who confirms (engine.inventory.commands.actor_ref)
TEST_CONFIRMER = Actor("key", "key_test", "192.0.2.1")  # the same caller, as its sales' audit entries name it
lock_wait_poll_s = 0.01
lock_wait_polls_max = 500  # 5 s


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the platform's role, as every adapter runs."""
    connection = await connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The URL's superuser (row-level security does not apply): to check what really landed."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def org_id(conn: asyncpg.Connection) -> str:
    org, _ = await create_org(conn, "Repo Org")
    return org


def _new_event(seat_ids: Sequence[str] = SEAT_IDS, ga: Sequence[tuple[str, int]] = (("GA", 100),)) -> NewEvent:
    types = [TicketTypeRecord(code, "ga", capacity, 15_000, "ZAR") for code, capacity in ga]
    if seat_ids:
        types.insert(1, TicketTypeRecord("SEAT", "seated", len(seat_ids), 30_000, "ZAR"))
    return NewEvent(
        name="Flash Sale Live",
        starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
        hold_ttl_s=600,
        max_tickets_per_buyer=100,
        seating={"sections": [{"name": "A", "rows": [{"label": "1", "seats": len(seat_ids)}]}]} if seat_ids else None,
        seat_ids=tuple(seat_ids),
        ticket_types=tuple(types),
    )


async def _on_sale(conn: asyncpg.Connection, org_id: str, new: NewEvent | None = None) -> tuple[str, int]:
    """A published event and the epoch of its first inventory incarnation."""
    async with org_transaction(conn, org_id) as db:
        event = await create_event(db, new or _new_event())
        await publish_event(db, event.id)
        taken = await take_inventory_epoch(db, event.id)
    assert taken is not None
    return event.id, taken[0]


async def _take_epoch(conn: asyncpg.Connection, org_id: str, event_id: str) -> tuple[int, EventRecord, EventSeats]:
    async with org_transaction(conn, org_id) as db:
        taken = await take_inventory_epoch(db, event_id)
    assert taken is not None
    return taken


async def _write(
    conn: asyncpg.Connection, org_id: str, event_id: str, epoch: int, new: Sequence[SaleView],
    cancelled: Sequence[SaleView] = (), confirmed_by: Mapping[str, Actor] | None = None,
) -> None:
    """One group commit, as the inventory makes it (services/inventory/sales.py: one org transaction); every new
    sale confirmed by a test key unless ``confirmed_by`` (hold id -> actor) says otherwise."""
    if confirmed_by is None:
        confirmed_by = {sale.hold_id: TEST_CONFIRMER for sale in new}
    await commit_sales(conn, org_id, event_id, epoch, new, cancelled, confirmed_by=confirmed_by)


async def _load(conn: asyncpg.Connection, org_id: str, event_id: str) -> list[SaleView]:
    async with org_transaction(conn, org_id) as db:
        return await load_sales(db, event_id)


def _sale(event_id: str, *, seats: Sequence[str] = (), units: Sequence[int] = (), ticket_type: str = "") -> SaleView:
    hold_id = hold_id_for(event_id, secrets.token_hex(10))
    code = ticket_type or ("SEAT" if seats else "GA")
    tickets = [TicketView(ticket_id_of_hold(hold_id, n), code, s, None) for n, s in enumerate(seats, 1)]
    tickets += [TicketView(ticket_id_of_hold(hold_id, n), code, None, u) for n, u in enumerate(units, 1)]
    return SaleView(sale_id_of_hold(hold_id), hold_id, "buyer-" + secrets.token_hex(3), "order-1", tuple(tickets))


async def _row_counts(admin: asyncpg.Connection, event_id: str) -> tuple[int, int]:
    sales = await admin.fetchval("SELECT count(*) FROM sales WHERE event_id = $1", event_id)
    tickets = await admin.fetchval("SELECT count(*) FROM tickets WHERE event_id = $1", event_id)
    return sales, tickets


# ---- API keys and orgs -----------------------------------------------------------------------------------


def test_new_api_key_parses_and_verifies() -> None:
    prefix, plaintext, secret_hash = new_api_key()
    parsed = parse_api_key(plaintext)
    assert parsed is not None and parsed[0] == prefix
    assert secret_matches(parsed[1], secret_hash)
    assert not secret_matches(parsed[1][:-1] + ("A" if parsed[1][-1] != "A" else "B"), secret_hash)
    assert len(prefix) == 12 and plaintext.startswith(f"vk_{prefix}_")


@pytest.mark.parametrize(
    "plaintext",
    [
        "",
        "vk_",
        "vk_0123456789ab_",
        "vk_0123456789AB_" + "a" * 43,
        "vk_0123456789a_" + "a" * 43,
        "vx_0123456789ab_" + "a" * 43,
        "vk_0123456789ab_" + "a" * 42,
        "vk_0123456789ab_" + "a" * 43 + "\n",
        "vk_0123456789ab_" + "a" * 42 + "=",
    ],
)
def test_malformed_keys_do_not_parse(plaintext: str) -> None:
    assert parse_api_key(plaintext) is None


async def _find_key(conn: asyncpg.Connection, prefix: str) -> ApiKeyRecord | None:
    async with unscoped(conn, reason="test: find a key by its prefix, as authentication does") as raw:
        return await find_api_key(raw, prefix)


async def test_create_org_makes_an_owner_key_stored_only_as_a_hash(
    conn: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    org_id, plaintext = await create_org(conn, "Acme Tickets")
    assert org_id.startswith("org_") and len(org_id) == 36
    parsed = parse_api_key(plaintext)
    assert parsed is not None
    prefix, secret = parsed
    record = await _find_key(conn, prefix)
    assert record is not None
    assert (record.org_id, record.scopes, record.revoked_at) == (org_id, OWNER_SCOPES, None)
    assert secret_matches(secret, record.secret_hash)
    assert record.secret_hash == hashlib.sha256(secret.encode()).digest()
    row_text = await admin.fetchval("SELECT t::text FROM api_keys t WHERE prefix = $1", prefix)
    row_bytes = await admin.fetchval("SELECT convert_to(t::text, 'UTF8') FROM api_keys t WHERE prefix = $1", prefix)
    assert secret not in row_text and secret.encode() not in row_bytes and plaintext not in row_text
    assert prefix in row_text  # the probe reads the real row


async def test_api_key_create_find_revoke_is_org_scoped(conn: asyncpg.Connection, org_id: str) -> None:
    other_org, _ = await create_org(conn, "Other")
    async with org_transaction(conn, org_id) as db:
        record, plaintext = await create_api_key(
            db, "ci", ["events:read", "events:read", "inventory:hold"], created_by=CREATED_BY
        )
    assert record.scopes == ("events:read", "inventory:hold")
    parsed = parse_api_key(plaintext)
    assert parsed is not None and parsed[0] == record.prefix
    assert record.id.startswith("key_") and len(record.id) == 36
    async with org_transaction(conn, other_org) as db:
        assert await revoke_api_key(db, record.id) is None
    found = await _find_key(conn, record.prefix)
    assert found is not None and found.revoked_at is None
    async with org_transaction(conn, org_id) as db:
        revoked = await revoke_api_key(db, record.id)
    assert revoked is not None and revoked.newly
    found = await _find_key(conn, record.prefix)
    assert found is not None and found.revoked_at is not None
    async with org_transaction(conn, org_id) as db:
        again = await revoke_api_key(db, record.id)  # idempotent, keeps the first time
        assert again is not None and not again.newly
        assert await revoke_api_key(db, "key_" + "0" * 32) is None
    refound = await _find_key(conn, record.prefix)
    assert refound is not None and refound.revoked_at == found.revoked_at
    assert await _find_key(conn, "0" * 12) is None
    assert await find_api_key(conn, record.prefix) is None  # without unscoped, row-level security shows no key


async def test_api_key_refuses_unknown_scopes(conn: asyncpg.Connection, org_id: str) -> None:
    async with org_transaction(conn, org_id) as db:
        with pytest.raises(KeyRejected):
            await create_api_key(db, "bad", ["events:read", "admin"], created_by=CREATED_BY)


# ---- events ----------------------------------------------------------------------------------------------


async def test_event_round_trip_and_org_scoping(conn: asyncpg.Connection, org_id: str) -> None:
    other_org, _ = await create_org(conn, "Other")
    new = _new_event(ga=(("GA", 100), ("VIP", 5)))
    async with org_transaction(conn, org_id) as db:
        created = await create_event(db, new)
    assert is_event_id(created.id) and created.status == "draft" and created.published_at is None
    async with org_transaction(conn, org_id) as db:
        fetched = await get_event(db, created.id)
        assert fetched == created
        assert [t.code for t in fetched.ticket_types] == ["GA", "SEAT", "VIP"]
        assert fetched.seating == new.seating and fetched.seat_count == len(SEAT_IDS)
        assert await get_event(db, "evt_" + "0" * 32) is None
        assert await list_seat_ids(db, created.id) == SEAT_IDS
        assert await take_inventory_epoch(db, created.id) is None  # a draft has no inventory
    async with org_transaction(conn, other_org) as other:
        assert await get_event(other, created.id) is None
        assert await list_seat_ids(other, created.id) is None
        assert await publish_event(other, created.id) is None
    async with org_transaction(conn, org_id) as db:
        published = await publish_event(db, created.id)
    assert published is not None and published.changed
    assert published.event.status == "on_sale" and published.event.published_at is not None
    async with org_transaction(conn, org_id) as db:
        again = await publish_event(db, created.id)
    assert again is not None and not again.changed
    assert again.event.published_at == published.event.published_at
    async with org_transaction(conn, other_org) as other:
        assert await take_inventory_epoch(other, created.id) is None  # on sale, but not the other org's


async def test_ga_only_event(conn: asyncpg.Connection, org_id: str) -> None:
    async with org_transaction(conn, org_id) as db:
        created = await create_event(db, _new_event(seat_ids=()))
        assert created.seating is None and created.seat_count == 0
        assert await list_seat_ids(db, created.id) == ()


@pytest.mark.parametrize(
    "broken",
    [
        {"hold_ttl_s": limits.hold_ttl_s_max + 1},
        {"max_tickets_per_buyer": 0},
        {"seat_ids": tuple(f"S-{n}" for n in range(limits.seats_per_event_max + 1))},
        {"name": "x" * (limits.name_chars_max + 1)},
        {"seat_ids": ("A-1-1", "A-1-1")},
        {"starts_at": datetime(2026, 1, 1)},
        {"ticket_types": (TicketTypeRecord("GA", "ga", 1, 1, "zar"),)},
        {"ticket_types": (TicketTypeRecord("GA", "ga", 1, 1, "ZAR"), TicketTypeRecord("GA", "ga", 1, 1, "ZAR"))},
    ],
)
async def test_create_event_refuses_bad_input(conn: asyncpg.Connection, org_id: str, broken: dict) -> None:
    fields = {**_new_event(seat_ids=()).__dict__, **broken}
    async with org_transaction(conn, org_id) as db:
        with pytest.raises(ValueError):
            await create_event(db, NewEvent(**fields))


async def test_largest_event_round_trips(conn: asyncpg.Connection, org_id: str) -> None:
    seat_ids = tuple(f"S{n // 1000}-R{n % 1000 // 50}-{n % 50 + 1}" for n in range(limits.seats_per_event_max))
    started = time.perf_counter()
    event_id, _ = await _on_sale(conn, org_id, _new_event(seat_ids=seat_ids))
    print(f"\ncreate, publish and take the epoch of a {len(seat_ids)}-seat event: {time.perf_counter() - started:.2f}s")
    async with org_transaction(conn, org_id) as db:
        assert await list_seat_ids(db, event_id) == seat_ids
    taken = await _take_epoch(conn, org_id, event_id)
    assert taken[2].ids == seat_ids


async def test_take_inventory_epoch_bumps_and_builds_the_spec(conn: asyncpg.Connection, org_id: str) -> None:
    event_id, first = await _on_sale(conn, org_id, _new_event(ga=(("GA", 100), ("VIP", 5))))
    epoch, event, seat_ids = await _take_epoch(conn, org_id, event_id)
    assert epoch == first + 1 and isinstance(event, EventRecord) and seat_ids.ids == SEAT_IDS
    spec = inventory_spec(event, seat_ids)
    assert spec.seated_type == "SEAT" and spec.ga_capacity == (("GA", 100), ("VIP", 5))
    assert (spec.event_id, spec.hold_ttl_s, spec.max_tickets_per_buyer) == (event_id, 600, 100)


# ---- sales -----------------------------------------------------------------------------------------------


async def test_write_then_load_round_trip_keeps_sale_order(conn: asyncpg.Connection, org_id: str) -> None:
    event_id, epoch = await _on_sale(conn, org_id)
    seated = _sale(event_id, seats=("A-1-3", "A-1-1", "A-1-2"))
    many_units = _sale(event_id, units=(12, 3, 7, 1, 2, 4, 5, 6, 8, 9, 10, 11))  # ticket _10 sorts after _9
    await _write(conn, org_id, event_id, epoch, [seated, many_units])
    loaded = await _load(conn, org_id, event_id)
    assert sorted(loaded, key=lambda s: s.sale_id) == sorted([seated, many_units], key=lambda s: s.sale_id)
    other_org, _ = await create_org(conn, "Other")
    assert await _load(conn, other_org, event_id) == []


async def test_sales_are_audited_in_their_transaction(
    conn: asyncpg.Connection, admin: asyncpg.Connection, org_id: str
) -> None:
    """Each sale leaves an entry naming who confirmed it and from where (one batch, several callers), each
    cancellation one naming the inventory; a refused batch leaves none."""
    event_id, epoch = await _on_sale(conn, org_id)
    first, second = _sale(event_id, seats=("A-1-1",)), _sale(event_id, units=(1, 2))
    by_key, by_person = Actor("key", "key_" + "a" * 24, "198.51.100.7"), Actor("user", "usr_" + "b" * 32, None)
    confirmed_by = {first.hold_id: by_key, second.hold_id: by_person}
    await _write(conn, org_id, event_id, epoch, [first, second], confirmed_by=confirmed_by)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _write(conn, org_id, event_id, epoch, [_sale(event_id, units=(2,))])
    await _write(conn, org_id, event_id, epoch, [], [first])
    rows = await admin.fetch(
        "SELECT actor_type, actor_id, ip, action, object_id, before, after FROM audit_log "
        "WHERE org_id = $1 AND action LIKE 'sale.%' ORDER BY seq",
        org_id,
    )
    assert [(r["action"], r["object_id"]) for r in rows] == [
        ("sale.create", first.sale_id), ("sale.create", second.sale_id), ("sale.cancel", first.sale_id),
    ]
    assert [Actor(r["actor_type"], r["actor_id"], r["ip"]) for r in rows] == [
        by_key, by_person, Actor("system", f"inventory:{event_id}"),
    ]
    async with org_transaction(conn, org_id) as db:
        assert (await verify(db, org_id)).ok  # entries of several actors in one append still chain
    assert '"A-1-1"' in rows[0]["after"] and second.hold_id in rows[1]["after"]


async def test_stale_epoch_is_fenced_out_and_writes_nothing(
    conn: asyncpg.Connection, admin: asyncpg.Connection, org_id: str
) -> None:
    event_id, old_epoch = await _on_sale(conn, org_id)
    await _take_epoch(conn, org_id, event_id)
    with pytest.raises(FencedOut):
        await _write(conn, org_id, event_id, old_epoch, [_sale(event_id, seats=("A-1-1",))])
    assert await _row_counts(admin, event_id) == (0, 0)


async def test_another_orgs_event_is_fenced_out(
    conn: asyncpg.Connection, admin: asyncpg.Connection, org_id: str
) -> None:
    event_id, epoch = await _on_sale(conn, org_id)
    other_org, _ = await create_org(conn, "Other")
    with pytest.raises(FencedOut):
        await _write(conn, other_org, event_id, epoch, [_sale(event_id, units=(1,))])
    assert await _row_counts(admin, event_id) == (0, 0)


async def _until_waiting_for_a_lock(admin: asyncpg.Connection, pid: int) -> None:
    """Until the backend ``pid`` waits for a lock: Postgres shows it, where a sleep would only guess."""
    query = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
    waiting_for = None
    for _ in range(lock_wait_polls_max):
        waiting_for = await admin.fetchval(query, pid)
        if waiting_for == "Lock":
            return
        await asyncio.sleep(lock_wait_poll_s)
    raise AssertionError(f"backend {pid} never waited for a lock (last: {waiting_for})")


async def test_epoch_bump_waits_for_an_inflight_write(
    database_url: str, org_id: str, conn: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    """A new incarnation's epoch is taken only after the old one's open write commits, never beside it."""
    event_id, epoch = await _on_sale(conn, org_id)
    writer = await connect(database_url)
    try:
        tx = writer.transaction()
        await tx.start()
        await writer.execute("SELECT set_config('voelgoed.org_id', $1, true)", org_id)
        sale = _sale(event_id, seats=("A-1-5",))
        await write_sales(OrgDb(writer, org_id), event_id, epoch, [sale], [])
        bump = asyncio.create_task(_take_epoch(conn, org_id, event_id))
        await _until_waiting_for_a_lock(admin, conn.get_server_pid())
        assert not bump.done()  # blocked by the writer's FOR SHARE lock
        await tx.commit()
        taken = await asyncio.wait_for(bump, 5)
        assert taken[0] == epoch + 1
    finally:
        await writer.close()
    with pytest.raises(FencedOut):
        await _write(conn, org_id, event_id, epoch, [_sale(event_id, seats=("A-1-6",))])
    assert await _row_counts(admin, event_id) == (1, 1)


async def test_cancelled_sale_frees_its_seat_in_the_same_batch(
    conn: asyncpg.Connection, admin: asyncpg.Connection, org_id: str
) -> None:
    event_id, epoch = await _on_sale(conn, org_id)
    first = _sale(event_id, seats=("A-1-1", "A-1-2"))
    await _write(conn, org_id, event_id, epoch, [first])
    second = _sale(event_id, seats=("A-1-2",))
    with pytest.raises(asyncpg.UniqueViolationError):
        await _write(conn, org_id, event_id, epoch, [second])
    await _write(conn, org_id, event_id, epoch, [second], [first])
    assert await _load(conn, org_id, event_id) == [second]
    statuses = await admin.fetch(
        "SELECT status, count(*) FROM tickets WHERE event_id = $1 GROUP BY status ORDER BY status", event_id
    )
    assert [tuple(r) for r in statuses] == [("cancelled", 2), ("live", 1)]


async def test_a_failed_batch_writes_nothing(
    conn: asyncpg.Connection, admin: asyncpg.Connection, org_id: str
) -> None:
    event_id, epoch = await _on_sale(conn, org_id)
    await _write(conn, org_id, event_id, epoch, [_sale(event_id, units=(1, 2))])
    fresh, duplicate = _sale(event_id, units=(3,)), _sale(event_id, units=(2,))
    with pytest.raises(asyncpg.UniqueViolationError):
        await _write(conn, org_id, event_id, epoch, [fresh, duplicate])
    with pytest.raises(SaleNotFound):
        await _write(conn, org_id, event_id, epoch, [fresh], [_sale(event_id, units=(4,))])
    with pytest.raises(asyncpg.CheckViolationError):  # unit 101 of 100
        await _write(conn, org_id, event_id, epoch, [fresh, _sale(event_id, units=(101,))])
    with pytest.raises(asyncpg.IntegrityConstraintViolationError):  # no such GA type: no capacity to check against
        await _write(conn, org_id, event_id, epoch, [_sale(event_id, units=(5,), ticket_type="NOPE")])
    assert await _row_counts(admin, event_id) == (1, 2)


async def test_engine_sales_survive_a_restore(conn: asyncpg.Connection, org_id: str) -> None:
    """The inventory's own sales go through write_sales and load_sales and rebuild the same inventory."""
    event_id, epoch = await _on_sale(conn, org_id)
    epoch, event, seat_ids = await _take_epoch(conn, org_id, event_id)
    spec = inventory_spec(event, seat_ids)
    inventory = Inventory(spec)
    holds = [
        Hold("c1", hold_id_for(event_id, "1" * 20), "b1", seats=("A-1-4", "A-1-2")),
        Hold("c2", hold_id_for(event_id, "2" * 20), "b2", ticket_type="GA", quantity=3),
        Hold("c3", hold_id_for(event_id, "3" * 20), "b3", ticket_type="GA", quantity=2),
    ]
    confirms = [Confirm(f"k{n}", h.hold_id, f"order-{n}", CONFIRMER, None) for n, h in enumerate(holds)]
    assert all(isinstance(r, Ok) for r in inventory.apply([*holds, *confirms], now=1000.0))
    changes = inventory.drain_changes()
    assert changes is not None
    await _write(conn, org_id, event_id, epoch, list(changes.sales.values()))
    loaded = await _load(conn, org_id, event_id)
    assert sorted(loaded, key=lambda s: s.hold_id) == sorted(changes.sales.values(), key=lambda s: s.hold_id)
    restored = Inventory.restore(spec, InventorySnapshot(changes.version, (), tuple(loaded)), now=2000.0)
    assert restored.seat_counts() == inventory.seat_counts()
    assert restored.ga_counts() == inventory.ga_counts()


async def test_pool_connections_work_with_the_adapters(database_url: str, org_id: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as pooled:
            assert await pooled.fetchval("SHOW synchronous_commit") == "on"
            assert await pooled.fetchval("SELECT current_user") == "voelgoed_app"
            async with org_transaction(pooled, org_id) as db:
                event = await create_event(db, _new_event())
            async with org_transaction(pooled, org_id) as db:
                assert await get_event(db, event.id) == event
            # the org lasts only as long as its transaction: afterwards the pooled connection sees nothing
            assert await pooled.fetchval("SELECT count(*) FROM events WHERE id = $1", event.id) == 0
    finally:
        await pool.close()


async def test_measure_write_sales_throughput(conn: asyncpg.Connection, org_id: str) -> None:
    """Not a pass/fail bound: prints sales/s for batches of 500 two-ticket sales (seated, then GA), each batch one
    org transaction with its audit entries, as the inventory commits them."""
    batches, batch_size = 20, 500
    sales_total = batches * batch_size
    seat_ids = tuple(f"S-{n // 1000}-{n % 1000 + 1}" for n in range(2 * sales_total))
    started = time.perf_counter()
    event_id, epoch = await _on_sale(conn, org_id, _new_event(seat_ids=seat_ids, ga=(("GA", 2 * sales_total),)))
    create_s = time.perf_counter() - started
    seated = [_sale(event_id, seats=seat_ids[2 * i : 2 * i + 2]) for i in range(sales_total)]
    ga = [_sale(event_id, units=(2 * i + 1, 2 * i + 2)) for i in range(sales_total)]
    for label, sales in (("seated", seated), ("ga", ga)):
        started = time.perf_counter()
        for b in range(batches):
            await _write(conn, org_id, event_id, epoch, sales[b * batch_size : (b + 1) * batch_size])
        elapsed = time.perf_counter() - started
        print(f"\nwrite_sales {label}: {sales_total} sales in {elapsed:.2f}s = {sales_total / elapsed:,.0f} sales/s")
    print(f"create_event with {len(seat_ids)} seats: {create_s:.2f}s")
    started = time.perf_counter()
    loaded = await _load(conn, org_id, event_id)
    print(f"load_sales of {len(loaded)} sales: {time.perf_counter() - started:.2f}s")
    assert len(loaded) == 2 * sales_total
