"""GET /v1/events/{event_id}/seatmap.svg: the event's seats drawn from its layout (the catalog's), coloured by the
live availability copy (the inventory's, hence this route's place). gateway/seatmap.py caches the drawing per
event and takes the colours from memory, so no request reads Postgres once the drawing is cached. A publishable
key sees on-sale events only."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.endpoints import Call, read_route
from gateway.event_cache import event_not_found, visible_to
from gateway.routes.inventory.availability import SEATS_SCOPES, current_availability
from gateway.seatmap import SVG_MEDIA_TYPE, SeatMaps

TAG = ("events",)


@read_route(
    "The event's seat map as SVG: one circle per seat, id = the seat id, class = its state",
    description=(
        "image/svg+xml. Each seat is a <circle> whose id is the seat id and whose class is available, held, sold "
        "or blocked (no ticket type sells it), current to the availability copy; the stage is at the smallest y. "
        "A draft's sellable seats show available (it has no inventory yet). Needs inventory:read or events:read."
    ),
    scope=SEATS_SCOPES,
    errors=(404,),
    tags=TAG,
    media_type=SVG_MEDIA_TYPE,
)
async def get_seatmap(call: Call[Any]) -> Response:
    principal, svc, event_id = call.principal, call.svc, call.path("event_id")
    meta = visible_to(principal, await svc.events.get(principal.org_id, event_id))
    view = await current_availability(svc, principal, event_id) if meta.has_inventory else None
    body = await svc.domain(SeatMaps).svg(principal.org_id, event_id, view)
    if body is None:
        raise event_not_found(event_id)
    return Response(body, media_type=SVG_MEDIA_TYPE)


ROUTES: list[BaseRoute] = [Route("/v1/events/{event_id}/seatmap.svg", get_seatmap, methods=["GET"])]
