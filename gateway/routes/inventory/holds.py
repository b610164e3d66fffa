"""Holds: place one on an event, read it, release it, confirm it into a sale. The hot path: no Postgres read."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine import ids
from engine.catalog.lifecycle import EventStatus
from engine.catalog.presales import open_presales
from engine.inventory.commands import Command, Confirm, Hold, HoldView, LookupHold, Ok, Release, SaleView, actor_ref
from engine.ratelimit import RouteClass
from engine.refusals import Refusal, Refused
from gateway.auth import Principal
from gateway.context import Services, actor_of
from gateway.endpoints import Call, read_route, write_route
from gateway.errors import ApiError, NotFound, ValidationFailed
from gateway.event_cache import EventMeta, not_on_sale, visible_to
from gateway.idempotency import token_for
from gateway.metrics import HOLDS_TOTAL, SALES_TOTAL
from gateway.refusals import refused
from gateway.rendering import render
from gateway.routes.inventory.models import ConfirmCreate, HoldCreate, HoldOut, HoldStatusOut, SaleOut
from services.inventory import commands as inventory

TAG = ("holds",)
OUTCOME_OK = "ok"


def hold_data(event_id: str, view: HoldView) -> dict[str, Any]:
    return {
        "hold_id": view.hold_id,
        "event_id": event_id,
        "buyer_id": view.buyer_id,
        "seats": view.seats,
        "ticket_type": view.ticket_type,
        "quantity": view.quantity,
        "expires_at": datetime.fromtimestamp(view.expires_at, UTC),
    }


def sale_data(event_id: str, sale: SaleView) -> dict[str, Any]:
    return {
        "sale_id": sale.sale_id,
        "event_id": event_id,
        "hold_id": sale.hold_id,
        "tickets": [
            {"ticket_id": t.ticket_id, "ticket_type": t.ticket_type, "seat_id": t.seat_id, "unit": t.unit}
            for t in sale.tickets
        ],
    }


def hold_not_found(hold_id: str) -> ApiError:
    return refused(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})


def new_hold_id(principal: Principal, event_id: str, key: str | None) -> str:
    """A fresh hold id; with an Idempotency-Key, the same one for every retry of the request."""
    if key is None:
        token = secrets.token_hex(ids.hold_token_hex_chars // 2)
    else:
        token = token_for(principal, key, purpose=f"hold:{event_id}")[: ids.hold_token_hex_chars]
    return ids.hold_id_for(event_id, token)


def hold_command(body: HoldCreate, meta: EventMeta, hold_id: str) -> Hold:
    if body.ttl_s is not None and body.ttl_s > meta.hold_ttl_s:
        raise ValidationFailed(
            details={
                "fields": [
                    {
                        "field": "ttl_s",
                        "message": f"at most the event's hold_ttl_s ({meta.hold_ttl_s})",
                        "type": "invalid",  # a rule of the event's, beyond the body's schema
                    }
                ]
            }
        )
    if body.seats is not None:
        return Hold(hold_id, hold_id, body.buyer_id, seats=tuple(body.seats), ttl_s=body.ttl_s)
    if body.best_available is not None:
        return Hold(hold_id, hold_id, body.buyer_id, ttl_s=body.ttl_s, best_available=body.best_available.request())
    return Hold(
        hold_id, hold_id, body.buyer_id, ticket_type=body.ticket_type, quantity=body.quantity or 0, ttl_s=body.ttl_s
    )


def hold_buyer(call: Call[HoldCreate]) -> tuple[str, str] | None:
    """(event id, buyer id) of a well-formed hold body, for the buyer's rate limit. The body is parsed once: the
    handler gets the same parse (or its error, raised where the handler asks for the body)."""
    try:
        parsed = call.parsed()
    except ApiError:
        return None
    return call.path("event_id"), parsed.buyer_id


@write_route(
    "Hold seats, a quantity of one GA ticket type, or the best available seats, all or nothing",
    scope="inventory:hold",
    status=201,
    request=HoldCreate,
    response=HoldOut,
    errors=(404, 409),
    tags=TAG,
    route_class=RouteClass.holds,
    buyer=hold_buyer,
    # A link from an event's answer holds one ticket of its first type (OpenAPI links; a fuzzer reaches confirm).
    linked_body={"seats": None, "ticket_type": "/ticket_types/0/code", "quantity": 1},
)
async def create_hold(call: Call[HoldCreate]) -> Response:
    principal, svc = call.principal, call.svc
    event_id = call.path("event_id")
    meta = visible_to(principal, await svc.events.get(principal.org_id, event_id))  # publishable: a draft is 404
    _check_sale_open(call, meta, time.time())
    command = hold_command(call.parsed(), meta, new_hold_id(principal, event_id, call.key))
    try:
        async with svc.limits.holds_in_flight(principal.org_id, event_id, command.buyer_id):
            result = await _submit(svc, meta, command)
    except (ApiError, Refused) as error:
        HOLDS_TOTAL.labels(_outcome(error)).inc()
        raise
    HOLDS_TOTAL.labels(OUTCOME_OK).inc()
    assert isinstance(result.value, HoldView)
    return render(HoldOut, hold_data(event_id, result.value), 201)


def _check_sale_open(call: Call[HoldCreate], meta: EventMeta, now: float) -> None:
    """409 not_on_sale (with the reason) unless the event takes holds now (engine/catalog/presales.py). The body
    is read only when a presale is running (its code and buyer decide), so a draft answers 409 before any 422."""
    reason = meta.hold_refusal(None, "", now)
    if reason is not None and meta.status == EventStatus.PUBLISHED and open_presales(meta.schedule, now):
        body = call.parsed()
        reason = meta.hold_refusal(body.presale_code, body.buyer_id, now)
    if reason is not None:
        raise not_on_sale(meta.event_id, reason)


async def _submit(svc: Services, meta: EventMeta, command: Command) -> Ok:
    """``command`` to the event's inventory, placed by the meta the route has read (no second read of it)."""
    return await inventory.submit(svc.inventory, meta.org_id, meta.event_id, command, dedicated=meta.dedicated)


