"""An event's lifecycle: move it between statuses, edit its schedule, sale limits, fees and tax, change a ticket
type's capacity (GA), price and price tiers.

Each is a use case (services/catalog/lifecycle.py): audited with who did it, then shared with every gateway
process, the event's inventory (its sale gate) and the catalog timer. Tenancy as for every event route: another
org's event answers 404 like an unknown one.
"""

from __future__ import annotations

import secrets

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.context import actor_of
from gateway.endpoints import Call, write_route
from gateway.idempotency import token_for
from gateway.parsing import problems_refused
from gateway.price_cache import PriceCache
from gateway.rendering import render
from gateway.routes.catalog.events import event_view, priced_view
from gateway.routes.catalog.models import (
    EventOut,
    EventPatch,
    TicketTypeOut,
    TicketTypePatch,
    TransitionIn,
    TransitionOut,
)
from gateway.timer_client import TimerLink
from services.catalog import lifecycle as catalog_lifecycle

TAG = ("events",)


@write_route(
    "Move an event to another status: 409 invalid_transition names the statuses allowed from where it is",
    scope="events:write",
    request=TransitionIn,
    response=TransitionOut,
    errors=(404, 409),
    tags=TAG,
)
async def transition_event(call: Call[TransitionIn]) -> Response:
    principal, svc = call.principal, call.svc
    record = await catalog_lifecycle.transition(
        svc.units, svc.events, svc.inventory, svc.domain(TimerLink).schedules, principal.org_id,
        actor_of(call.request, principal), call.path("event_id"), call.parsed().to,
    )
    return render(TransitionOut, {"id": record.id, "status": record.status})


@write_route(
    "Edit an event: name, starts_at, sale window, presales, hold_ttl_s, max_tickets_per_buyer, fees, tax "
    "(new fees or tax on a closed or cancelled event: 409 event_ended)",
    scope="events:write",
    request=EventPatch,
    response=EventOut,
    errors=(404, 409),
    tags=TAG,
)
async def patch_event(call: Call[EventPatch]) -> Response:
    principal, svc, body = call.principal, call.svc, call.parsed()
    cache = svc.domain(PriceCache)
    try:
        record = await catalog_lifecycle.patch_event(
            svc.units, svc.events, svc.inventory, svc.domain(TimerLink).schedules, principal.org_id,
            actor_of(call.request, principal), call.path("event_id"), body.values(),
            prices=body.price_rules(), shared_prices=cache,
        )
    except catalog_lifecycle.InvalidPatch as error:
        raise problems_refused(error.problems) from None
    prices = await cache.price_list(principal.org_id, record.id)
    return render(EventOut, priced_view(event_view(record), prices))


@write_route(
    "Change a ticket type: a GA type's capacity (grow any time, shrink only down to held + sold), its price and "
    "price tiers (a closed or cancelled event: 409 event_ended)",
    scope="events:write",
    request=TicketTypePatch,
    response=TicketTypeOut,
    errors=(404, 409),
    tags=TAG,
)
async def patch_ticket_type(call: Call[TicketTypePatch]) -> Response:
    principal, svc, body = call.principal, call.svc, call.parsed()
    event_id, code = call.path("event_id"), call.path("code")
    # One command id per request; a retry with the same Idempotency-Key is the same command.
    key = call.key
    token = secrets.token_hex(16) if key is None else token_for(principal, key, purpose=f"capacity:{event_id}")
    cache = svc.domain(PriceCache)
    try:
        record = await catalog_lifecycle.change_ticket_type(
            svc.units, svc.events, cache, svc.inventory, principal.org_id, actor_of(call.request, principal),
            event_id, code, body.capacity, body.price_change(code), f"capacity:{token[:32]}",
        )
    except catalog_lifecycle.InvalidPatch as error:
        raise problems_refused(error.problems) from None
    prices = await cache.price_list(principal.org_id, record.id)
    [ticket_type] = [t for t in priced_view(event_view(record), prices)["ticket_types"] if t["code"] == code]
    return render(TicketTypeOut, ticket_type)


ROUTES: list[BaseRoute] = [
    Route("/v1/events/{event_id}", patch_event, methods=["PATCH"]),
    Route("/v1/events/{event_id}/transitions", transition_event, methods=["POST"]),
    Route("/v1/events/{event_id}/ticket-types/{code}", patch_ticket_type, methods=["PATCH"]),
]
