"""/v1/events: create, publish, read an event, its seat ids, its availability and its live feed."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from engine import seating
from engine.ids import is_event_id
from gateway import live, schemas
from gateway.availability import availability_json
from gateway.errors import ApiError, Conflict, InventoryUnavailable, ValidationFailed
from gateway.event_cache import event_not_found, meta_of_record
from gateway.openapi import operation
from gateway.routes.context import Services, Write, authorize, idempotent_write, json_response, rfc3339, services
from persistence import events as pg_events
from persistence.live_state import AvailabilityView

TAG = ("events",)


def new_event(body: schemas.EventCreate) -> pg_events.NewEvent:
    layout = body.seating.layout() if body.seating is not None else ()
    seat_ids = seating.seat_ids(layout)
    return pg_events.NewEvent(
        name=body.name,
        starts_at=body.starts_at,
        hold_ttl_s=body.hold_ttl_s,
        max_tickets_per_buyer=body.max_tickets_per_buyer,
        seating=body.seating.model_dump() if body.seating is not None else None,
        seat_ids=seat_ids,
        ticket_types=tuple(
            pg_events.TicketTypeRecord(
                code=t.code,
                kind=t.kind,
                capacity=len(seat_ids) if t.kind == pg_events.KIND_SEATED else (t.capacity or 0),
                price_minor=t.price.amount_minor,
                currency=t.price.currency,
            )
            for t in body.ticket_types
        ),
        dedicated=body.dedicated,
    )


def event_json(record: pg_events.EventRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "starts_at": rfc3339(record.starts_at),
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
            }
            for t in record.ticket_types
        ],
        "created_at": rfc3339(record.created_at),
        "published_at": rfc3339(record.published_at),
    }


@operation(
    summary="Create a draft event with its seating and ticket types",
    status=201,
    request=schemas.EventCreate,
    response=schemas.EventOut,
    scope="events:write",
    idempotent=True,
    tags=TAG,
)
@idempotent_write("events:write")
async def create_event(write: Write) -> Response:
    principal, body, svc = write.principal, write.body, write.svc
    new = new_event(schemas.parse_body(schemas.EventCreate, body))
    try:
        async with svc.connection() as conn:
            record = await pg_events.create_event(conn, principal.org_id, new)
    except ValueError as error:  # the store's own checks; the schema should have caught it first
        raise ValidationFailed(str(error)) from None
    await svc.events.share(meta_of_record(record))  # so reads of the draft never reach Postgres
    return json_response(event_json(record), 201)


@operation(
    summary="Put a draft event on sale; its inventory is live from then on",
    response=schemas.EventOut,
    scope="events:write",
    idempotent=True,
    errors=(404,),
    tags=TAG,
)
@idempotent_write("events:write")
async def publish_event(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    event_id = write.request.path_params["event_id"]
    if not is_event_id(event_id):
        raise event_not_found(event_id)
    async with svc.connection() as conn:
        record = await pg_events.publish_event(conn, principal.org_id, event_id)
    if record is None:
        raise event_not_found(event_id)
    await svc.events.share(meta_of_record(record))
    await svc.inventory.activate(principal.org_id, event_id)
    return json_response(event_json(record))


@operation(
    summary="An event, with its status and ticket types",
    response=schemas.EventOut,
    scope="events:read",
    errors=(404,),
    tags=TAG,
)
async def get_event(request: Request) -> Response:
    principal = await authorize(request, "events:read")
    svc = services(request)
    event_id = request.path_params["event_id"]
    if not is_event_id(event_id):
        raise event_not_found(event_id)
    async with svc.connection() as conn:
        record = await pg_events.get_event(conn, principal.org_id, event_id)
    if record is None:
        raise event_not_found(event_id)
    return json_response(event_json(record))


@operation(
    summary="The event's seat ids in index order (the availability bitmap's order)",
    response=schemas.SeatIdsOut,
    scope="events:read",
    errors=(404,),
    tags=TAG,
)
async def get_seats(request: Request) -> Response:
    principal = await authorize(request, "events:read")
    svc = services(request)
    event_id = request.path_params["event_id"]
    await svc.events.get(principal.org_id, event_id)
    body = await svc.seat_lists.body(principal.org_id, event_id)
    if body is None:
        raise event_not_found(event_id)
    return Response(body, media_type="application/json")


@operation(
    summary="Availability counts and the seat bitmap, from memory or Redis (never Postgres)",
    response=schemas.AvailabilityOut,
    scope="inventory:read",
    errors=(404, 409),
    tags=TAG,
)
async def get_availability(request: Request) -> Response:
    principal = await authorize(request, "inventory:read")
    event_id = request.path_params["event_id"]
    view = await current_availability(services(request), principal.org_id, event_id)
    return json_response(availability_json(event_id, view))


async def current_availability(svc: Services, org_id: str, event_id: str) -> AvailabilityView:
    """The on-sale event's availability; loads its inventory once if Redis has none yet."""
    meta = await svc.events.get(org_id, event_id)
    if not meta.on_sale:
        raise not_on_sale(event_id)
    view = await svc.availability.get(org_id, event_id)
    if view is None:
        await svc.inventory.activate(org_id, event_id)
        view = await svc.availability.get(org_id, event_id)
    if view is None:
        raise InventoryUnavailable("the event's inventory is loading; retry shortly")
    return view


def not_on_sale(event_id: str) -> ApiError:
    return Conflict("the event is not on sale", {"event_id": event_id}, code="not_on_sale")


@operation(
    summary="Live availability: a snapshot, then deltas in version order",
    response=schemas.LiveSnapshot,
    scope="inventory:read",
    errors=(404, 409),
    websocket=True,
    description=live.DESCRIPTION,
    tags=TAG,
)
async def live_feed(websocket: WebSocket) -> None:
    await live.serve(websocket, current_availability)


ROUTES: list[BaseRoute] = [
    Route("/v1/events", create_event, methods=["POST"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
    Route("/v1/events/{event_id}/publish", publish_event, methods=["POST"]),
    Route("/v1/events/{event_id}/seats", get_seats, methods=["GET"]),
    Route("/v1/events/{event_id}/availability", get_availability, methods=["GET"]),
    WebSocketRoute("/v1/events/{event_id}/live", live_feed),
]
