"""Holds: place one on an event, read it, release it, confirm it into a sale. The hot path: no Postgres read."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine import ids
from engine.commands import (
    Command,
    Confirm,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Release,
    SaleView,
    actor_ref,
)
from engine.ratelimit import RouteClass
from gateway import schemas
from gateway.auth import Principal
from gateway.errors import ApiError, NotFound, ValidationFailed
from gateway.event_cache import EventMeta
from gateway.idempotency import token_for
from gateway.metrics import HOLDS_TOTAL, SALES_TOTAL
from gateway.openapi import operation
from gateway.refusals import refused
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
from gateway.routes.events import not_on_sale, visible_to

TAG = ("holds",)
OUTCOME_OK = "ok"


def hold_json(event_id: str, view: HoldView) -> dict[str, Any]:
    return {
        "hold_id": view.hold_id,
        "event_id": event_id,
        "buyer_id": view.buyer_id,
        "seats": list(view.seats),
        "ticket_type": view.ticket_type,
        "quantity": view.quantity,
        "expires_at": rfc3339(view.expires_at),
    }


def sale_json(event_id: str, sale: SaleView) -> dict[str, Any]:
    return {
        "sale_id": sale.sale_id,
        "event_id": event_id,
        "hold_id": sale.hold_id,
        "tickets": [
            {"ticket_id": t.ticket_id, "ticket_type": t.ticket_type}
            | ({"seat_id": t.seat_id} if t.seat_id is not None else {"unit": t.unit})
            for t in sale.tickets
        ],
    }


def hold_not_found(hold_id: str) -> NotFound:
    return NotFound("no such hold", {"hold_id": hold_id}, code="hold_not_found")


def new_hold_id(principal: Principal, event_id: str, key: str | None) -> str:
    """A fresh hold id; with an Idempotency-Key, the same one for every retry of the request."""
    if key is None:
        token = secrets.token_hex(ids.hold_token_hex_chars // 2)
    else:
        token = token_for(principal, key, purpose=f"hold:{event_id}")[: ids.hold_token_hex_chars]
    return ids.hold_id_for(event_id, token)


def hold_command(body: schemas.HoldCreate, meta: EventMeta, hold_id: str) -> Hold:
    if body.ttl_s is not None and body.ttl_s > meta.hold_ttl_s:
        raise ValidationFailed(
            details={
                "fields": [
                    {
                        "field": "ttl_s",
                        "message": f"at most the event's hold_ttl_s ({meta.hold_ttl_s})",
                        "type": "less_than_equal",
                    }
                ]
            }
        )
    if body.seats is not None:
        return Hold(hold_id, hold_id, body.buyer_id, seats=tuple(body.seats), ttl_s=body.ttl_s)
    return Hold(
        hold_id, hold_id, body.buyer_id, ticket_type=body.ticket_type, quantity=body.quantity or 0, ttl_s=body.ttl_s
    )


def hold_buyer(request: Request, body: bytes) -> tuple[str, str] | None:
    """(event id, buyer id) of a well-formed hold body, for the buyer's rate limit, which runs before the handler
    so that one all-or-nothing admission spends key, address and buyer. The parsed body waits in
    ``request.state`` for the handler. A malformed or invalid body: None, so it spends the key's and the
    address's buckets only, and the handler refuses it in the documented order."""
    try:
        parsed = schemas.parse_body(schemas.HoldCreate, body)
    except ApiError:
        return None
    request.state.hold_create = parsed
    return request.path_params["event_id"], parsed.buyer_id


async def submit(svc: Services, meta: EventMeta, command: Command) -> Ok:
    result = await svc.inventory.submit(meta.org_id, meta.event_id, command)
    if isinstance(result, Rejected):
        raise refused(result.code, result.message, result.details)
    return result


