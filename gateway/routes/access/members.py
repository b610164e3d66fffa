"""/v1/members: the people of the caller's organization and their roles (scope members:manage).

The rules (who may grant what, the last owner, invitations as the only way in) are services/access/members.py's and
engine/access/rules.py's; these routes parse, call one use case and render. Changing a member's role or removing them
ends their sessions in the org at once, so the old role's tokens stop working.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.context import actor_of
from gateway.endpoints import Call, read_route, write_route
from gateway.rendering import render
from gateway.routes.access.models import MemberCreate, MemberCreated, MemberList, MemberOut, MemberUpdate
from gateway.sessions import RevocationMarks
from persistence.access import memberships
from services.access import members

TAG = ("members",)
SCOPE = "members:manage"


def member_view(member: memberships.MemberRecord) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "email": member.email,
        "role": member.role,
        "status": "active" if member.accepted else "pending",
        "created_at": member.created_at,
    }


def _manager(call: Call[Any]) -> members.Manager:
    principal = call.principal
    return members.Manager(actor_of(call.request, principal), principal.role, principal.scopes)


@read_route(
    "List the organization's members and their roles",
    scope=SCOPE,
    response=MemberList,
    tags=TAG,
)
async def list_members(call: Call[Any]) -> Response:
    found = await members.list_members(call.svc, call.principal.org_id)
    return render(MemberList, {"members": [member_view(m) for m in found]})


@write_route(
    "Invite a person to the organization with a role: a pending member and an invitation token, shown once",
    description="Pass the token to the person privately. They join with POST /v1/invitations/accept: a new "
    "person sets their password there; a person who already has an account (in another organization) gives "
    "their own password. Until then the member is pending: listed with status \"pending\", unable to log in.",
    scope=SCOPE,
    status=201,
    request=MemberCreate,
    response=MemberCreated,
    errors=(409,),
    tags=TAG,
    secret_fields=("invitation.token",),
)
async def add_member(call: Call[MemberCreate]) -> Response:
    wanted, svc = call.parsed(), call.svc
    invited = await members.invite_member(
        svc, svc.units, call.principal.org_id, _manager(call), email=wanted.email, role=wanted.role
    )
    invitation = {"token": invited.token, "expires_at": invited.invitation.expires_at}
    return render(MemberCreated, {**member_view(invited.member), "invitation": invitation}, 201)


@write_route(
    "Change a member's role; their sessions in the organization end",
    scope=SCOPE,
    request=MemberUpdate,
    response=MemberOut,
    errors=(404, 409),
    tags=TAG,
)
async def change_role(call: Call[MemberUpdate]) -> Response:
    wanted, svc = call.parsed(), call.svc
    member = await members.change_role(
        svc.units, RevocationMarks(svc.redis), call.principal.org_id, _manager(call), call.path("user_id"), wanted.role
    )
    return render(MemberOut, member_view(member))


@write_route(
    "Remove a member from the organization; their sessions end",
    scope=SCOPE,
    status=204,
    errors=(404, 409),
    tags=TAG,
)
async def remove_member(call: Call[Any]) -> Response:
    svc = call.svc
    await members.remove_member(
        svc.units, RevocationMarks(svc.redis), call.principal.org_id, _manager(call), call.path("user_id")
    )
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/v1/members", list_members, methods=["GET"]),
    Route("/v1/members", add_member, methods=["POST"]),
    Route("/v1/members/{user_id}", change_role, methods=["PATCH"]),
    Route("/v1/members/{user_id}", remove_member, methods=["DELETE"]),
]
