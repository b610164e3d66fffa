"""Row-level security, the third layer of tenant isolation: whatever a query forgets, Postgres shows and accepts
only the rows of the transaction's org.

- Every table with an org_id column (plus orgs and users) has row-level security and a policy, so a new table
  cannot be forgotten; none is owned by the platform's role (an owner bypasses its own table's policies).
- As voelgoed_app (a pooled connection, as the platform runs), a raw SELECT with no org set, and one with
  another org set, see none of org A's rows, in every tenant table (each is seeded for both orgs, and this test
  fails for a tenant table it has no seed for).
- An INSERT, or an UPDATE, naming another org than the transaction's is refused (WITH CHECK).
- ``unscoped`` (the BYPASSRLS role) sees across orgs; ``org_transaction`` refuses a missing org before it touches
  the database.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.catalog import pricing
from engine.catalog import rules as catalog
from engine.catalog.layouts import Layout, LayoutSeat, Zone
from engine.ids import hold_id_for, order_id_of_hold, payment_attempt_id, sale_id_of_hold, ticket_id_of_hold
from engine.inventory.commands import SaleView, TicketView
from engine.ledger import flows as ledger_flows
from engine.tickets.sealing import MasterKey
from persistence import orders, outbox
from persistence.access.orgs import create_org
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event, publish_event, take_inventory_epoch
from persistence.catalog.layouts import create_layout
from persistence.catalog.prices import put_price_rules
from persistence.catalog.promo_codes import create_promo_code
from persistence.catalog.promo_uses import Taken, insert_use
from persistence.catalog.venues import NewVenue, create_venue
from persistence.db import APP_ROLE, create_pool
from persistence.inventory.sales import write_sales
from persistence.ledger import write as write_ledger_transaction
from persistence.tenancy import PLATFORM_ROLE, MissingOrg, OrgDb, org_transaction, unscoped
from persistence.tickets import create_key, revoke_tickets

# The tables a tenant's rows live in, each seeded below for both orgs. A table with an org_id column that is not
# here fails test_every_tenant_table_is_seeded_here: add its seed, and RLS to its migration.
TENANT_TABLES = (
    "api_keys", "events", "seats", "ticket_types", "sales", "tickets", "memberships", "invitations", "sessions",
    "audit_log", "audit_heads", "venues", "layouts", "layout_zones", "layout_seats",
    "price_lists", "price_tiers", "event_fees", "promo_codes", "promo_uses",
    "ticket_keys", "ticket_revocation_lists", "ticket_revocations",
    "ledger_transactions", "ledger_entries",
    "orders", "payment_attempts", "provider_events", "order_refunds", "ticket_codes", "outbox",
    "order_refund_tickets",
)
# The load-test baselines' own tables (loadtests/baselines/postgres.sql, created in the same database by their
# tests): never made by the platform's migrations, holding no platform row.
BASELINE_TABLE_PREFIX = "bl_"
SEAT_IDS = ("A-1-1", "A-1-2", "A-1-3")


@dataclass(frozen=True)
class Tenant:
    org_id: str
    user_id: str
    event_id: str


@pytest.fixture(scope="module")
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The URL's superuser: row-level security does not apply to it (the seeds and the ground truth)."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """The platform's own pool: every connection acts as voelgoed_app."""
    made = await create_pool(database_url, min_size=1, max_size=2)
    yield made
    await made.close()


