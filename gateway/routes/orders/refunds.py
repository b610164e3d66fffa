"""POST /v1/orders/{id}/refunds: some of a paid order's tickets, or all, refunded; their seats back at once and
their codes revoked (services/orders/refunds.py)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from gateway.checkout import checkout_of
from gateway.context import actor_of
from gateway.endpoints import Call, write_route
from gateway.errors import storage_outage_as_503
from gateway.rendering import render
from gateway.routes.orders.models import RefundCreate, RefundOut
from gateway.routes.orders.views import refund_view
from services.orders import refunds

TAG = ("checkout",)


@write_route(
    "Refund some of a paid order's tickets, or all of them (none named): money back, seats free, codes revoked",
    scope=Permission.ORDERS_REFUND.value,
    status=201,
    request=RefundCreate,
    response=RefundOut,
    errors=(404, 409),
    description=(
        "The ledger posts the refund at once (pro rata by line, cumulative, so the refunds of an order never add up "
        "to more than was paid); the tickets' codes are revoked (GET /v1/events/{id}/revocations) and their seats or "
        "units are available again at once; the money goes back through the payment provider (the refund's status "
        "is owed until the provider answers, then done). 409 order_not_refundable: the order is not paid, or its "
        "tickets are still being issued; 409 ticket_already_refunded; 404 ticket_not_found: not the order's ticket."
    ),
    tags=TAG,
)
async def create_refund(call: Call[RefundCreate]) -> Response:
    principal, body = call.principal, call.parsed()
    with storage_outage_as_503():
        refund = await refunds.refund_order(
            checkout_of(call.svc), principal.org_id, actor_of(call.request, principal), call.path("order_id"),
            body.ticket_ids, body.reason,
        )
    return render(RefundOut, refund_view(refund), 201)


ROUTES: list[BaseRoute] = [
    Route("/v1/orders/{order_id}/refunds", create_refund, methods=["POST"]),
]
