"""POST /v1/holds/{hold_id}/checkout and POST /v1/payments/webhooks/{provider}: a hold becomes an order, and the
provider's signed webhooks move it (services/orders/checkout.py, services/orders/payments.py)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from gateway.checkout import checkout_of
from gateway.context import actor_of
from gateway.endpoints import Call, write_route
from gateway.errors import storage_outage_as_503
from gateway.rendering import render
from gateway.routes.orders.models import CheckoutCreate, OrderOut, WebhookReceivedOut
from gateway.routes.orders.views import order_view
from services.orders import checkout as checkout_cases
from services.orders import payments as payment_cases

TAG = ("checkout",)
SIGNATURE_HEADER = "Voelgoed-Signature"


@write_route(
    "Check a live hold out: an order priced with the catalog's quote, and a payment to make at confirm_url",
    scope=Permission.INVENTORY_CONFIRM.value,
    status=201,
    request=CheckoutCreate,
    response=OrderOut,
    errors=(404, 409, 410, 422),
    description=(
        "The hold is kept for the payment window (expires_at). A second checkout of the same hold answers the same "
        "order (one order per hold). The payment's outcome arrives by the provider's webhook; poll GET "
        "/v1/orders/{id} for the order's status and, once paid, its tickets. A free order is paid at once. "
        "503 payments_unavailable: the provider did not answer; retrying finishes the same order."
    ),
    tags=TAG,
)
async def create_checkout(call: Call[CheckoutCreate]) -> Response:
    principal, body = call.principal, call.parsed()
    buyer = checkout_cases.Buyer(body.buyer.email, body.buyer.name)
    with storage_outage_as_503():
        done = await checkout_cases.checkout(
            checkout_of(call.svc), principal.org_id, actor_of(call.request, principal), call.path("hold_id"), buyer,
            body.promo_code,
        )
    return render(OrderOut, order_view(done.order, done.payment), 201)


@write_route(
    "The payment provider's signed webhook (Voelgoed-Signature: t=<unix s>,v1=<hex HMAC-SHA256>)",
    scope=None,
    public=True,
    response=WebhookReceivedOut,
    errors=(400, 404),
    description=(
        "Verified over the raw body in constant time; older than 5 minutes, forged or malformed: 400 "
        "webhook_refused (details.reason). Idempotent by the provider's event id: a redelivery or replay answers "
        "200 with applied false and changes nothing."
    ),
    tags=TAG,
)
async def payment_webhook(call: Call[Any]) -> Response:
    signature = call.request.headers.get(SIGNATURE_HEADER, "")
    with storage_outage_as_503():
        received = await payment_cases.receive_webhook(
            checkout_of(call.svc), call.path("provider"), call.body, signature
        )
    return render(WebhookReceivedOut, {"received": True, "applied": received.applied})


ROUTES: list[BaseRoute] = [
    Route("/v1/holds/{hold_id}/checkout", create_checkout, methods=["POST"]),
    Route("/v1/payments/webhooks/{provider}", payment_webhook, methods=["POST"]),
]
