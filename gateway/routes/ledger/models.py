"""The ledger's and payouts' request and response models (docs/api.md "Ledger and payouts")."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from engine.ledger.accounts import Account, TransactionKind
from engine.ledger.book import amount_minor_abs_max
from gateway.parsing import RequestModel
from gateway.rendering import Timestamp
from persistence import ledger as pg_ledger

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
AccountCode = Literal[
    "provider_clearing", "refunds", "payouts", "organizer_revenue", "organizer_payable", "platform_fees",
    "tax_payable",
]
KindName = Literal["capture", "release", "refund", "chargeback", "payout", "correction"]
TRANSACTION_ID_PATTERN = r"^ltx_[0-9a-f]{32}$"


class BalancesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: Currency | None = Field(
        default=None, description="ISO 4217 code: every account of it, zeros included; omitted: every currency the "
        "organization has entries in",
    )


class AccountBalanceOut(BaseModel):
    code: AccountCode
    currency: str
    balance_minor: int = Field(description="the sum of the account's entries: debit positive, credit negative")


class BalancesOut(BaseModel):
    accounts: list[AccountBalanceOut] = Field(
        description="all seven accounts of each currency, in a fixed order; they sum to 0 per currency"
    )


class TransactionsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cursor: str | None = Field(default=None, pattern=TRANSACTION_ID_PATTERN, description="next_cursor of a page")
    limit: int = Field(default=50, ge=1, le=pg_ledger.transactions_per_page_max)


class EntryOut(BaseModel):
    account: AccountCode
    currency: str
    amount_minor: int = Field(description="debit positive, credit negative; never 0")


class TransactionOut(BaseModel):
    id: str
    kind: KindName
    source: str = Field(description="what moved the money, written once per organization: capture:<payment>, "
                        "release:<order>, refund:<refund>, payout:<payout> ...")
    order_id: str | None = None
    corrects: str | None = Field(default=None, description="a correction: the transaction it negates")
    memo: str
    created_at: Timestamp
    entries: list[EntryOut] = Field(description="at least two, summing to 0 per currency")


class TransactionPageOut(BaseModel):
    transactions: list[TransactionOut] = Field(description="in the order they were written, oldest first")
    next_cursor: str | None


class PayoutCreate(RequestModel):
    currency: Currency = Field(description="ISO 4217 code")
    amount_minor: Annotated[int, Field(ge=1, le=amount_minor_abs_max)] | None = Field(
        default=None, description="at most what is payable; omitted: everything payable"
    )


class ReleasedOut(BaseModel):
    orders: int = Field(description="orders whose held revenue this payout released first (their event started)")
    amount_minor: int


class PayoutOut(BaseModel):
    id: str
    currency: str
    amount_minor: int
    transaction_id: str = Field(description="the ledger's payout transaction (debit organizer_payable, credit "
                                "payouts)")
    created_at: Timestamp
    released: ReleasedOut


assert set(get_args(AccountCode)) == {a.value for a in Account}, "the API's accounts are the engine's"
assert set(get_args(KindName)) == {k.value for k in TransactionKind}, "the API's kinds are the engine's"
