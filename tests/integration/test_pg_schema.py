"""The schema on its own defends the invariants: these tests write raw SQL, bypassing persistence/ code, to
play a buggy writer, and expect Postgres to refuse."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from engine import limits
from engine.access.rules import KEY_KINDS, PUBLISHABLE_SCOPES, ROLES, SCOPES
from engine.ids import hold_id_for, sale_id_of_hold, ticket_id_of_hold
from persistence.access.orgs import create_org
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event
from persistence.migrate import available_migrations, migrate
from persistence.tenancy import org_transaction

GA_CAPACITY = 5_000
SEAT_IDS = ("A-1-1", "A-1-2", "A-1-3", "A-1-4")


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def event(conn: asyncpg.Connection) -> tuple[str, str]:
    """(org_id, event_id): 4 seats of type SEAT and GA_CAPACITY units of type GA."""
    org_id, _ = await create_org(conn, "Schema Org")
    new = NewEvent(
        name="Schema Event",
        starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
        hold_ttl_s=600,
        max_tickets_per_buyer=10,
        seating={"sections": []},
        seat_ids=SEAT_IDS,
        ticket_types=(
            TicketTypeRecord("GA", "ga", GA_CAPACITY, 15_000, "ZAR"),
            TicketTypeRecord("SEAT", "seated", len(SEAT_IDS), 30_000, "ZAR"),
        ),
    )
    async with org_transaction(conn, org_id) as db:
        record = await create_event(db, new)
    return org_id, record.id


async def _insert_sale(conn: asyncpg.Connection, org_id: str, event_id: str, *, hold_event: str | None = None) -> str:
    hold_id = hold_id_for(hold_event or event_id, secrets.token_hex(10))
    sale_id = sale_id_of_hold(hold_id)
    await conn.execute(
        "INSERT INTO sales (id, org_id, event_id, hold_id, buyer_id, order_ref, epoch) "
        "VALUES ($1, $2, $3, $4, 'buyer', 'order', 1)",
        sale_id,
        org_id,
        event_id,
        hold_id,
    )
    return sale_id


async def _insert_ticket(
    conn: asyncpg.Connection,
    org_id: str,
    event_id: str,
    sale_id: str,
    *,
    ticket_type: str,
    seat_id: str | None = None,
    unit: int | None = None,
    capacity: int | None = None,
    ordinal: int = 1,
) -> None:
    hold_id = "hld_" + sale_id[len("sal_") :]
    await conn.execute(
        "INSERT INTO tickets (id, org_id, event_id, sale_id, ordinal, ticket_type, seat_id, unit, capacity) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        ticket_id_of_hold(hold_id, ordinal),
        org_id,
        event_id,
        sale_id,
        ordinal,
        ticket_type,
        seat_id,
        unit,
        capacity,
    )


async def _seat_sale(conn: asyncpg.Connection, org_id: str, event_id: str, seat_id: str) -> str:
    sale_id = await _insert_sale(conn, org_id, event_id)
    await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id=seat_id)
    return sale_id


async def _ga_sale(conn: asyncpg.Connection, org_id: str, event_id: str, unit: int, capacity: int = GA_CAPACITY) -> str:
    sale_id = await _insert_sale(conn, org_id, event_id)
    await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="GA", unit=unit, capacity=capacity)
    return sale_id


# ---- migrations ------------------------------------------------------------------------------------------


async def test_migrate_is_idempotent(database_url: str, conn: asyncpg.Connection) -> None:
    assert await migrate(database_url) == []
    versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in available_migrations()]
    assert versions[0] == 1


async def test_concurrent_migrations_apply_each_file_once(conn: asyncpg.Connection, database_url: str) -> None:
    name = "vg_migrate_race_" + secrets.token_hex(4)
    await conn.execute(f"CREATE DATABASE {name}")
    try:
        url = _with_database(database_url, name)
        results = await asyncio.gather(*(migrate(url) for _ in range(6)))
        all_versions = [m.version for m in available_migrations()]
        assert sorted(results, key=len) == [[]] * 5 + [all_versions]
        assert await migrate(url) == []
    finally:
        await conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


# ---- oversell defences -----------------------------------------------------------------------------------


async def test_second_live_ticket_for_a_seat_is_refused(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    await _seat_sale(conn, org_id, event_id, "A-1-1")
    with pytest.raises(asyncpg.UniqueViolationError):
        await _seat_sale(conn, org_id, event_id, "A-1-1")


async def test_cancelling_a_sale_cancels_its_tickets_and_frees_the_seat(
    conn: asyncpg.Connection, event: tuple[str, str]
) -> None:
    org_id, event_id = event
    sale_id = await _seat_sale(conn, org_id, event_id, "A-1-2")
    await conn.execute("UPDATE sales SET status = 'cancelled', cancelled_at = now() WHERE id = $1", sale_id)
    assert await conn.fetchval("SELECT status FROM tickets WHERE sale_id = $1", sale_id) == "cancelled"
    await _seat_sale(conn, org_id, event_id, "A-1-2")  # the seat can be sold again


async def test_a_ticket_cancelled_on_its_own_frees_its_seat_and_its_sale_stands(
    conn: asyncpg.Connection, event: tuple[str, str]
) -> None:
    """A refund of part of an order (the inventory's CancelTickets, 012_ticket_cancellations.sql)."""
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id="A-1-3")
    await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id="A-1-4", ordinal=2)
    await conn.execute("UPDATE tickets SET status = 'cancelled' WHERE sale_id = $1 AND ordinal = 1", sale_id)
    assert await conn.fetchval("SELECT status FROM sales WHERE id = $1", sale_id) == "live"
    await _seat_sale(conn, org_id, event_id, "A-1-3")  # the seat can be sold again
    with pytest.raises(asyncpg.UniqueViolationError):
        await _seat_sale(conn, org_id, event_id, "A-1-4")  # its live sibling still holds its seat
    await conn.execute("UPDATE sales SET status = 'cancelled', cancelled_at = now() WHERE id = $1", sale_id)
    statuses = await conn.fetch("SELECT status, sale_status FROM tickets WHERE sale_id = $1", sale_id)
    assert {(r["status"], r["sale_status"]) for r in statuses} == {("cancelled", "cancelled")}


