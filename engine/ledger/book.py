"""Entries, transactions and balances: the rules every transaction keeps, whoever builds it.

- A transaction is at least two entries, none zero, summing to zero in each currency it touches (``balanced``);
  each entry names one account in one ISO 4217 currency, in integer minor units (debit positive).
- A transaction is never edited or removed: ``correction`` builds a new one that negates an earlier one.
- ``post`` applies a transaction to the balances of one org and returns the new balances, or raises
  ``SignViolation`` when an account would move (further) against its normal side and the transaction's kind may not
  move it there (engine/ledger/accounts.py ``MAY_GO_AGAINST_NORMAL``). The flows never build such a transaction;
  ``post`` is the invariant that proves it, kept on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from engine.ledger.accounts import MAY_GO_AGAINST_NORMAL, Account, TransactionKind, against_normal

entries_per_transaction_max = 32
amount_minor_abs_max = 10**15  # far beyond any order (engine/limits.price_minor_max x 100 tickets x 10): a typo
source_chars_max = 200
memo_chars_max = 200
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TRANSACTION_ID_RE = re.compile(r"ltx_[0-9a-f]{32}")
TRANSACTION_PREFIX = "ltx_"

Balances = Mapping[tuple[str, Account], int]  # (currency, account) -> balance; a missing key is 0


class UnbalancedTransaction(ValueError):
    """A transaction that breaks the ledger's rules: never written, whoever built it."""


class SignViolation(ValueError):
    """Posting the transaction would leave an account on a side it may not take."""

    def __init__(self, account: Account, currency: str, balance_minor: int, kind: TransactionKind) -> None:
        super().__init__(f"a {kind} would leave {account} at {balance_minor} {currency}, against its normal side")
        self.account = account
        self.currency = currency
        self.balance_minor = balance_minor
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Entry:
    account: Account
    currency: str
    amount_minor: int  # debit > 0, credit < 0; never 0


@dataclass(frozen=True, slots=True)
class Transaction:
    """One movement of money, posted whole or not at all.

    ``source`` names what caused it, unique per org ("payment:<id>", "refund:<id>", "payout:<id>"): the store
    writes a source once, so a replayed webhook or a retried use case cannot post the same money twice.
    """

    id: str
    kind: TransactionKind
    source: str
    entries: tuple[Entry, ...]
    order_id: str | None = None
    corrects: str | None = None  # a correction: the id of the transaction it negates
    memo: str = ""

    def __post_init__(self) -> None:
        problems = transaction_problems(self)
        if problems:
            raise UnbalancedTransaction("; ".join(problems))

    def currencies(self) -> tuple[str, ...]:
        return tuple(sorted({entry.currency for entry in self.entries}))


def is_transaction_id(value: str) -> bool:
    return _TRANSACTION_ID_RE.fullmatch(value) is not None


def transaction_problems(transaction: Transaction) -> list[str]:
    """Every rule ``transaction`` breaks (empty: it may be posted)."""
    problems: list[str] = []
    if not is_transaction_id(transaction.id):
        problems.append(f"the id must be {TRANSACTION_PREFIX} and 32 lowercase hex characters")
    if not 1 <= len(transaction.source) <= source_chars_max:
        problems.append(f"the source must be 1..{source_chars_max} characters")
    if len(transaction.memo) > memo_chars_max:
        problems.append(f"the memo must be at most {memo_chars_max} characters")
    if (transaction.kind is TransactionKind.CORRECTION) != (transaction.corrects is not None):
        problems.append("a correction, and only a correction, names the transaction it corrects")
    if not 2 <= len(transaction.entries) <= entries_per_transaction_max:
        problems.append(f"a transaction has 2..{entries_per_transaction_max} entries")
    for n, entry in enumerate(transaction.entries):
        if not isinstance(entry.account, Account):
            problems.append(f"entry {n}: unknown account {entry.account!r}")
        if _CURRENCY_RE.fullmatch(entry.currency) is None:
            problems.append(f"entry {n}: the currency must be three capital letters (ISO 4217)")
        if type(entry.amount_minor) is not int:
            problems.append(f"entry {n}: amounts are integer minor units")
        elif entry.amount_minor == 0 or abs(entry.amount_minor) > amount_minor_abs_max:
            problems.append(f"entry {n}: the amount must be non-zero and at most {amount_minor_abs_max} in size")
    if not problems:
        for currency, total in sums_by_currency(transaction.entries).items():
            if total != 0:
                problems.append(f"the entries in {currency} sum to {total}, not 0")
    return problems


def sums_by_currency(entries: Iterable[Entry]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for entry in entries:
        sums[entry.currency] = sums.get(entry.currency, 0) + entry.amount_minor
    return sums


def entries_of(currency: str, amounts: Mapping[Account, int]) -> tuple[Entry, ...]:
    """The entries moving each account by its amount, zeros left out, in the accounts' order."""
    return tuple(Entry(account, currency, amounts[account]) for account in Account if amounts.get(account, 0))


def post(balances: Balances, transaction: Transaction) -> Balances:
    """The balances after ``transaction``; raises ``SignViolation`` (nothing posted) when an account it moves
    would end against its normal side, further than it was, and the transaction's kind may not take it there."""
    assert not transaction_problems(transaction), "only a valid transaction is ever built"
    after = dict(balances)
    for entry in transaction.entries:
        key = (entry.currency, entry.account)
        after[key] = after.get(key, 0) + entry.amount_minor
    for entry in transaction.entries:
        key = (entry.currency, entry.account)
        before, now = balances.get(key, 0), after[key]
        allowed = transaction.kind in MAY_GO_AGAINST_NORMAL[entry.account]
        if _moved_against_normal(entry.account, before, now) and not allowed:
            raise SignViolation(entry.account, entry.currency, now, transaction.kind)
    return MappingProxyType(after)


def _moved_against_normal(account: Account, before: int, now: int) -> bool:
    if not against_normal(account, now):
        return False
    return not against_normal(account, before) or abs(now) > abs(before)


def trial_balance(balances: Balances) -> dict[str, int]:
    """Per currency, the sum of every account's balance: 0 in each currency, or the ledger is broken."""
    sums: dict[str, int] = {}
    for (currency, _account), balance in balances.items():
        sums[currency] = sums.get(currency, 0) + balance
    return sums


def correction(original: Transaction, *, transaction_id: str, source: str, memo: str) -> Transaction:
    """A new transaction undoing ``original``: every entry negated. The original stays as it was."""
    return Transaction(
        id=transaction_id,
        kind=TransactionKind.CORRECTION,
        source=source,
        entries=tuple(Entry(e.account, e.currency, -e.amount_minor) for e in original.entries),
        order_id=original.order_id,
        corrects=original.id,
        memo=memo,
    )
