"""/v1/events/{id}/promo-codes and /v1/events/{id}/quote: an event's promo codes, and what an order costs.

A quote reads no Postgres: the event meta (gateway/event_cache.py), the price list (gateway/price_cache.py), a
hold and a promo's use counts all come from this process's memory or Redis. A quote changes nothing and takes no
promo use (checkout does: services/pricing.take_promo_use), so it is rate limited as a read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.catalog import pricing
from engine.ratelimit import RouteClass
from gateway.context import actor_of
from gateway.endpoints import Call, write_route
from gateway.errors import ValidationFailed, storage_outage_as_503
from gateway.event_cache import visible_to
from gateway.price_cache import PriceCache
from gateway.rendering import render
from gateway.routes.catalog.pricing_models import PromoCodeCreate, PromoCodeOut, QuoteCreate, QuoteOut
from services.catalog import pricing as pricing_cases
from services.inventory.holds import HoldCopies

TAG = ("pricing",)


def promo_view(event_id: str, promo: pricing.Promo) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "code": promo.code,
        "percent_off_bp": promo.percent_off_bp,
        "amount_off_minor": promo.amount_off_minor,
        "max_uses": promo.max_uses,
        "max_uses_per_buyer": promo.max_uses_per_buyer,
        "valid_from": promo.valid_from,
        "valid_until": promo.valid_until,
        "ticket_types": None if promo.ticket_types is None else list(promo.ticket_types),
    }


def lines_view(quote: pricing.Quote) -> list[dict[str, Any]]:
    """A quote's lines as QuoteLineOut (an order shows the lines it was priced with the same way)."""
    return [
        {
            "kind": str(line.kind),
            "code": line.code,
            "description": line.description,
            "quantity": line.quantity,
            "amount_minor": line.amount_minor,
            "included": (not line.counted) if line.kind == pricing.LineKind.TAX else None,
        }
        for line in quote.lines
    ]


def quote_view(event_id: str, buyer_id: str, quote: pricing.Quote, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "buyer_id": buyer_id,
        "currency": quote.currency,
        "lines": lines_view(quote),
        "subtotal_minor": quote.subtotal_minor,
        "discount_minor": quote.discount_minor,
        "fees_minor": quote.fees_minor,
        "tax_minor": quote.tax_minor,
        "total_minor": quote.total_minor,
        "promo_code": quote.promo_code,
        "price_list_version": quote.price_list_version,
        "quoted_at": now,
    }


@write_route(
    "Add a promo code to an event (percent or amount off, usage limits, validity window, ticket types)",
    scope="events:write",
    status=201,
    request=PromoCodeCreate,
    response=PromoCodeOut,
    errors=(404, 409),
    tags=TAG,
)
async def create_promo_code(call: Call[PromoCodeCreate]) -> Response:
    principal, svc, event_id = call.principal, call.svc, call.path("event_id")
    meta = await svc.events.get(principal.org_id, event_id)  # 404 for an unknown or another org's event
    body = call.parsed()
    known = {t.code for t in meta.ticket_types}
    unknown = [
        {"field": f"ticket_types.{i}", "message": "not a ticket type of this event", "type": "invalid"}
        for i, code in enumerate(body.ticket_types or ())
        if code not in known
    ]
    if unknown:
        raise ValidationFailed(details={"fields": unknown})
    promo = await pricing_cases.create_promo_code(
        svc.units, svc.domain(PriceCache), principal.org_id, actor_of(call.request, principal), event_id,
        body.definition(),
    )
    return render(PromoCodeOut, promo_view(event_id, promo), 201)


@write_route(
    "Price an order (items, or a live hold) with the event's tiers, fees, tax and an optional promo code",
    scope=("inventory:read", "events:read"),
    request=QuoteCreate,
    response=QuoteOut,
    errors=(404, 410),
    description="Served from cached prices (never Postgres). Takes no promo use: 422 promo_code_invalid says why "
    "a code does not apply (details.reason).",
    tags=TAG,
    route_class=RouteClass.reads,
)
async def quote(call: Call[QuoteCreate]) -> Response:
    principal, svc, event_id = call.principal, call.svc, call.path("event_id")
    visible_to(principal, await svc.events.get(principal.org_id, event_id))  # publishable: on sale or 404
    body = call.parsed()
    prices = svc.domain(PriceCache)
    now = datetime.now(UTC)
    with storage_outage_as_503():
        if body.hold_id is not None:
            found = await pricing_cases.quote_hold(
                prices, svc.domain(HoldCopies), principal.org_id, event_id, body.buyer_id, body.hold_id,
                body.promo_code, now,
            )
        else:
            found = await pricing_cases.quote(
                prices, principal.org_id, event_id, body.buyer_id, body.item_definitions(), body.promo_code, now
            )
    return render(QuoteOut, quote_view(event_id, body.buyer_id, found, now), exclude_none=True)


ROUTES: list[BaseRoute] = [
    Route("/v1/events/{event_id}/promo-codes", create_promo_code, methods=["POST"]),
    Route("/v1/events/{event_id}/quote", quote, methods=["POST"]),
]
