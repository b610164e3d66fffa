"""The ledger's accounts: one of each per org and currency, each with its normal side and the sides its balance
may take.

Signs: an entry's ``amount_minor`` is positive for a debit and negative for a credit; a balance is the sum of an
account's entries. A debit-normal account's balance is >= 0, a credit-normal one's <= 0. Money leaving the
provider is not taken off ``provider_clearing``: it is credited to ``refunds`` or ``payouts``, so those three only
ever grow in one direction, and what the provider still holds for the org is their sum (``held_at_provider``).

| code | normal | what it holds | may its balance leave the normal side? |
|---|---|---|---|
| provider_clearing | debit | every payment captured through the provider | never |
| refunds | credit | every amount returned to buyers (refunds and chargebacks) | never |
| payouts | credit | every amount paid to the organizer | never |
| organizer_revenue | credit | ticket revenue (net of discounts and tax) held until it is released | never |
| organizer_payable | credit | ticket revenue released: what the organizer may be paid | by a refund or chargeback (*) |
| platform_fees | credit | the platform's fees, net of fees refunded | never |
| tax_payable | credit | tax collected (added or included), net of tax refunded | never |

(*) only a refund or a chargeback of released revenue may leave it on the debit side: the organizer then owes
that amount back, and no payout happens until sales cover it. A payout never may (it is refused instead).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Account(StrEnum):
    PROVIDER_CLEARING = "provider_clearing"
    REFUNDS = "refunds"
    PAYOUTS = "payouts"
    ORGANIZER_REVENUE = "organizer_revenue"
    ORGANIZER_PAYABLE = "organizer_payable"
    PLATFORM_FEES = "platform_fees"
    TAX_PAYABLE = "tax_payable"


class Side(StrEnum):
    DEBIT = "debit"  # balance >= 0
    CREDIT = "credit"  # balance <= 0


class TransactionKind(StrEnum):
    CAPTURE = "capture"  # a payment captured: the buyer's money, split into revenue, fees and tax
    RELEASE = "release"  # an order's held revenue becomes payable to the organizer
    REFUND = "refund"  # money returned to the buyer, some tickets or all
    CHARGEBACK = "chargeback"  # the buyer's bank took the rest of the payment back
    PAYOUT = "payout"  # the organizer is paid (at most what is payable)
    CORRECTION = "correction"  # undoes an earlier transaction: its entries negated (never an edit)


NORMAL_SIDE: Mapping[Account, Side] = MappingProxyType(
    {
        Account.PROVIDER_CLEARING: Side.DEBIT,
        Account.REFUNDS: Side.CREDIT,
        Account.PAYOUTS: Side.CREDIT,
        Account.ORGANIZER_REVENUE: Side.CREDIT,
        Account.ORGANIZER_PAYABLE: Side.CREDIT,
        Account.PLATFORM_FEES: Side.CREDIT,
        Account.TAX_PAYABLE: Side.CREDIT,
    }
)

# The kinds of transaction that may move an account's balance (further) against its normal side. A refund may
# return revenue the organizer was already paid: the platform fronts it and the organizer owes it back.
MAY_GO_AGAINST_NORMAL: Mapping[Account, frozenset[TransactionKind]] = MappingProxyType(
    {
        account: (
            frozenset({TransactionKind.REFUND, TransactionKind.CHARGEBACK})
            if account is Account.ORGANIZER_PAYABLE
            else frozenset()
        )
        for account in Account
    }
)


def against_normal(account: Account, balance_minor: int) -> bool:
    """Whether ``balance_minor`` is on the side ``account`` does not normally take (zero never is)."""
    if NORMAL_SIDE[account] is Side.DEBIT:
        return balance_minor < 0
    return balance_minor > 0


def held_at_provider(balances: Mapping[Account, int]) -> int:
    """What the provider still holds for the org in one currency: captured, less refunded and paid out. It goes
    negative only when a chargeback takes money that was already paid out."""
    return sum(balances.get(a, 0) for a in (Account.PROVIDER_CLEARING, Account.REFUNDS, Account.PAYOUTS))


def payable_minor(balances: Mapping[Account, int]) -> int:
    """What the organizer may be paid now, >= 0: the released revenue not yet paid out."""
    return max(0, -balances.get(Account.ORGANIZER_PAYABLE, 0))