async def test_a_cancelled_ticket_never_comes_back_live(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _seat_sale(conn, org_id, event_id, "A-1-1")
    await conn.execute("UPDATE tickets SET status = 'cancelled' WHERE sale_id = $1", sale_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE tickets SET status = 'live' WHERE sale_id = $1", sale_id)


async def test_a_live_ticket_cannot_be_in_a_cancelled_sale(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _seat_sale(conn, org_id, event_id, "A-1-2")
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # the ticket's sale_status is its sale's
        await conn.execute("UPDATE tickets SET sale_status = 'cancelled' WHERE sale_id = $1", sale_id)
    await conn.execute("UPDATE sales SET status = 'cancelled', cancelled_at = now() WHERE id = $1", sale_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id="A-1-3", ordinal=2)


async def test_ticket_for_a_seat_outside_the_event_is_refused(
    conn: asyncpg.Connection, event: tuple[str, str]
) -> None:
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id="Z-9-99")


@pytest.mark.parametrize("unit", [0, -1, GA_CAPACITY + 1])
async def test_ga_unit_outside_one_to_capacity_is_refused(
    conn: asyncpg.Connection, event: tuple[str, str], unit: int
) -> None:
    org_id, event_id = event
    with pytest.raises(asyncpg.CheckViolationError):
        await _ga_sale(conn, org_id, event_id, unit)


async def test_ga_unit_at_capacity_is_accepted_once(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    await _ga_sale(conn, org_id, event_id, GA_CAPACITY)
    with pytest.raises(asyncpg.UniqueViolationError):
        await _ga_sale(conn, org_id, event_id, GA_CAPACITY)


async def test_ga_capacity_cannot_be_forged(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    """A writer claiming a bigger capacity to sell unit 5,001 of 5,000 is refused by the foreign key."""
    org_id, event_id = event
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _ga_sale(conn, org_id, event_id, GA_CAPACITY + 1, capacity=GA_CAPACITY + 1)


async def test_ga_unit_without_capacity_is_refused(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="GA", unit=1)


async def test_ticket_kind_must_match_its_type(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # a GA type sold as a seat
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="GA", seat_id="A-1-4")
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # a seated type sold as a unit
        await _insert_ticket(
            conn, org_id, event_id, sale_id, ticket_type="SEAT", unit=1, capacity=len(SEAT_IDS)
        )


async def test_ticket_needs_exactly_one_of_seat_and_unit(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT")
    with pytest.raises(asyncpg.CheckViolationError):
        await _insert_ticket(
            conn, org_id, event_id, sale_id, ticket_type="GA", seat_id="A-1-4", unit=1, capacity=GA_CAPACITY
        )


async def test_event_status_and_epoch_only_move_forward(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    _, event_id = event
    await conn.execute(
        "UPDATE events SET status = 'on_sale', published_at = now(), inventory_epoch = 3 WHERE id = $1", event_id
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE events SET status = 'draft', published_at = NULL WHERE id = $1", event_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE events SET inventory_epoch = 2 WHERE id = $1", event_id)
    await conn.execute("UPDATE events SET inventory_epoch = 4 WHERE id = $1", event_id)


# ---- tenancy and identity --------------------------------------------------------------------------------


async def test_child_rows_cannot_claim_another_org(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    other_org, _ = await create_org(conn, "Other Org")
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _insert_sale(conn, other_org, event_id)
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _insert_ticket(conn, other_org, event_id, sale_id, ticket_type="SEAT", seat_id="A-1-4")


async def test_a_sale_hold_must_belong_to_its_event(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    with pytest.raises(asyncpg.CheckViolationError):
        await _insert_sale(conn, org_id, event_id, hold_event="evt_" + "0" * 32)


async def test_one_hold_makes_at_most_one_sale(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO sales (id, org_id, event_id, hold_id, buyer_id, order_ref, epoch) "
            "SELECT id, org_id, event_id, hold_id, 'b2', 'o2', 1 FROM sales WHERE id = $1",
            sale_id,
        )


async def test_a_seated_ticket_is_its_seats_type(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    """Several seated types may share an event (a layout's zones, migration 003), but a seat sells as its own."""
    org_id, event_id = event
    await conn.execute(
        "INSERT INTO ticket_types (org_id, event_id, code, position, kind, capacity, price_minor, currency, zone) "
        "VALUES ($1, $2, 'SEAT2', 5, 'seated', 0, 1, 'ZAR', 'BOX')",
        org_id,
        event_id,
    )
    sale_id = await _insert_sale(conn, org_id, event_id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT2", seat_id="A-1-1")
    await _insert_ticket(conn, org_id, event_id, sale_id, ticket_type="SEAT", seat_id="A-1-1")
    with pytest.raises(asyncpg.UniqueViolationError):  # a zone is one type's
        await conn.execute(
            "INSERT INTO ticket_types (org_id, event_id, code, position, kind, capacity, price_minor, currency, zone) "
            "VALUES ($1, $2, 'SEAT3', 6, 'seated', 0, 1, 'ZAR', 'BOX')",
            org_id,
            event_id,
        )
    with pytest.raises(asyncpg.CheckViolationError):  # only a seated type has a zone
        await conn.execute(
            "INSERT INTO ticket_types (org_id, event_id, code, position, kind, capacity, price_minor, currency, zone) "
            "VALUES ($1, $2, 'GA2', 7, 'ga', 5, 1, 'ZAR', 'PIT')",
            org_id,
            event_id,
        )


async def test_a_layout_repeats_no_seat(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, _ = event
    venue_id, layout_id = "ven_" + secrets.token_hex(16), "lay_" + secrets.token_hex(16)
    await conn.execute(
        "INSERT INTO venues (id, org_id, name, timezone) VALUES ($1, $2, 'Hall', 'UTC')", venue_id, org_id
    )
    await conn.execute(
        "INSERT INTO layouts (id, org_id, venue_id, name, seat_count) VALUES ($1, $2, $3, 'Main', 2)",
        layout_id, org_id, venue_id,
    )
    seat = (
        "INSERT INTO layout_seats (org_id, layout_id, seat_index, section, row_label, number, x, y, zone) "
        "VALUES ($1, $2, $3, 'A', '1', 1, 0, 0, $4)"
    )
    await conn.execute(seat, org_id, layout_id, 0, None)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(seat, org_id, layout_id, 1, None)
    with pytest.raises(asyncpg.ForeignKeyViolationError):  # a zone the layout does not have
        await conn.execute(seat.replace("'1', 1", "'1', 2"), org_id, layout_id, 1, "PIT")


async def test_api_key_scopes_are_the_known_ones(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, _ = event

    async def insert(scopes: list[str]) -> None:
        await conn.execute(
            "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, scopes) VALUES ($1, $2, 'k', $3, $4, $5)",
            "key_" + secrets.token_hex(16),
            org_id,
            secrets.token_hex(6),
            bytes(32),
            scopes,
        )

    await insert(list(SCOPES))  # the schema's list agrees with engine.access.rules
    with pytest.raises(asyncpg.CheckViolationError):
        await insert(["events:read", "root"])
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, scopes) VALUES ($1, $2, 'k', $3, $4, '{}')",
            "key_" + secrets.token_hex(16),
            org_id,
            secrets.token_hex(6),
            b"short",
        )


async def _check_values(conn: asyncpg.Connection, table: str, constraint_like: str) -> set[str]:
    """The quoted names a table's CHECK constraints (those whose name matches) allow, read back from Postgres."""
    rows = await conn.fetch(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = $1::regclass AND contype = 'c' AND conname LIKE $2",
        table,
        constraint_like,
    )
    assert rows, f"no CHECK constraint {constraint_like!r} on {table}"
    return {name for row in rows for name in re.findall(r"'([a-z_:]+)'", row[0])}


async def test_migrations_lists_agree_with_engine_access(conn: asyncpg.Connection) -> None:
    """Migration 002 repeats engine/access/rules.py's scopes, roles and key kinds: the lists must stay equal."""
    assert await _check_values(conn, "api_keys", "api_keys_scopes_check") == set(SCOPES)
    publishable = await _check_values(conn, "api_keys", "api_keys_publishable_scopes_check")
    assert publishable - {"secret"} == set(PUBLISHABLE_SCOPES)
    assert await _check_values(conn, "api_keys", "api_keys_kind_check") == set(KEY_KINDS)
    assert await _check_values(conn, "memberships", "memberships_role_check") == set(ROLES)


# ---- the schema's bounds are engine/limits.py's ----------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "low", "high"),
    [
        ("hold_ttl_s", limits.hold_ttl_s_min, limits.hold_ttl_s_max),
        ("max_tickets_per_buyer", 1, limits.max_tickets_per_buyer_max),
        ("seat_count", 0, limits.seats_per_event_max),
    ],
)
async def test_event_bounds_match_engine_limits(
    conn: asyncpg.Connection, event: tuple[str, str], column: str, low: int, high: int
) -> None:
    org_id, _ = event

    for ok in (low, high):
        event_id = "evt_" + secrets.token_hex(16)
        await conn.execute(
            "INSERT INTO events (id, org_id, name, starts_at, hold_ttl_s, max_tickets_per_buyer) "
            "VALUES ($1, $2, 'e', now(), 60, 1)",
            event_id,
            org_id,
        )
        await conn.execute(f"UPDATE events SET {column} = $2 WHERE id = $1", event_id, ok)
        for bad in (low - 1, high + 1):
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(f"UPDATE events SET {column} = $2 WHERE id = $1", event_id, bad)


async def test_ticket_type_bounds_match_engine_limits(conn: asyncpg.Connection, event: tuple[str, str]) -> None:
    org_id, event_id = event
    sql = (
        "INSERT INTO ticket_types (org_id, event_id, code, position, kind, capacity, price_minor, currency) "
        "VALUES ($1, $2, $3, $4, 'ga', $5, 0, $6)"
    )
    await conn.execute(sql, org_id, event_id, "MAX", 2, limits.ga_capacity_max, "USD")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(sql, org_id, event_id, "OVER", 3, limits.ga_capacity_max + 1, "USD")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(sql, org_id, event_id, "LOWER", 3, 10, "usd")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(sql, org_id, event_id, "X" * (limits.label_chars_max + 1), 3, 10, "USD")
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(sql, org_id, event_id, "POS", limits.ticket_types_per_event_max, 10, "USD")
