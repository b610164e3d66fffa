"""POST /v1/payouts: pay the organizer what it is owed, after releasing the revenue of events that have started
(services/ledger.py ``pay_out``). It records the payout in the ledger only: no bank transfer is made."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from gateway.context import actor_of
from gateway.endpoints import Call, write_route
from gateway.rendering import render
from gateway.routes.ledger.models import PayoutCreate, PayoutOut
from services import ledger

TAG = ("ledger",)


@write_route(
    "Pay the organizer out: at most what is payable in the currency (omit amount_minor for all of it)",
    scope=Permission.PAYOUTS_WRITE.value,
    status=201,
    request=PayoutCreate,
    response=PayoutOut,
    errors=(409,),
    description=(
        "First releases, in the same transaction, the held revenue of every order whose event has started "
        "(organizer_revenue to organizer_payable, once per order), then debits organizer_payable and credits "
        "payouts. 409 payout_exceeds_payable (details.available_minor, currency): more than is payable, or "
        "nothing is; a refused payout changes nothing. Only recorded in the ledger: no bank transfer is made."
    ),
    tags=TAG,
)
async def create_payout(call: Call[PayoutCreate]) -> Response:
    principal, body = call.principal, call.parsed()
    payout = await ledger.pay_out(call.svc.units, principal.org_id, actor_of(call.request, principal), body.currency,
                                  body.amount_minor)  # fmt: skip
    return render(PayoutOut, {
        "id": payout.id, "currency": payout.currency, "amount_minor": payout.amount_minor,
        "transaction_id": payout.transaction_id, "created_at": payout.created_at,
        "released": {"orders": payout.released_orders, "amount_minor": payout.released_minor},
    }, 201)  # fmt: skip


ROUTES: list[BaseRoute] = [
    Route("/v1/payouts", create_payout, methods=["POST"]),
]
