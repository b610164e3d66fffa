"""/v1/ticket-keys: the org's public ticket keys, what an offline verifier (a scanner) needs besides revocations
(engine/tickets/verify.py; docs/architecture.md "Checkout: signed tickets")."""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import Permission
from engine.tickets.keys import KEY_ALG, KID_PATTERN
from gateway.endpoints import Call, read_route
from gateway.rendering import render
from persistence.tickets import TicketKeyRecord
from services import tickets

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


ROUTES: list[BaseRoute] = [Route("/v1/ticket-keys", list_ticket_keys, methods=["GET"])]
