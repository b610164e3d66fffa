"""GET /v1/orders/{id}, GET /v1/orders, GET /v1/orders/{id}/tickets: orders as the buyer and the organizer see
them (services/orders/reads.py)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from engine.orders import OrderStatus
from gateway.endpoints import Call, read_route
from gateway.parsing import parse_query
from gateway.rendering import render
from gateway.routes.orders.models import OrderOut, OrderPageOut, OrdersQuery, TicketListOut
from gateway.routes.orders.views import details_view, order_view, ticket_view
from services.orders import reads

TAG = ("checkout",)
# The organizer reads orders; a checkout front-end (a publishable key) reads the order it made, by its id.
SCOPE = (Permission.ORDERS_READ.value, Permission.INVENTORY_CONFIRM.value)


@read_route("An order: its status, lines, payment, tickets once paid, refunds", response=OrderOut, scope=SCOPE,
            errors=(404,), tags=TAG)  # fmt: skip
async def get_order(call: Call[Any]) -> Response:
    details = await reads.order_details(call.svc.units, call.principal.org_id, call.path("order_id"))
    return render(OrderOut, details_view(details))


@read_route("An order's tickets, with their signed QR payloads", response=TicketListOut, scope=SCOPE,
            errors=(404,), tags=TAG)  # fmt: skip
async def list_order_tickets(call: Call[Any]) -> Response:
    details = await reads.order_details(call.svc.units, call.principal.org_id, call.path("order_id"))
    return render(TicketListOut, [ticket_view(t) for t in details.tickets])


@read_route(
    "The organization's orders, by id; filter by event and status, page with next_cursor",
    query=OrdersQuery, response=OrderPageOut, scope=Permission.ORDERS_READ.value, tags=TAG,
)  # fmt: skip
async def list_orders(call: Call[Any]) -> Response:
    wanted = parse_query(OrdersQuery, call.request.query_params.multi_items())
    status = OrderStatus(wanted.status) if wanted.status else None
    page = await reads.order_page(call.svc.units, call.principal.org_id, event_id=wanted.event_id, status=status,
                                  after_id=wanted.cursor, limit=wanted.limit)  # fmt: skip
    return render(OrderPageOut, {"orders": [order_view(o) for o in page.orders], "next_cursor": page.next_cursor})


ROUTES: list[BaseRoute] = [
    Route("/v1/orders", list_orders, methods=["GET"]),
    Route("/v1/orders/{order_id}", get_order, methods=["GET"]),
    Route("/v1/orders/{order_id}/tickets", list_order_tickets, methods=["GET"]),
]