async def _seed(admin: asyncpg.Connection, pool: asyncpg.Pool, name: str) -> Tenant:
    """An org with a row in every tenant table: through the repositories where they exist (orgs with their owner
    key and audit entries, events with seats and ticket types, sales with tickets and their audit entries, a ticket
    key and a revocation), raw
    inserts as the superuser for people (users, memberships, invitations, sessions)."""
    async with pool.acquire() as conn:
        org_id, _ = await create_org(conn, name)
        new = NewEvent(
            name=name, starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC), hold_ttl_s=600, max_tickets_per_buyer=10,
            seating={"sections": [{"name": "A", "rows": [{"label": "1", "seats": len(SEAT_IDS)}]}]},
            seat_ids=SEAT_IDS,
            ticket_types=(
                TicketTypeRecord("SEAT", "seated", len(SEAT_IDS), 100, "ZAR"),
                TicketTypeRecord("GA", "ga", 10, 50, "ZAR"),
            ),
        )
        async with org_transaction(conn, org_id) as db:
            event = await create_event(db, new)
            await put_price_rules(db, event.id, _priced(new))
            assert await create_promo_code(db, event.id, pricing.Promo("SEED", percent_off_bp=100))
            used, _ = await insert_use(db, event.id, "SEED", f"use-{org_id}", "buyer")
            assert used is Taken.TAKEN
            await publish_event(db, event.id)
            taken = await take_inventory_epoch(db, event.id)
        assert taken is not None
        hold_id = hold_id_for(event.id, secrets.token_hex(10))
        sale = SaleView(
            sale_id_of_hold(hold_id), hold_id, "buyer", "order",
            (TicketView(ticket_id_of_hold(hold_id, 1), "SEAT", "A-1-1", None),),
        )
        async with org_transaction(conn, org_id) as db:
            await write_sales(db, event.id, taken[0], [sale], [])
            key = await create_key(db, MasterKey(secrets.token_bytes(32)))
            assert key is not None
            assert await revoke_tickets(db, event.id, [sale.tickets[0].ticket_id]) == 1
        async with org_transaction(conn, org_id) as db:
            await _seed_order(db, event.id, hold_id, key.kid, sale.tickets[0].ticket_id)
        async with org_transaction(conn, org_id) as db:
            venue = await create_venue(db, NewVenue(name, "Africa/Johannesburg", None))
            layout = Layout("Hall", (Zone("FLOOR", "Floor"),), (LayoutSeat("A", "1", 1, 1.0, 1.0, "FLOOR", ()),))
            await create_layout(db, venue.id, layout)
        async with org_transaction(conn, org_id) as db:
            paid = ledger_flows.capture(
                f"ord-{org_id}", pricing.quote(_priced_list(), [pricing.Item("GA", 1)], new.starts_at),
                transaction_id="ltx_" + secrets.token_hex(16), source=f"payment:{org_id}",
            )
            assert paid.transaction is not None
            await write_ledger_transaction(db, paid.transaction)
    user_id = "usr_" + secrets.token_hex(16)
    now = datetime.now(UTC)
    await admin.execute("INSERT INTO users (id, email) VALUES ($1, $2)", user_id, f"{user_id}@example.com")
    await admin.execute("INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, 'admin')", org_id, user_id)
    await admin.execute(
        "INSERT INTO invitations (id, org_id, user_id, secret_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        "inv_" + secrets.token_hex(16), org_id, user_id, secrets.token_bytes(32), now + timedelta(days=1),
    )
    await admin.execute(
        "INSERT INTO sessions (id, org_id, user_id, refresh_hash, expires_at) VALUES ($1, $2, $3, $4, $5)",
        "ses_" + secrets.token_hex(16), org_id, user_id, secrets.token_bytes(32), now + timedelta(days=1),
    )
    return Tenant(org_id, user_id, event.id)


async def _seed_order(db: OrgDb, event_id: str, hold_id: str, kid: str, ticket_id: str) -> None:
    """An order with its attempt, a provider event, a refund of its ticket, a ticket code and an outbox row."""
    order_id = order_id_of_hold(hold_id)
    quote = pricing.quote(_priced_list(), [pricing.Item("GA", 1)], datetime.now(UTC))
    expires_at = datetime.now(UTC) + timedelta(minutes=10)
    new = orders.NewOrder(order_id, event_id, hold_id, "buyer", "b@example.com", "B", quote, expires_at)
    await orders.insert_order(db, new)
    attempt_id = payment_attempt_id(order_id)
    await orders.insert_attempt(db, attempt_id, order_id, "simulator", quote.total_minor, "ZAR")
    await orders.set_attempt(db, attempt_id, status="requires_payment", intent_id=f"pi_{order_id}")
    assert await orders.record_provider_event(db, "simulator", f"evt-{order_id}", "payment.authorized",
                                              f"pi_{order_id}", "moved")
    await orders.add_refund(db, f"ref_{order_id}", order_id, 0, "ZAR", "hold_lost", [ticket_id])
    await orders.insert_ticket_codes(db, order_id, kid, [(ticket_id, "1" + "A" * 108 + "SEAT.A-1-1")])
    await outbox.owe(db, [outbox.Owed("orders.fulfil", order_id, {"order_id": order_id})])


def _priced_list() -> pricing.PriceList:
    """A price list to pay a ledger transaction with (a row in each ledger table)."""
    return pricing.PriceList("ZAR", {"GA": pricing.TypePrice("GA", 50)}, (pricing.Fee("BOOKING", "order", 10),))