def _outcome(error: ApiError | Refused) -> str:
    return error.refusal.value if isinstance(error, Refused) else error.code


async def _hold_event(svc: Services, principal: Principal, hold_id: str) -> EventMeta:
    """The published event the hold id names, if it is the caller's; else 404 hold_not_found. (Paused, sold out,
    closed, cancelled: its inventory answers; a paused event's holds can still be confirmed.)"""
    event_id = ids.event_id_of_hold(hold_id)
    if event_id is None:
        raise hold_not_found(hold_id)
    try:
        meta = await svc.events.get(principal.org_id, event_id)
    except NotFound:
        raise hold_not_found(hold_id) from None
    if not meta.has_inventory:
        raise hold_not_found(hold_id)
    return meta


@read_route(
    "A hold as it stands (status held or sold); 410 once expired",
    scope="inventory:read",
    response=HoldStatusOut,
    errors=(404, 409, 410),
    tags=TAG,
)
async def get_hold(call: Call[Any]) -> Response:
    svc, hold_id = call.svc, call.path("hold_id")
    meta = await _hold_event(svc, call.principal, hold_id)
    lookup = LookupHold(f"lookup:{hold_id}", hold_id)
    result = await _submit(svc, meta, lookup)
    assert isinstance(result.value, HoldView)
    return render(HoldStatusOut, hold_data(meta.event_id, result.value) | {"status": result.value.status})


@write_route(
    "Release a hold: its seats are available again at once",
    scope="inventory:hold",
    status=204,
    errors=(404, 409, 410),
    tags=TAG,
    route_class=RouteClass.holds,
)
async def release_hold(call: Call[Any]) -> Response:
    svc, hold_id = call.svc, call.path("hold_id")
    meta = await _hold_event(svc, call.principal, hold_id)
    # One command id per hold: a repeated release is answered like the first, never applied twice.
    await _submit(svc, meta, Release(f"release:{hold_id}", hold_id))
    return Response(status_code=204)


@write_route(
    "Confirm a hold into a sale; answered after the sale is committed",
    scope="inventory:confirm",
    status=201,
    request=ConfirmCreate,
    response=SaleOut,
    errors=(404, 409, 410),
    tags=TAG,
    route_class=RouteClass.holds,
)
async def confirm_hold(call: Call[ConfirmCreate]) -> Response:
    principal, svc, hold_id = call.principal, call.svc, call.path("hold_id")
    meta = await _hold_event(svc, principal, hold_id)
    order_ref = call.parsed().order_ref
    # The command id derives from hold and order_ref, so a retried confirm returns the same sale (and leaves
    # no second audit entry, whoever retries it).
    cmd_id = "confirm:" + hashlib.sha256(f"{hold_id}\x00{order_ref}".encode()).hexdigest()
    # Who confirms and from where rides with the command: the sale's audit entry is written in the inventory's
    # group commit, far from this request.
    actor = actor_of(call.request, principal)
    command = Confirm(cmd_id, hold_id, order_ref, actor_ref(actor.type, actor.id), actor.ip)
    try:
        result = await _submit(svc, meta, command)
    except (ApiError, Refused) as error:
        SALES_TOTAL.labels(_outcome(error)).inc()
        raise
    SALES_TOTAL.labels(OUTCOME_OK).inc()
    assert isinstance(result.value, SaleView)
    return render(SaleOut, sale_data(meta.event_id, result.value), 201, exclude_none=True)


ROUTES: list[BaseRoute] = [
    Route("/v1/events/{event_id}/holds", create_hold, methods=["POST"]),
    Route("/v1/holds/{hold_id}", get_hold, methods=["GET"]),
    Route("/v1/holds/{hold_id}", release_hold, methods=["DELETE"]),
    Route("/v1/holds/{hold_id}/confirm", confirm_hold, methods=["POST"]),
]
