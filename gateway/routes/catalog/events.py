"""/v1/events: create, publish and read an event (its seat ids, availability and live feed are the inventory's
routes: gateway/routes/inventory/availability.py).

Creating, publishing and reading an event are use cases (services/catalog/events.py). Tenancy: every read and write is
bound to the caller's org (a tenant transaction, the caches keyed by org), so another org's event answers 404
like an unknown one. A publishable key (a checkout front-end) sees only the org's on-sale events: a draft answers
404 to it, never 409, so drafts cannot be probed from a browser.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.catalog import pricing
from gateway.context import actor_of
from gateway.endpoints import Call, read_route, write_route
from gateway.errors import ValidationFailed
from gateway.parsing import problems_refused
from gateway.price_cache import PriceCache
from gateway.rendering import render
from gateway.routes.catalog.models import EventCreate, EventOut
from gateway.timer_client import TimerLink
from persistence.catalog import events as pg_events
from services.catalog import events as catalog
from services.catalog import venues

TAG = ("events",)


def event_view(record: pg_events.EventRecord, *, publishable: bool = False) -> dict[str, Any]:
    """The event as the API shows it; a publishable key (a buyer's front-end) is not shown the presales' codes."""
    presales = None if publishable else [
        {"code": p.code, "opens_at": p.opens_at, "closes_at": p.closes_at,
         "buyer_count": None if p.buyer_ids is None else len(p.buyer_ids)}
        for p in record.presales
    ]
    return {
        "sale_opens_at": record.sale_opens_at,
        "sale_closes_at": record.sale_closes_at,
        "presales": presales,
        "id": record.id,
        "name": record.name,
        "starts_at": record.starts_at,
        "hold_ttl_s": record.hold_ttl_s,
        "max_tickets_per_buyer": record.max_tickets_per_buyer,
        "status": record.status,
        "dedicated": record.dedicated,
        "seat_count": record.seat_count,
        "ticket_types": [
            {
                "code": t.code,
                "kind": t.kind,
                "capacity": t.capacity,
                "price": {"amount_minor": t.price_minor, "currency": t.currency},
                "zone": t.zone,
            }
            for t in record.ticket_types
        ],
        "created_at": record.created_at,
        "published_at": record.published_at,
        "layout_id": record.layout_id,
    }


def priced_view(view: dict[str, Any], prices: pricing.PriceList | None) -> dict[str, Any]:
    """The event's view with its price rules (from the price cache: memory or Redis)."""
    if prices is None:
        return view
    for t in view["ticket_types"]:
        found = prices.ticket_types.get(t["code"])
        t["price_tiers"] = [
            {"until": x.until, "price": {"amount_minor": x.amount_minor, "currency": x.currency}}
            for x in (found.tiers if found else ())
        ]
    view["fees"] = [
        {"code": f.code, "per": f.per, "amount_minor": f.amount_minor, "percent_bp": f.percent_bp} for f in prices.fees
    ]
    tax = prices.tax
    view["tax"] = None if tax is None else {"code": tax.code, "rate_bp": tax.rate_bp, "included": tax.included}
    return view


@write_route(
    "Create a draft event with its seating and ticket types",
    scope="events:write",
    status=201,
    request=EventCreate,
    response=EventOut,
    tags=TAG,
)
async def create_event(call: Call[EventCreate]) -> Response:
    principal, svc, body = call.principal, call.svc, call.parsed()
    seating = body.seating.model_dump() if body.seating is not None else None
    actor, definition = actor_of(call.request, principal), body.definition()
    try:
        schedule, cache = body.schedule_values(), svc.domain(PriceCache)
        if definition.layout_id is not None:
            record = await venues.create_event_on_layout(
                svc.units, svc.events, principal.org_id, actor, definition, schedule=schedule, prices=cache
            )
        else:
            record = await catalog.create_event(
                svc.units, svc.events, principal.org_id, actor, definition, seating, schedule=schedule, prices=cache
            )
    except venues.EventProblems as error:  # what the layout refuses (an unknown zone, an unknown layout)
        raise problems_refused(error.problems) from None
    except pg_events.EventRejected as error:  # the store's own checks; the schema should have caught it first
        raise ValidationFailed(str(error)) from None
    prices = await cache.price_list(principal.org_id, record.id)
    return render(EventOut, priced_view(event_view(record), prices), 201)


@write_route(
    "Put a draft event on sale; its inventory is live from then on",
    scope="events:write",
    response=EventOut,
    errors=(404, 409),
    tags=TAG,
)
async def publish_event(call: Call[Any]) -> Response:
    principal, svc = call.principal, call.svc
    actor = actor_of(call.request, principal)
    record = await catalog.publish_event(
        svc.units, svc.events, svc.inventory, principal.org_id, actor, call.path("event_id"),
        schedules=svc.domain(TimerLink).schedules,
    )
    prices = await svc.domain(PriceCache).price_list(principal.org_id, record.id)
    return render(EventOut, priced_view(event_view(record), prices))


@read_route(
    "An event, with its status and ticket types",
    scope="events:read",
    response=EventOut,
    errors=(404,),
    tags=TAG,
)
async def get_event(call: Call[Any]) -> Response:
    principal = call.principal
    record = await catalog.get_event(
        call.svc, principal.org_id, call.path("event_id"), on_sale_only=principal.publishable
    )
    prices = await call.svc.domain(PriceCache).price_list(principal.org_id, record.id)
    return render(EventOut, priced_view(event_view(record, publishable=principal.publishable), prices))


ROUTES: list[BaseRoute] = [
    Route("/v1/events", create_event, methods=["POST"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
    Route("/v1/events/{event_id}/publish", publish_event, methods=["POST"]),
]
