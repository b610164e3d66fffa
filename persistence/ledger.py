"""The ledger's store: transactions and their entries, written in the caller's unit of work, and the reads built
on them (balances, the trial balance, a page of transactions, one order's transactions, verification, the orders
whose held revenue may be released).

``write`` posts one engine-built transaction (``engine.ledger.book.Transaction``) in ``db``'s transaction: the row,
then its entries in one statement; the schema checks at commit that they balance (persistence/migrations/
006_ledger.sql). A source already written is not written again: ``write`` answers the transaction already there
(a replayed webhook, a retried use case), and refuses (``SourceReused``) if that one moved different money.

Flows that decide from a balance (a payout: at most what is payable) first take ``lock_book``, which serializes
them per org and currency until the transaction ends, then read ``balances``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.ledger.accounts import Account, TransactionKind, against_normal
from engine.ledger.book import TRANSACTION_PREFIX, Balances, Entry, Transaction, sums_by_currency
from persistence.tenancy import OrgDb

transactions_per_page_max = 500
# verifying reads the ledger back in pages of this many transactions: bounded memory whatever its length
verify_page_transactions = 500
unbalanced_reported_max = 100

_INSERT_TRANSACTION = (
    "INSERT INTO ledger_transactions (org_id, id, kind, source, order_id, corrects, memo, entries)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, source) DO NOTHING RETURNING seq, at"
)
_INSERT_ENTRIES = (
    "INSERT INTO ledger_entries (org_id, transaction_id, position, account, currency, amount_minor)"
    " SELECT $1, $2, e.position, e.account, e.currency, e.amount"
    " FROM unnest($3::smallint[], $4::text[], $5::text[], $6::bigint[]) AS e(position, account, currency, amount)"
)
_COLUMNS = "t.id, t.seq, t.kind, t.source, t.order_id, t.corrects, t.memo, t.at"
_ENTRIES_OF = (
    "SELECT transaction_id, account, currency, amount_minor FROM ledger_entries"
    " WHERE org_id = $1 AND transaction_id = ANY($2::text[]) ORDER BY transaction_id, position"
)


class SourceReused(RuntimeError):
    """A source already posted other money: two different movements were given one name (a bug upstream)."""


@dataclass(frozen=True, slots=True)
class Written:
    transaction_id: str  # the one now in the ledger: this one, or the one its source already had
    created: bool


@dataclass(frozen=True, slots=True)
class Stored:
    """A transaction as stored: the engine's, with when and in which order it was written."""

    transaction: Transaction
    seq: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Page:
    transactions: tuple[Stored, ...]
    next_after_seq: int | None  # pass back as after_seq for the next page; None: this was the last


@dataclass(frozen=True, slots=True)
class Verdict:
    transactions: int
    # ids of the transactions whose entries do not sum to zero per currency (the first unbalanced_reported_max)
    unbalanced: tuple[str, ...]
    balances: Balances
    against_normal: tuple[tuple[str, Account, int], ...]  # (currency, account, balance) on an unusual side

    @property
    def ok(self) -> bool:
        return not self.unbalanced


async def lock_book(db: OrgDb, currency: str) -> None:
    """Serialize, until db's transaction ends, every flow of this org that decides from its balance in
    ``currency`` (two payouts at once must not both spend the same payable)."""
    await db.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"ledger:{db.org_id}:{currency}")


async def write(db: OrgDb, transaction: Transaction) -> Written:
    """Post ``transaction`` in db's transaction (its balance is checked at commit)."""
    row = await db.conn.fetchrow(
        _INSERT_TRANSACTION, db.org_id, transaction.id, transaction.kind.value, transaction.source,
        transaction.order_id, transaction.corrects, transaction.memo, len(transaction.entries),
    )
    if row is None:
        existing = await by_source(db, transaction.source)
        assert existing is not None, "a conflicting source is visible to its own org"
        if _money(existing.transaction) != _money(transaction) or existing.transaction.kind != transaction.kind:
            raise SourceReused(f"{transaction.source} already posted {existing.transaction.id}, with other money")
        return Written(existing.transaction.id, created=False)
    entries = transaction.entries
    await db.conn.execute(
        _INSERT_ENTRIES, db.org_id, transaction.id, list(range(len(entries))),
        [e.account.value for e in entries], [e.currency for e in entries], [e.amount_minor for e in entries],
    )
    return Written(transaction.id, created=True)


