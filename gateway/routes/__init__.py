"""The gateway's route table: each domain's routes (gateway/routes/<domain>/), one module per resource."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.routes import audit, operations, tickets
from gateway.routes.access import keys, members, sessions
from gateway.routes.catalog import events, lifecycle, pricing, venues
from gateway.routes.inventory import availability, holds, seatmap
from gateway.routes.ledger import ledger, payouts
from gateway.routes.orders import checkout, orders, refunds


def all_routes() -> list[BaseRoute]:
    # The router tries routes in order, a regular expression each (~2 us a route): the hot path (holds, quotes,
    # availability) first. No two routes' paths overlap, so the order changes nothing but the cost.
    return [
        *holds.ROUTES,
        *pricing.ROUTES,
        *availability.ROUTES,
        *events.ROUTES,
        *seatmap.ROUTES,
        *venues.ROUTES,
        *lifecycle.ROUTES,
        *keys.ROUTES,
        *sessions.ROUTES,
        *members.ROUTES,
        *audit.ROUTES,
        *tickets.ROUTES,
        *checkout.ROUTES,
        *orders.ROUTES,
        *refunds.ROUTES,
        *ledger.ROUTES,
        *payouts.ROUTES,
        *operations.ROUTES,
    ]