@operation(
    summary="Hold seats, or a quantity of one GA ticket type, all or nothing",
    status=201,
    request=schemas.HoldCreate,
    response=schemas.HoldOut,
    scope="inventory:hold",
    idempotent=True,
    errors=(404, 409),
    tags=TAG,
)
@idempotent_write("inventory:hold", route_class=RouteClass.holds, buyer=hold_buyer)
async def create_hold(write: Write) -> Response:
    principal, body, svc, key = write.principal, write.body, write.svc, write.key
    event_id = write.request.path_params["event_id"]
    meta = visible_to(principal, await svc.events.get(principal.org_id, event_id))  # publishable: on sale or 404
    if not meta.on_sale:
        raise not_on_sale(event_id)
    hold_id = new_hold_id(principal, event_id, key)
    parsed = getattr(write.request.state, "hold_create", None) or schemas.parse_body(schemas.HoldCreate, body)
    command = hold_command(parsed, meta, hold_id)
    try:
        async with svc.limits.holds_in_flight(principal.org_id, event_id, command.buyer_id):
            result = await submit(svc, meta, command)
    except ApiError as error:
        HOLDS_TOTAL.labels(error.code).inc()
        raise
    HOLDS_TOTAL.labels(OUTCOME_OK).inc()
    assert isinstance(result.value, HoldView)
    return json_response(hold_json(event_id, result.value), 201)


async def _hold_event(svc: Services, principal: Principal, hold_id: str) -> EventMeta:
    """The on-sale event the hold id names, if it is the caller's; else 404 hold_not_found."""
    event_id = ids.event_id_of_hold(hold_id)
    if event_id is None:
        raise hold_not_found(hold_id)
    try:
        meta = await svc.events.get(principal.org_id, event_id)
    except NotFound:
        raise hold_not_found(hold_id) from None
    if not meta.on_sale:
        raise hold_not_found(hold_id)
    return meta


@operation(
    summary="A hold as it stands (status held or sold); 410 once expired",
    response=schemas.HoldStatusOut,
    scope="inventory:read",
    errors=(404, 409, 410),
    tags=TAG,
)
async def get_hold(request: Request) -> Response:
    principal = await authorize(request, "inventory:read")
    svc = services(request)
    hold_id = request.path_params["hold_id"]
    meta = await _hold_event(svc, principal, hold_id)
    result = await submit(svc, meta, LookupHold(f"lookup:{hold_id}", hold_id))
    assert isinstance(result.value, HoldView)
    return json_response(hold_json(meta.event_id, result.value) | {"status": result.value.status})


@operation(
    summary="Release a hold: its seats are available again at once",
    status=204,
    scope="inventory:hold",
    idempotent=True,
    errors=(404, 409, 410),
    tags=TAG,
)
@idempotent_write("inventory:hold", route_class=RouteClass.holds)
async def release_hold(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    hold_id = write.request.path_params["hold_id"]
    meta = await _hold_event(svc, principal, hold_id)
    # One command id per hold: a repeated release is answered like the first, never applied twice.
    await submit(svc, meta, Release(f"release:{hold_id}", hold_id))
    return Response(status_code=204)


@operation(
    summary="Confirm a hold into a sale; answered after the sale is committed",
    status=201,
    request=schemas.ConfirmCreate,
    response=schemas.SaleOut,
    scope="inventory:confirm",
    idempotent=True,
    errors=(404, 409, 410),
    tags=TAG,
)
@idempotent_write("inventory:confirm", route_class=RouteClass.holds)
async def confirm_hold(write: Write) -> Response:
    principal, body, svc = write.principal, write.body, write.svc
    hold_id = write.request.path_params["hold_id"]
    meta = await _hold_event(svc, principal, hold_id)
    order_ref = schemas.parse_body(schemas.ConfirmCreate, body).order_ref
    # The command id derives from hold and order_ref, so a retried confirm returns the same sale (and leaves
    # no second audit entry, whoever retries it).
    cmd_id = "confirm:" + hashlib.sha256(f"{hold_id}\x00{order_ref}".encode()).hexdigest()
    # Who confirms and from where rides with the command: the sale's audit entry is written in the inventory's
    # group commit, far from this request.
    actor = actor_of(write.request, principal)
    command = Confirm(cmd_id, hold_id, order_ref, actor_ref(actor.type, actor.id), actor.ip)
    try:
        result = await submit(svc, meta, command)
    except ApiError as error:
        SALES_TOTAL.labels(error.code).inc()
        raise
    SALES_TOTAL.labels(OUTCOME_OK).inc()
    assert isinstance(result.value, SaleView)
    return json_response(sale_json(meta.event_id, result.value), 201)


ROUTES: list[BaseRoute] = [
    Route("/v1/events/{event_id}/holds", create_hold, methods=["POST"]),
    Route("/v1/holds/{hold_id}", get_hold, methods=["GET"]),
    Route("/v1/holds/{hold_id}", release_hold, methods=["DELETE"]),
    Route("/v1/holds/{hold_id}/confirm", confirm_hold, methods=["POST"]),
]