def _money(transaction: Transaction) -> list[tuple[str, str, int]]:
    return sorted((e.account.value, e.currency, e.amount_minor) for e in transaction.entries)


async def balances(db: OrgDb, currency: str | None = None) -> dict[tuple[str, Account], int]:
    """(currency, account) -> balance, for every account with entries (in ``currency`` only, when given)."""
    rows = await db.conn.fetch(
        "SELECT currency, account, sum(amount_minor)::bigint AS balance FROM ledger_entries"
        " WHERE org_id = $1 AND ($2::text IS NULL OR currency = $2) GROUP BY currency, account",
        db.org_id, currency,
    )
    return {(r["currency"], Account(r["account"])): r["balance"] for r in rows}


async def trial_balance(db: OrgDb) -> dict[str, int]:
    """Per currency, the sum of every entry: 0 in each, or the ledger is broken."""
    rows = await db.conn.fetch(
        "SELECT currency, sum(amount_minor)::bigint AS total FROM ledger_entries WHERE org_id = $1 GROUP BY currency",
        db.org_id,
    )
    return {r["currency"]: r["total"] for r in rows}


async def list_transactions(db: OrgDb, *, after_seq: int | None = None, limit: int = 100) -> Page:
    """The org's transactions in the order they were written, from just after ``after_seq``."""
    if not 1 <= limit <= transactions_per_page_max:
        raise ValueError(f"a page holds 1..{transactions_per_page_max} transactions")
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM ledger_transactions t WHERE t.org_id = $1 AND t.seq > $2"
        " ORDER BY t.seq LIMIT $3",
        db.org_id, after_seq or 0, limit + 1,
    )
    stored = await _with_entries(db, rows[:limit])
    return Page(stored, stored[-1].seq if len(rows) > limit else None)


async def of_order(db: OrgDb, order_id: str) -> tuple[Stored, ...]:
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM ledger_transactions t WHERE t.org_id = $1 AND t.order_id = $2 ORDER BY t.seq",
        db.org_id, order_id,
    )
    return await _with_entries(db, rows)


async def by_source(db: OrgDb, source: str) -> Stored | None:
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM ledger_transactions t WHERE t.org_id = $1 AND t.source = $2", db.org_id, source,
    )
    found = await _with_entries(db, rows)
    return found[0] if found else None


async def verify(db: OrgDb) -> Verdict:
    """Read the whole ledger back, page by page: every transaction must balance per currency (the schema
    refuses any other at commit: this proves what is stored, whatever wrote it). The final balances and any
    account on an unusual side are reported (a payable the organizer owes is one, by a refund or chargeback)."""
    after: int | None = None
    count = 0
    unbalanced: list[str] = []
    totals: dict[tuple[str, Account], int] = {}
    while True:
        page = await list_transactions(db, after_seq=after, limit=verify_page_transactions)
        for stored in page.transactions:
            count += 1
            balanced = all(total == 0 for total in sums_by_currency(stored.transaction.entries).values())
            if not balanced and len(unbalanced) < unbalanced_reported_max:
                unbalanced.append(stored.transaction.id)
            for entry in stored.transaction.entries:
                key = (entry.currency, entry.account)
                totals[key] = totals.get(key, 0) + entry.amount_minor
        if page.next_after_seq is None:
            break
        after = page.next_after_seq
    unusual = tuple(sorted((c, a, b) for (c, a), b in totals.items() if against_normal(a, b)))
    return Verdict(count, tuple(unbalanced), totals, unusual)


async def _with_entries(db: OrgDb, rows: Sequence[asyncpg.Record]) -> tuple[Stored, ...]:
    if not rows:
        return ()
    entry_rows = await db.conn.fetch(_ENTRIES_OF, db.org_id, [r["id"] for r in rows])
    by_transaction: dict[str, list[Entry]] = {}
    for e in entry_rows:
        by_transaction.setdefault(e["transaction_id"], []).append(
            Entry(Account(e["account"]), e["currency"], e["amount_minor"])
        )
    return tuple(_stored(r, by_transaction.get(r["id"], [])) for r in rows)