def _priced(new: NewEvent) -> catalog.StockedEvent:
    """The seed event's stock with a price tier, a fee and a tax: a row in every pricing table."""
    tier = pricing.PriceTier(datetime(2026, 12, 1, tzinfo=UTC), 40, "ZAR")
    return catalog.StockedEvent(
        name=new.name, starts_at=new.starts_at, hold_ttl_s=new.hold_ttl_s,
        max_tickets_per_buyer=new.max_tickets_per_buyer, seat_ids=new.seat_ids,
        ticket_types=tuple(
            catalog.TicketType(t.code, t.kind, t.capacity, catalog.Price(t.price_minor, t.currency),
                               price_tiers=(tier,) if t.kind == "ga" else ())
            for t in new.ticket_types
        ),
        fees=(pricing.Fee("BOOKING", "order", amount_minor=10),),
        tax=pricing.Tax("VAT", 1_500, False),
    )


@pytest.fixture(scope="module")
async def tenants(admin: asyncpg.Connection, pool: asyncpg.Pool) -> tuple[Tenant, Tenant]:
    return await _seed(admin, pool, "Tenant A"), await _seed(admin, pool, "Tenant B")


async def _tables_with_org_id(admin: asyncpg.Connection) -> set[str]:
    rows = await admin.fetch(
        "SELECT c.table_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'public' AND c.column_name = 'org_id' AND t.table_type = 'BASE TABLE'"
    )
    return {r["table_name"] for r in rows if not r["table_name"].startswith(BASELINE_TABLE_PREFIX)}


# ---- (a) every tenant table is protected -------------------------------------------------------------------------


async def test_every_table_with_an_org_has_row_level_security_and_a_policy(admin: asyncpg.Connection) -> None:
    protected = await _tables_with_org_id(admin) | {"orgs", "users"}
    rows = await admin.fetch(
        "SELECT c.relname, c.relrowsecurity, pg_get_userbyid(c.relowner) AS owner, "
        "(SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname) AS policies "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname = ANY($1::text[])",
        sorted(protected),
    )
    found = {r["relname"]: r for r in rows}
    assert set(found) == protected
    unprotected = sorted(name for name, r in found.items() if not r["relrowsecurity"] or r["policies"] == 0)
    assert unprotected == []
    # The owner of a table bypasses its policies: the platform's roles must never own one.
    assert {r["owner"] for r in rows}.isdisjoint({APP_ROLE, PLATFORM_ROLE})


async def test_every_tenant_table_is_seeded_here(admin: asyncpg.Connection) -> None:
    assert await _tables_with_org_id(admin) == set(TENANT_TABLES)


# ---- (b) a raw query without the org, or with another org, sees none of its rows ----------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_no_org_and_another_org_see_none_of_the_orgs_rows(
    admin: asyncpg.Connection, pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant], table: str
) -> None:
    a, b = tenants
    count = f"SELECT count(*) FROM {table}"
    assert await admin.fetchval(count + " WHERE org_id = $1", a.org_id) > 0  # the rows are there
    async with pool.acquire() as conn:
        # No org set: nothing at all, whatever the query asks for.
        assert await conn.fetchval(count) == 0
        assert await conn.fetchval(count + " WHERE org_id = $1", a.org_id) == 0
        async with conn.transaction():
            assert await conn.fetchval(count + " WHERE org_id = $1", a.org_id) == 0
        # Another org set: its own rows, never A's.
        async with org_transaction(conn, b.org_id):
            assert await conn.fetchval(count + " WHERE org_id = $1", a.org_id) == 0
            assert await conn.fetchval(count + " WHERE org_id <> $1", b.org_id) == 0
            assert await conn.fetchval(count) > 0  # the setting works: B sees B's
        # The org lasts as long as its transaction: the connection goes back to the pool seeing nothing.
        assert await conn.fetchval(count) == 0


