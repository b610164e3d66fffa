"""/v1/ticket-keys: the org's public ticket keys, what an offline verifier (a scanner) needs besides revocations
(engine/tickets/verify.py; docs/architecture.md "Checkout: signed tickets")."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from engine.tickets.keys import KEY_ALG, KID_PATTERN
from engine.tickets.qr import qr_png, qr_svg
from gateway.endpoints import Call, read_route
from gateway.rendering import render
from persistence.tickets import TicketKeyRecord
from services import tickets
from services.orders import reads

TAG = ("tickets",)
# Who may read events may check their tickets; a scanner's key holds scans:write.
SCOPE = (Permission.EVENTS_READ.value, Permission.SCANS_WRITE.value)


class TicketKeyOut(BaseModel):
    kid: str = Field(pattern=KID_PATTERN, description="the key id every payload it signed carries")
    alg: Literal["Ed25519"]
    public_key: str = Field(
        pattern=r"^[A-Za-z0-9_-]{43}$", description="the raw 32-byte Ed25519 public key, base64url without padding"
    )
    status: Literal["active", "retiring"] = Field(
        description="active: signs new tickets; retiring: signs no more, its tickets still verify"
    )


class TicketKeysOut(BaseModel):
    keys: list[TicketKeyOut]


def key_view(key: TicketKeyRecord) -> dict[str, Any]:
    public_key = base64.urlsafe_b64encode(key.public_key).decode("ascii").rstrip("=")
    return {"kid": key.kid, "alg": KEY_ALG, "public_key": public_key, "status": key.status.value}


@read_route(
    "The organization's ticket verifying keys",
    description=(
        "Every key a ticket of this organization may be signed with and still verify: the active one and those "
        "retiring (rotated out, their tickets still valid). A retired key is not listed: its tickets are refused. "
        "Empty until the organization's first ticket is issued."
    ),
    response=TicketKeysOut,
    scope=SCOPE,
    tags=TAG,
)
async def list_ticket_keys(call: Call[Any]) -> Response:
    keys = await tickets.verifying_keys(call.svc, call.principal.org_id)
    return render(TicketKeysOut, {"keys": [key_view(key) for key in keys]})


class RevocationsOut(BaseModel):
    revoked: list[str] = Field(description="ticket ids that must no longer be admitted")
    version: int = Field(description="bumped by every change: 0 until a ticket of the event is revoked")


@read_route(
    "An event's revoked tickets and the list's version, for offline verifiers",
    response=RevocationsOut,
    scope=SCOPE,
    errors=(404,),
    tags=TAG,
)
async def list_revocations(call: Call[Any]) -> Response:
    org_id, event_id = call.principal.org_id, call.path("event_id")
    await call.svc.events.get(org_id, event_id)  # 404 for an unknown or another org's event
    found = await tickets.revocations(call.svc, org_id, event_id)
    return render(RevocationsOut, {"revoked": list(found.ticket_ids), "version": found.version})


# The buyer's front end shows the code; the organizer may too.
QR_SCOPE = (Permission.ORDERS_READ.value, Permission.INVENTORY_CONFIRM.value)


@read_route("A ticket's QR code as a PNG image", scope=QR_SCOPE, errors=(404,), tags=TAG, media_type="image/png")
async def ticket_qr_png(call: Call[Any]) -> Response:
    payload = await reads.ticket_payload(call.svc.units, call.principal.org_id, call.path("ticket_id"))
    return Response(await asyncio.to_thread(qr_png, payload), media_type="image/png")


@read_route("A ticket's QR code as an SVG image", scope=QR_SCOPE, errors=(404,), tags=TAG,
            media_type="image/svg+xml")  # fmt: skip
async def ticket_qr_svg(call: Call[Any]) -> Response:
    payload = await reads.ticket_payload(call.svc.units, call.principal.org_id, call.path("ticket_id"))
    return Response(await asyncio.to_thread(qr_svg, payload), media_type="image/svg+xml")


ROUTES: list[BaseRoute] = [
    Route("/v1/ticket-keys", list_ticket_keys, methods=["GET"]),
    Route("/v1/events/{event_id}/revocations", list_revocations, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}/qr.png", ticket_qr_png, methods=["GET"]),
    Route("/v1/tickets/{ticket_id}/qr.svg", ticket_qr_svg, methods=["GET"]),
]