def _stored(row: asyncpg.Record, entries: list[Entry]) -> Stored:
    transaction = _unchecked_transaction(
        id=row["id"], kind=TransactionKind(row["kind"]), source=row["source"], entries=tuple(entries),
        order_id=row["order_id"], corrects=row["corrects"], memo=row["memo"],
    )
    return Stored(transaction, row["seq"], row["at"])


def _unchecked_transaction(**fields: object) -> Transaction:
    """A stored transaction as it is, even one breaking the rules (``verify`` must be able to read it to say so):
    built without the constructor's checks."""
    transaction = object.__new__(Transaction)
    for name, value in fields.items():
        object.__setattr__(transaction, name, value)
    return transaction


# ---- the release of held revenue, and a page's cursor ------------------------------------------------------------

RELEASE_SOURCE_PREFIX = "release:"

# The orders whose captured revenue is still held in ``currency`` and whose event has started: a capture posted,
# no release (by its source), something left in organizer_revenue (a fully refunded order has nothing to release
# and is never picked again), oldest capture first.
_RELEASABLE = (
    "SELECT t.order_id FROM ledger_transactions t"
    " JOIN orders o ON o.org_id = t.org_id AND o.id = t.order_id"
    " JOIN events ev ON ev.org_id = o.org_id AND ev.id = o.event_id"
    " WHERE t.org_id = $1 AND t.kind = 'capture' AND o.currency = $2 AND ev.starts_at <= $3"
    " AND NOT EXISTS (SELECT 1 FROM ledger_transactions r WHERE r.org_id = t.org_id"
    "                 AND r.source = $4 || t.order_id)"
    " AND (SELECT coalesce(sum(e.amount_minor), 0) FROM ledger_transactions x"
    "      JOIN ledger_entries e ON e.org_id = x.org_id AND e.transaction_id = x.id"
    "      WHERE x.org_id = t.org_id AND x.order_id = t.order_id AND e.account = 'organizer_revenue'"
    "      AND e.currency = $2) <> 0"
    " GROUP BY t.order_id ORDER BY min(t.seq) LIMIT $5"
)


def new_transaction_id() -> str:
    """A fresh id for a transaction about to be written (its source, not its id, is what makes it once)."""
    return TRANSACTION_PREFIX + secrets.token_hex(16)


def release_source(order_id: str) -> str:
    """The source of an order's release: written once, so ``by_source(db, release_source(order_id))`` says whether
    the order's revenue was released (a refund then takes it back from organizer_payable)."""
    return RELEASE_SOURCE_PREFIX + order_id


async def releasable_orders(db: OrgDb, currency: str, started_by: datetime, limit: int) -> list[str]:
    """At most ``limit`` order ids, oldest capture first, whose revenue in ``currency`` is held and not released
    and whose event started at or before ``started_by``. Take ``lock_book`` first: what is found stays so."""
    rows = await db.conn.fetch(_RELEASABLE, db.org_id, currency, started_by, RELEASE_SOURCE_PREFIX, limit)
    return [r["order_id"] for r in rows]


async def of_orders(db: OrgDb, order_ids: Sequence[str]) -> dict[str, tuple[Stored, ...]]:
    """``of_order`` for many orders in two statements: order id -> its transactions, in the order written."""
    if not order_ids:
        return {}
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM ledger_transactions t WHERE t.org_id = $1 AND t.order_id = ANY($2::text[])"
        " ORDER BY t.seq",
        db.org_id, list(order_ids),
    )
    found: dict[str, list[Stored]] = {}
    for stored in await _with_entries(db, rows):
        assert stored.transaction.order_id is not None
        found.setdefault(stored.transaction.order_id, []).append(stored)
    return {order_id: tuple(stored) for order_id, stored in found.items()}


async def seq_of(db: OrgDb, transaction_id: str) -> int | None:
    """Where the org's transaction stands in the order written (a page's cursor); None: not one of the org's."""
    seq: int | None = await db.conn.fetchval(
        "SELECT seq FROM ledger_transactions WHERE org_id = $1 AND id = $2", db.org_id, transaction_id,
    )
    return seq
