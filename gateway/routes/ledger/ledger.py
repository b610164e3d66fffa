"""GET /v1/ledger/balances and GET /v1/ledger/transactions: the organization's ledger as it stands, and as it was
written, page by page (services/ledger.py)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from gateway.endpoints import Call, read_route
from gateway.errors import ValidationFailed
from gateway.parsing import parse_query
from gateway.rendering import render
from gateway.routes.ledger.models import BalancesOut, BalancesQuery, TransactionPageOut, TransactionsQuery
from persistence.ledger import Stored
from services import ledger

TAG = ("ledger",)
SCOPE = Permission.LEDGER_READ.value


def transaction_view(stored: Stored) -> dict[str, Any]:
    t = stored.transaction
    return {
        "id": t.id, "kind": t.kind.value, "source": t.source, "order_id": t.order_id, "corrects": t.corrects,
        "memo": t.memo, "created_at": stored.at,
        "entries": [{"account": e.account.value, "currency": e.currency, "amount_minor": e.amount_minor}
                    for e in t.entries],
    }


@read_route(
    "The organization's ledger balances: every account of a currency (or of each it has used); they sum to 0",
    query=BalancesQuery, response=BalancesOut, scope=SCOPE, tags=TAG,
    description=(
        "organizer_revenue holds ticket revenue until the order's event starts; organizer_payable is what may be "
        "paid out (POST /v1/payouts). Credit-normal accounts are negative."
    ),
)  # fmt: skip
async def get_balances(call: Call[Any]) -> Response:
    wanted = parse_query(BalancesQuery, call.request.query_params.multi_items())
    rows = await ledger.balances(call.svc.units, call.principal.org_id, wanted.currency)
    accounts = [{"code": r.account.value, "currency": r.currency, "balance_minor": r.balance_minor} for r in rows]
    return render(BalancesOut, {"accounts": accounts})


@read_route(
    "The organization's ledger transactions with their entries, oldest first; page with next_cursor",
    query=TransactionsQuery, response=TransactionPageOut, scope=SCOPE, tags=TAG,
    description="A cursor that is not one of the organization's transactions is 422 (field cursor).",
)  # fmt: skip
async def list_transactions(call: Call[Any]) -> Response:
    wanted = parse_query(TransactionsQuery, call.request.query_params.multi_items())
    try:
        page = await ledger.transaction_page(call.svc.units, call.principal.org_id, cursor=wanted.cursor,
                                             limit=wanted.limit)  # fmt: skip
    except ledger.UnknownCursor:
        raise ValidationFailed(details={"fields": [
            {"field": "cursor", "message": "is none of the organization's transactions", "type": "invalid"}]}) from None
    return render(TransactionPageOut, {"transactions": [transaction_view(s) for s in page.transactions],
                                       "next_cursor": page.next_cursor})  # fmt: skip


ROUTES: list[BaseRoute] = [
    Route("/v1/ledger/balances", get_balances, methods=["GET"]),
    Route("/v1/ledger/transactions", list_transactions, methods=["GET"]),
]
