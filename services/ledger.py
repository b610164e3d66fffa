"""The ledger's use cases: an org's balances, its transactions page by page, and paying the organizer out.

**Release of held revenue.** A capture posts an order's revenue to ``organizer_revenue`` (held); only
``organizer_payable`` can be paid out. The policy: an order's held revenue is released once its event has started
(``events.starts_at <= now``). ``pay_out`` releases first, in its own transaction and under the book's lock, every
such order of the currency not released yet (at most ``releases_per_payout_max`` per call, oldest capture first;
the rest at the next payout), each a ``release`` transaction with source ``release:<order_id>`` moving what the
order's entries leave in ``organizer_revenue`` (engine/ledger/flows.py ``release_held``). The source is written
once, so an order is released once, and ``ledger.by_source(db, f"release:{order_id}")`` tells a refund whether to
take the revenue back from ``organizer_payable`` (released) or ``organizer_revenue`` (held). A refund that decides so
must hold ``lock_book`` for the order's currency too, so that a release and a refund of one order never interleave.

**Payout.** Then, in the same transaction: at most what is payable (``payout_exceeds_payable``, 409, with
``available_minor``; nothing payable refuses the same way, ``available_minor`` 0). A refusal rolls the releases back
with it: a refused payout changes nothing. A payout only records the money leaving in the ledger (debit
``organizer_payable``, credit ``payouts``); no bank transfer provider exists, so no money is sent by it. Audited as
``payout.create`` (with how many orders it released and how much), by the caller.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.ledger import flows
from engine.ledger.accounts import Account
from engine.ledger.book import Balances, post
from persistence import audit, ledger
from services.unit_of_work import UnitsOfWork

READER = audit.Actor("system", "ledger-read")
PAYOUT_CREATE = "payout.create"
PAYOUT_PREFIX = "po_"
payout_hex_chars = 32
# the releases one payout may post before paying out (oldest first); the rest wait for the next payout
releases_per_payout_max = 10_000


class UnknownCursor(ValueError):
    """A page's cursor that names none of the org's transactions (made up, or another org's)."""


@dataclass(frozen=True, slots=True)
class AccountBalance:
    currency: str
    account: Account
    balance_minor: int


@dataclass(frozen=True, slots=True)
class TransactionPage:
    transactions: tuple[ledger.Stored, ...]
    next_cursor: str | None  # the last transaction's id, when there are more


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    currency: str
    amount_minor: int
    transaction_id: str
    created_at: datetime
    released_orders: int  # orders whose held revenue this payout released first
    released_minor: int



def every_account(found: Mapping[tuple[str, Account], int], currencies: list[str]) -> list[AccountBalance]:
    """Each of ``currencies`` (sorted) with all seven accounts, in the accounts' order, zeros included."""
    return [AccountBalance(c, a, found.get((c, a), 0)) for c in sorted(currencies) for a in Account]


async def balances(units: UnitsOfWork, org_id: str, currency: str | None) -> list[AccountBalance]:
    """Every account of ``currency`` (zeros included, also when the org never used it); without a currency,
    every account of each currency the org has entries in (none: no rows). They sum to 0 per currency."""
    async with units.begin(org_id, READER) as uow:
        found = await ledger.balances(uow.db, currency)
    currencies = [currency] if currency is not None else sorted({c for c, _ in found})
    return every_account(found, currencies)


async def transaction_page(units: UnitsOfWork, org_id: str, *, cursor: str | None, limit: int) -> TransactionPage:
    """The org's transactions in the order written, with their entries, from just after ``cursor`` (a
    transaction id: the previous page's ``next_cursor``). Raises ``UnknownCursor`` for one that is not the org's."""
    async with units.begin(org_id, READER) as uow:
        after_seq = None
        if cursor is not None:
            after_seq = await ledger.seq_of(uow.db, cursor)
            if after_seq is None:
                raise UnknownCursor(cursor)
        page = await ledger.list_transactions(uow.db, after_seq=after_seq, limit=limit)
    more = page.next_after_seq is not None and bool(page.transactions)
    return TransactionPage(page.transactions, page.transactions[-1].transaction.id if more else None)


async def pay_out(
    units: UnitsOfWork, org_id: str, actor: audit.Actor, currency: str, amount_minor: int | None,
    *, now: datetime | None = None,
) -> Payout:
    """Release what has become payable, then pay the organizer ``amount_minor`` of ``currency`` (None: all that is
    payable). Refused (``payout_exceeds_payable``) beyond what is payable then, or when nothing is."""
    started_by = now or datetime.now(UTC)
    async with units.begin(org_id, actor) as uow:
        await ledger.lock_book(uow.db, currency)
        book: Balances = await ledger.balances(uow.db, currency)
        order_ids = await ledger.releasable_orders(uow.db, currency, started_by, releases_per_payout_max)
        of_orders = await ledger.of_orders(uow.db, order_ids)
        released_orders = released_minor = 0
        for order_id in order_ids:
            entries = [e for stored in of_orders.get(order_id, ()) for e in stored.transaction.entries]
            release = flows.release_held(
                order_id, currency, flows.held_revenue_minor(entries, currency),
                transaction_id=ledger.new_transaction_id(), source=ledger.release_source(order_id),
            )
            if release is None:
                continue
            book = post(book, release)  # the sides' invariant, kept on
            await ledger.write(uow.db, release)
            released_orders += 1
            released_minor += sum(e.amount_minor for e in release.entries if e.account is Account.ORGANIZER_REVENUE)
        payout_id = PAYOUT_PREFIX + secrets.token_hex(payout_hex_chars // 2)
        transaction = flows.payout(book, currency, amount_minor, transaction_id=ledger.new_transaction_id(),
                                   source=f"payout:{payout_id}")
        post(book, transaction)
        await ledger.write(uow.db, transaction)
        stored = await ledger.by_source(uow.db, transaction.source)
        assert stored is not None and stored.transaction.id == transaction.id
        paid = -sum(e.amount_minor for e in transaction.entries if e.account is Account.PAYOUTS)
        payout = Payout(payout_id, currency, paid, transaction.id, stored.at, released_orders, released_minor)
        uow.record(audit.Change(PAYOUT_CREATE, "payout", payout_id, after=audit_view(payout)))
    return payout


def audit_view(payout: Payout) -> dict[str, object]:
    return {
        "currency": payout.currency, "amount_minor": payout.amount_minor, "ledger": payout.transaction_id,
        "released": {"orders": payout.released_orders, "amount_minor": payout.released_minor},
    }
