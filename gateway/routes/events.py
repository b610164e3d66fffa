"""/v1/events: create, publish, read an event, its seat ids, its availability and its live feed.

Tenancy: every read and write is bound to the caller's org (``svc.tenant``, the event cache keyed by org), so
another org's event answers 404 like an unknown one. A publishable key (a checkout front-end) sees only the
org's on-sale events: a draft answers 404 to it, never 409, so drafts cannot be probed from a browser.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from engine import catalog
from engine.ids import is_event_id
from engine.lifecycle import EventStatus, is_on_sale
from gateway import live, schemas
from gateway.auth import Principal
from gateway.availability import availability_json
from gateway.errors import ApiError, Conflict, InventoryUnavailable, ValidationFailed
from gateway.event_cache import EventMeta, event_not_found, meta_of_record
from gateway.openapi import operation
from gateway.routes.context import (
    Services,
    Write,
    actor_of,
    authorize,
    idempotent_write,
    json_response,
    rfc3339,
    services,
)
from persistence import audit
from persistence import events as pg_events
from persistence.live_state import AvailabilityView

TAG = ("events",)
EVENT_CREATE = "event.create"
EVENT_PUBLISH = "event.publish"
# The seat ids are the availability bitmap's legend: a checkout front-end (a publishable key, inventory:read)
# needs them as much as an organizer's back office (events:read).
SEATS_SCOPES = ("inventory:read", "events:read")


def new_event(body: schemas.EventCreate) -> pg_events.NewEvent:
    seating = body.seating.model_dump() if body.seating is not None else None
    return pg_events.new_event(catalog.stocked(body.definition()), seating)


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


def audit_json(record: pg_events.EventRecord) -> dict[str, Any]:
    """What the audit log keeps of an event: the fields a person reviewing the log needs, no seat list."""
    return {
        "name": record.name,
        "starts_at": rfc3339(record.starts_at),
        "status": record.status,
        "dedicated": record.dedicated,
        "seat_count": record.seat_count,
        "ticket_types": [t.code for t in record.ticket_types],
    }


def visible_to(principal: Principal, meta: EventMeta) -> EventMeta:
    """The event, unless the caller is a publishable key and the event is not on sale: then 404."""
    if principal.publishable and not meta.on_sale:
        raise event_not_found(meta.event_id)
    return meta


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
        pg_events.check_new_event(new)  # the store's own checks; the schema should have caught it first
    except ValueError as error:
        raise ValidationFailed(str(error)) from None
    async with svc.tenant(principal.org_id) as db:
        record = await pg_events.create_event(db, new)
        # In the same transaction: the event exists if and only if its creation is in the log.
        change = audit.Change(EVENT_CREATE, "event", record.id, after=audit_json(record))
        await audit.record(db, actor_of(write.request, principal), change)
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
    async with svc.tenant(principal.org_id) as db:
        published = await pg_events.publish_event(db, event_id)
        if published is not None and published.changed:
            change = audit.Change(
                EVENT_PUBLISH,
                "event",
                event_id,
                before={"status": EventStatus.DRAFT.value},
                after={"status": published.event.status, "published_at": rfc3339(published.event.published_at)},
            )
            await audit.record(db, actor_of(write.request, principal), change)
    if published is None:
        raise event_not_found(event_id)
    record = published.event
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
    async with svc.tenant(principal.org_id) as db:
        record = await pg_events.get_event(db, event_id)
    if record is None or (principal.publishable and not is_on_sale(record.status)):
        raise event_not_found(event_id)
    return json_response(event_json(record))


@operation(
    summary="The event's seat ids in index order (the availability bitmap's order)",
    response=schemas.SeatIdsOut,
    scope="inventory:read",
    description=(
        "Needs inventory:read or events:read: the seat ids are the availability bitmap's legend, which a checkout "
        "front-end (a publishable key) needs as much as a back office. A publishable key sees on-sale events only."
    ),
    errors=(404,),
    tags=TAG,
)
async def get_seats(request: Request) -> Response:
    principal = await authorize(request, SEATS_SCOPES)
    svc = services(request)
    event_id = request.path_params["event_id"]
    visible_to(principal, await svc.events.get(principal.org_id, event_id))
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
    view = await current_availability(services(request), principal, event_id)
    return json_response(availability_json(event_id, view))


async def current_availability(svc: Services, principal: Principal, event_id: str) -> AvailabilityView:
    """The on-sale event's availability; loads its inventory once if Redis has none yet."""
    org_id = principal.org_id
    meta = visible_to(principal, await svc.events.get(org_id, event_id))
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