async def test_orgs_and_people_of_another_org_are_invisible(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM orgs") == 0
        assert await conn.fetchval("SELECT count(*) FROM users") == 0
        async with org_transaction(conn, b.org_id):
            assert await conn.fetchval("SELECT array_agg(id) FROM orgs") == [b.org_id]
            assert await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", a.user_id) == 0
            assert await conn.fetchval("SELECT count(*) FROM users WHERE id = $1", b.user_id) == 1
            # No org may change a person at all (a person is shared by their orgs): refused outright, own members
            # included; nor read a password hash.
            for statement in (
                "UPDATE users SET email = 'x@example.com' WHERE id = $1",
                "SELECT password_hash FROM users WHERE id = $1",
            ):
                for user_id in (a.user_id, b.user_id):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        async with conn.transaction():
                            await conn.execute(statement, user_id)


# ---- (c) nothing is written under another org ----------------------------------------------------------------


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_insert_naming_another_org_is_refused(
    admin: asyncpg.Connection, pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant], table: str
) -> None:
    """Org B's transaction re-inserting one of A's rows, as it is, is refused by the policy's WITH CHECK (which
    Postgres checks before the row's other constraints)."""
    a, b = tenants
    columns = [
        r["attname"]
        for r in await admin.fetch(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped "
            "AND attgenerated = '' ORDER BY attnum",
            table,
        )
    ]
    row = await admin.fetchrow(f"SELECT {', '.join(columns)} FROM {table} WHERE org_id = $1 LIMIT 1", a.org_id)
    assert row is not None
    values: list[Any] = [row[c] for c in columns]
    placeholders = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with org_transaction(conn, b.org_id):
                await conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", *values)


async def test_moving_a_row_to_another_org_is_refused(pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]) -> None:
    a, b = tenants
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with org_transaction(conn, a.org_id):
                await conn.execute("UPDATE api_keys SET org_id = $1 WHERE org_id = $2", b.org_id, a.org_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with org_transaction(conn, b.org_id):
                await conn.execute("INSERT INTO orgs (id, name) VALUES ($1, 'forged')", "org_" + secrets.token_hex(16))


# ---- (d) the roles -----------------------------------------------------------------------------------------------


async def test_pooled_connections_act_as_the_app_role_and_unscoped_sees_every_org(
    pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = tenants
    both = [a.event_id, b.event_id]
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        assert await conn.fetchval("SELECT count(*) FROM events WHERE id = ANY($1::text[])", both) == 0
        async with unscoped(conn, reason="test: a platform report across orgs") as raw:
            assert await raw.fetchval("SELECT current_user") == PLATFORM_ROLE
            assert await raw.fetchval("SELECT count(*) FROM events WHERE id = ANY($1::text[])", both) == 2
        assert await conn.fetchval("SELECT current_user") == APP_ROLE  # SET LOCAL ROLE ended with its transaction


async def test_unscoped_must_say_why(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="must say why"):
            async with unscoped(conn, reason=""):
                pass


# ---- (e) no org, no transaction ------------------------------------------------------------------------------


class UntouchableConnection:
    """Any use of it fails the test: proof that nothing reached the database."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the database was touched ({name}) before the org was checked")


@pytest.mark.parametrize(
    "org_id", [None, "", "bogus", "org_" + "A" * 32, "org_" + "a" * 31, " org_" + "a" * 32, "evt_" + "a" * 32]
)
async def test_org_transaction_without_a_well_formed_org_raises_before_touching_the_database(org_id: Any) -> None:
    with pytest.raises(MissingOrg):
        async with org_transaction(UntouchableConnection(), org_id):  # type: ignore[arg-type]
            pass


# ---- (f) the two never nest --------------------------------------------------------------------------------------


async def test_unscoped_and_org_transaction_refuse_to_nest(pool: asyncpg.Pool, tenants: tuple[Tenant, Tenant]) -> None:
    """unscoped inside a transaction would be a savepoint whose SET LOCAL ROLE outlives it (the org transaction
    would commit without row-level security); an org transaction inside unscoped would run as the BYPASSRLS role.
    Both raise, and the connection is left as it was."""
    a, b = tenants
    both = [a.event_id, b.event_id]
    async with pool.acquire() as conn:
        async with org_transaction(conn, a.org_id) as db:
            with pytest.raises(RuntimeError, match="unscoped inside a transaction"):
                async with unscoped(db.conn, reason="test: nested in an org transaction"):
                    pass
            assert await db.conn.fetchval("SELECT current_user") == APP_ROLE
            assert await db.conn.fetchval("SELECT count(*) FROM events WHERE id = ANY($1::text[])", both) == 1
        async with unscoped(conn, reason="test: an org transaction nested in it") as raw:
            with pytest.raises(RuntimeError, match="org_transaction inside unscoped"):
                async with org_transaction(raw, a.org_id):
                    pass
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        # A savepoint of the same org stays allowed.
        async with org_transaction(conn, a.org_id) as db, org_transaction(db.conn, a.org_id) as inner:
            assert await inner.conn.fetchval("SELECT count(*) FROM events WHERE id = ANY($1::text[])", both) == 1
