"""The ledger's store on a real Postgres (persistence/ledger.py, migrations/006_ledger.sql): a transaction written
in a unit of work and read back; a source posts once; the schema refuses what the core never builds (unbalanced,
missing or late entries); UPDATE and DELETE are refused for everyone; another org sees nothing and cannot post
into this org's transactions; two payouts at once never spend the same payable."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from types import MappingProxyType

import asyncpg
import pytest

from engine.catalog import pricing
from engine.ledger import flows
from engine.ledger.accounts import Account, TransactionKind
from engine.ledger.book import Transaction
from engine.refusals import Refused
from persistence import audit, ledger
from persistence.db import connect
from persistence.tenancy import TenantPool, org_transaction
from services.unit_of_work import UnitsOfWork

A = Account
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
ACTOR = audit.Actor("system", "test")
PRICES = pricing.PriceList(
    "ZAR", MappingProxyType({"GA": pricing.TypePrice("GA", 15_000)}),
    fees=(pricing.Fee("BOOKING", "ticket", amount_minor=1_000),), tax=pricing.Tax("VAT", 1_500, included=False),
)


def ids(what: str) -> dict[str, str]:
    token = secrets.token_hex(16)
    return {"transaction_id": f"ltx_{token}", "source": f"{what}:{token}"}


async def new_org(owner: asyncpg.Connection) -> str:
    org_id = "org_" + secrets.token_hex(16)
    await owner.execute("INSERT INTO orgs (id, name) VALUES ($1, 'Ledger Org')", org_id)
    return org_id


def paid_order(quantity: int = 2) -> flows.Posting:
    quote = pricing.quote(PRICES, [pricing.Item("GA", quantity)], NOW)
    return flows.capture("ord_" + secrets.token_hex(8), quote, release=True, **ids("payment"))


async def test_a_transaction_is_written_in_a_unit_of_work_and_read_back(
    owner: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    org_id = await new_org(owner)
    units = UnitsOfWork(TenantPool(pool))
    paid = paid_order()
    refund = flows.refund(paid.money, {"GA": 1}, **ids("refund"))
    assert paid.transaction is not None and refund.transaction is not None
    async with units.begin(org_id, ACTOR) as uow:
        assert await ledger.write(uow.db, paid.transaction) == ledger.Written(paid.transaction.id, True)
        assert (await ledger.write(uow.db, refund.transaction)).created
    async with TenantPool(pool).tenant(org_id) as db:
        stored = await ledger.of_order(db, paid.money.order_id)
        assert [s.transaction for s in stored] == [paid.transaction, refund.transaction]
        assert stored[0].seq < stored[1].seq
        assert await ledger.balances(db, "ZAR") == {
            # 2 x 15,000 + 2 x 1,000 fee + 15 % VAT = 36,800 paid; one of the two tickets back: half of each line
            ("ZAR", A.PROVIDER_CLEARING): 36_800, ("ZAR", A.REFUNDS): -18_400, ("ZAR", A.ORGANIZER_PAYABLE): -15_000,
            ("ZAR", A.PLATFORM_FEES): -1_000, ("ZAR", A.TAX_PAYABLE): -2_400,
        }
        assert await ledger.trial_balance(db) == {"ZAR": 0}
        first = await ledger.list_transactions(db, limit=1)
        assert [s.transaction.id for s in first.transactions] == [paid.transaction.id]
        rest = await ledger.list_transactions(db, after_seq=first.next_after_seq, limit=1)
        assert [s.transaction.id for s in rest.transactions] == [refund.transaction.id]
        assert rest.next_after_seq is None
        verdict = await ledger.verify(db)
        assert verdict.ok and verdict.transactions == 2 and verdict.against_normal == ()


async def test_a_unit_that_fails_leaves_no_transaction(owner: asyncpg.Connection, pool: asyncpg.Pool) -> None:
    org_id = await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    with pytest.raises(RuntimeError, match="boom"):
        async with UnitsOfWork(TenantPool(pool)).begin(org_id, ACTOR) as uow:
            await ledger.write(uow.db, paid.transaction)
            raise RuntimeError("boom")
    async with TenantPool(pool).tenant(org_id) as db:
        assert await ledger.of_order(db, paid.money.order_id) == ()


async def test_a_source_posts_once(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    replay = Transaction("ltx_" + secrets.token_hex(16), paid.transaction.kind, paid.transaction.source,
                         paid.transaction.entries, order_id=paid.transaction.order_id)
    async with org_transaction(app_conn, org_id) as db:
        await ledger.write(db, paid.transaction)
    async with org_transaction(app_conn, org_id) as db:
        # the webhook again, under a new id: the one already posted answers, nothing more is posted
        assert await ledger.write(db, replay) == ledger.Written(paid.transaction.id, False)
        other = paid_order(quantity=1).transaction
        assert other is not None
        forged = Transaction("ltx_" + secrets.token_hex(16), other.kind, paid.transaction.source, other.entries)
        with pytest.raises(ledger.SourceReused):
            await ledger.write(db, forged)
    async with org_transaction(app_conn, org_id) as db:
        assert len((await ledger.list_transactions(db)).transactions) == 1


async def _raw_transaction(db_conn: asyncpg.Connection, org_id: str, txn_id: str, declared: int) -> None:
    await db_conn.execute(
        "INSERT INTO ledger_transactions (org_id, id, kind, source, entries) VALUES ($1, $2, 'payout', $3, $4)",
        org_id, txn_id, f"raw:{txn_id}", declared,
    )


async def _raw_entry(db_conn: asyncpg.Connection, org_id: str, txn_id: str, position: int, amount: int,
                     account: str = "payouts", currency: str = "ZAR") -> None:
    await db_conn.execute(
        "INSERT INTO ledger_entries (org_id, transaction_id, position, account, currency, amount_minor)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        org_id, txn_id, position, account, currency, amount,
    )


@pytest.mark.parametrize(
    ("entries", "declared", "message"),
    [
        ([("organizer_payable", "ZAR", 100), ("payouts", "ZAR", -99)], 2, "does not balance: ZAR 1"),
        ([("organizer_payable", "ZAR", 100), ("payouts", "USD", -100)], 2, "does not balance"),
        ([("organizer_payable", "ZAR", 100), ("payouts", "ZAR", -100)], 3, "has 2 entries, not the 3"),
    ],
)
async def test_the_schema_refuses_an_unbalanced_transaction_at_commit(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, entries: list[tuple[str, str, int]], declared: int,
    message: str,
) -> None:
    org_id = await new_org(owner)
    txn_id = "ltx_" + secrets.token_hex(16)
    with pytest.raises(asyncpg.CheckViolationError, match=message):
        async with org_transaction(app_conn, org_id) as db:
            await _raw_transaction(db.conn, org_id, txn_id, declared)
            for n, (account, currency, amount) in enumerate(entries):
                await _raw_entry(db.conn, org_id, txn_id, n, amount, account, currency)
    assert await owner.fetchval("SELECT count(*) FROM ledger_transactions WHERE id = $1", txn_id) == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("amount_minor", 0), ("currency", "zar"), ("account", "cash"), ("amount_minor", 10**15 + 1)],
)
async def test_the_schema_refuses_a_malformed_entry(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, column: str, value: object
) -> None:
    org_id = await new_org(owner)
    txn_id = "ltx_" + secrets.token_hex(16)
    entry = {"account": "payouts", "currency": "ZAR", "amount_minor": 5} | {column: value}
    with pytest.raises(asyncpg.CheckViolationError):
        async with org_transaction(app_conn, org_id) as db:
            await _raw_transaction(db.conn, org_id, txn_id, 2)
            await _raw_entry(db.conn, org_id, txn_id, 0, entry["amount_minor"], entry["account"],  # type: ignore[arg-type]
                             entry["currency"])  # type: ignore[arg-type]


async def test_an_entry_added_to_a_committed_transaction_is_refused(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    org_id = await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    async with org_transaction(app_conn, org_id) as db:
        await ledger.write(db, paid.transaction)
    with pytest.raises(asyncpg.CheckViolationError, match="entries, not the"):
        async with org_transaction(app_conn, org_id) as db:
            await _raw_entry(db.conn, org_id, paid.transaction.id, 10, 500, "payouts")
            await _raw_entry(db.conn, org_id, paid.transaction.id, 11, -500, "organizer_payable")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount_minor = amount_minor * 2 WHERE transaction_id = $1",
        "DELETE FROM ledger_entries WHERE transaction_id = $1",
        "UPDATE ledger_transactions SET memo = 'edited' WHERE id = $1",
        "DELETE FROM ledger_transactions WHERE id = $1",
    ],
)
async def test_update_and_delete_are_refused_for_everyone(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, statement: str
) -> None:
    org_id = await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    async with org_transaction(app_conn, org_id) as db:
        await ledger.write(db, paid.transaction)
    # the platform's role has no such privilege; the owner (past RLS and privileges) meets the trigger
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with org_transaction(app_conn, org_id) as db:
            await db.conn.execute(statement, paid.transaction.id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(statement, paid.transaction.id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute("TRUNCATE ledger_entries, ledger_transactions")
    async with org_transaction(app_conn, org_id) as db:
        assert [s.transaction for s in await ledger.of_order(db, paid.money.order_id)] == [paid.transaction]


async def test_another_org_sees_nothing_and_cannot_post_into_it(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    org_a, org_b = await new_org(owner), await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    async with org_transaction(app_conn, org_a) as db:
        await ledger.write(db, paid.transaction)
    async with org_transaction(app_conn, org_b) as db:
        assert await ledger.balances(db) == {}
        assert await ledger.trial_balance(db) == {}
        assert (await ledger.list_transactions(db)).transactions == ()
        assert await ledger.of_order(db, paid.money.order_id) == ()
        assert await ledger.by_source(db, paid.transaction.source) is None
        assert await db.conn.fetchval("SELECT count(*) FROM ledger_entries WHERE transaction_id = $1",
                                      paid.transaction.id) == 0
    # B posting entries into A's transaction, under either org's name: row-level security, or the foreign key
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with org_transaction(app_conn, org_b) as db:
            await _raw_entry(db.conn, org_a, paid.transaction.id, 20, 1)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with org_transaction(app_conn, org_b) as db:
            await _raw_entry(db.conn, org_b, paid.transaction.id, 20, 1)
    # and the same source in another org is another org's own movement
    async with org_transaction(app_conn, org_b) as db:
        mine = Transaction("ltx_" + secrets.token_hex(16), TransactionKind.CAPTURE, paid.transaction.source,
                           paid.transaction.entries)
        assert (await ledger.write(db, mine)).created


async def test_two_payouts_at_once_never_spend_the_same_payable(
    owner: asyncpg.Connection, database_url: str
) -> None:
    """Each payout locks the org's book in its currency, reads the payable, posts: of two asking for 60 % of it at
    once, one is paid and the other refused."""
    org_id = await new_org(owner)
    paid = paid_order()  # released at once: payable 30,000
    assert paid.transaction is not None
    conns = [await connect(database_url) for _ in range(2)]
    try:
        async with org_transaction(conns[0], org_id) as db:
            await ledger.write(db, paid.transaction)
        both_read = asyncio.Barrier(2)

        async def pay_out(conn: asyncpg.Connection) -> str:
            async with org_transaction(conn, org_id) as db:
                await both_read.wait()
                await ledger.lock_book(db, "ZAR")
                balances = await ledger.balances(db, "ZAR")
                try:
                    transaction = flows.payout(balances, "ZAR", 18_000, **ids("payout"))
                except Refused:
                    return "refused"
                await ledger.write(db, transaction)
                await asyncio.sleep(0.05)  # hold the lock a moment: the other must wait, then see this payout
                return "paid"

        outcomes = await asyncio.gather(*(pay_out(conn) for conn in conns))
        assert sorted(outcomes) == ["paid", "refused"]
        async with org_transaction(conns[0], org_id) as db:
            assert (await ledger.balances(db, "ZAR"))[("ZAR", A.PAYOUTS)] == -18_000
    finally:
        for conn in conns:
            await conn.close()


async def test_verify_names_a_transaction_that_does_not_balance(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    """Past every guard (the owner, the constraint triggers switched off for a moment): verify still finds it."""
    org_id = await new_org(owner)
    paid = paid_order()
    assert paid.transaction is not None
    async with org_transaction(app_conn, org_id) as db:
        await ledger.write(db, paid.transaction)
    broken = "ltx_" + secrets.token_hex(16)
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")  # no triggers: a forged row
        await _raw_transaction(owner, org_id, broken, 2)
        await _raw_entry(owner, org_id, broken, 0, 700, "payouts")
        await _raw_entry(owner, org_id, broken, 1, -600, "organizer_payable")
    async with org_transaction(app_conn, org_id) as db:
        verdict = await ledger.verify(db)
    assert not verdict.ok and verdict.unbalanced == (broken,) and verdict.transactions == 2
    assert ("ZAR", A.PAYOUTS, 700) in verdict.against_normal
