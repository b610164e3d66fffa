"""/v1/members: the people of the caller's organization and their roles (scope members:manage).

Nobody grants more than they hold, only an owner makes, changes or removes an owner, and an org always keeps
one owner (engine/access.py: member_change_refusal; this module reads the roster and raises the refusal).
Changing a member's role or removing them ends their sessions in the org at once (rows revoked, Redis marks set),
so the old role's tokens stop working.

Adding a person makes a pending membership and an invitation, always: the person joins by accepting it (a new
person sets their password with it, anyone else gives their own), so no org can join an account to itself
without its owner's consent. Pending members cannot log in and do not count as owners.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access import MemberChange, MemberRefusal, grant_refusal, invitation_sets_password, member_change_refusal
from gateway import schemas
from gateway.auth import Principal
from gateway.errors import ApiError, Conflict, Forbidden, NotFound, Unauthorized
from gateway.openapi import operation
from gateway.routes.context import (
    Write,
    actor_of,
    authorize,
    idempotent_write,
    json_response,
    rfc3339,
    services,
)
from gateway.sessions import end_sessions
from persistence import audit, invitations, memberships, sessions, users
from persistence.tenancy import OrgDb

TAG = ("members",)
SCOPE = "members:manage"
_USER_ID_RE = re.compile(re.escape(users.USER_PREFIX) + r"[0-9a-f]{32}")


def member_view(member: memberships.MemberRecord) -> dict[str, Any]:
    return {
        "user_id": member.user_id,
        "email": member.email,
        "role": member.role,
        "status": "active" if member.accepted else "pending",
        "created_at": rfc3339(member.created_at),
    }


def _not_grantable(new_role: str | None) -> Forbidden:
    what = "remove this member" if new_role is None else f"give the role {new_role!r} to this member"
    return Forbidden(
        f"you may not {what}: only an owner touches owners, and nobody grants more than they hold",
        {"role": new_role},
        code="role_not_grantable",
    )


def _member_not_found(user_id: str) -> NotFound:
    return NotFound("no such member", {"user_id": user_id}, code="member_not_found")


def _refusal_error(refusal: MemberRefusal, user_id: str, new_role: str | None) -> ApiError:
    match refusal:
        case MemberRefusal.SESSION_ENDED:
            return Unauthorized("your role in this organization changed: log in again", code="session_ended")
        case MemberRefusal.MEMBER_NOT_FOUND:
            return _member_not_found(user_id)
        case MemberRefusal.ROLE_NOT_GRANTABLE:
            return _not_grantable(new_role)
        case MemberRefusal.LAST_OWNER:
            return Conflict("an organization must keep at least one owner", code="last_owner")


@operation(
    summary="List the organization's members and their roles",
    response=schemas.MemberList,
    scope=SCOPE,
    tags=TAG,
)
async def list_members(request: Request) -> Response:
    principal = await authorize(request, SCOPE)
    async with services(request).tenant(principal.org_id) as db:
        found = await memberships.list_members(db)
    return json_response({"members": [member_view(m) for m in found]})


@operation(
    summary="Invite a person to the organization with a role: a pending member and an invitation token, shown once",
    description="Pass the token to the person privately. They join with POST /v1/invitations/accept: a new "
    "person sets their password there; a person who already has an account (in another organization) gives "
    "their own password. Until then the member is pending: listed with status \"pending\", unable to log in.",
    status=201,
    request=schemas.MemberCreate,
    response=schemas.MemberCreated,
    scope=SCOPE,
    idempotent=True,
    errors=(409,),
    tags=TAG,
)
@idempotent_write(SCOPE, secret_fields=("invitation.token",))
async def add_member(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    wanted = schemas.parse_body(schemas.MemberCreate, write.body)
    if grant_refusal(principal.role, principal.scopes, None, wanted.role) is not None:
        raise _not_grantable(wanted.role)
    async with svc.unscoped("invite: the person may already exist as a member of another org") as platform:
        existing = await users.find_user_by_email(platform, wanted.email)
        # Asked only of a passwordless account: no other can have its first password set by an invitation.
        unclaimed = (
            existing is not None
            and existing.password_hash is None
            and await invitations.first_password_unclaimed(platform, existing.id)
        )
    has_password = existing is not None and existing.password_hash is not None
    sets_password = invitation_sets_password(existing is not None, has_password, unclaimed)
    async with svc.tenant(principal.org_id) as db:
        try:
            person = existing or await users.create_user(db.conn, wanted.email, None)
            member = await memberships.add_member(db, person.id, wanted.role, accepted=False)
        except users.EmailTaken:  # invited by another org a moment ago
            raise Conflict("the person was just added elsewhere: retry", code="retry") from None
        except memberships.AlreadyMember:
            raise Conflict("this person is already a member", {"user_id": person.id}, code="already_member") from None
        # Only an invitation that made the account (or revives an unclaimed one) may set its password; any other
        # is accepted with the person's own.
        record, token = await invitations.create_invitation(db, person.id, creates_user=sets_password)
        invitation = {"token": token, "expires_at": rfc3339(record.expires_at)}
        change = audit.Change(
            "member.invite",
            "member",
            person.id,
            after={"email": member.email, "role": member.role, "invited": True},
        )
        await audit.record(db, actor_of(write.request, principal), change)
    return json_response({**member_view(member), "invitation": invitation}, 201)


@operation(
    summary="Change a member's role; their sessions in the organization end",
    request=schemas.MemberUpdate,
    response=schemas.MemberOut,
    scope=SCOPE,
    idempotent=True,
    errors=(404, 409),
    tags=TAG,
)
@idempotent_write(SCOPE)
async def change_role(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    wanted = schemas.parse_body(schemas.MemberUpdate, write.body)
    user_id = _user_id(write)
    async with svc.tenant(principal.org_id) as db:
        target_role = await _may_change(db, principal, user_id, wanted.role)
        if target_role == wanted.role:
            member = await memberships.get_member(db, user_id)
        else:
            member = await memberships.change_role(db, user_id, wanted.role)
            await end_sessions(svc.redis, db, await sessions.revoke_member_sessions(db, user_id))
            change = audit.Change(
                "member.role_change", "member", user_id, before={"role": target_role}, after={"role": wanted.role}
            )
            await audit.record(db, actor_of(write.request, principal), change)
    assert member is not None  # locked above
    return json_response(member_view(member))


@operation(
    summary="Remove a member from the organization; their sessions end",
    status=204,
    scope=SCOPE,
    idempotent=True,
    errors=(404, 409),
    tags=TAG,
)
@idempotent_write(SCOPE)
async def remove_member(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    user_id = _user_id(write)
    async with svc.tenant(principal.org_id) as db:
        target_role = await _may_change(db, principal, user_id, None)
        member = await memberships.get_member(db, user_id)
        await end_sessions(svc.redis, db, await sessions.live_member_sessions(db, user_id))
        await memberships.remove_member(db, user_id)  # its sessions and invitations go with it
        before = {"role": target_role, "email": member.email if member else None}
        await audit.record(
            db, actor_of(write.request, principal), audit.Change("member.remove", "member", user_id, before=before)
        )
    return Response(status_code=204)


def _user_id(write: Write) -> str:
    user_id: str = write.request.path_params["user_id"]
    if _USER_ID_RE.fullmatch(user_id) is None:
        raise _member_not_found(user_id)
    return user_id


async def _may_change(db: OrgDb, principal: Principal, user_id: str, new_role: str | None) -> str:
    """The member's role now, once the caller may give them ``new_role`` (None: remove them). The roster stays
    locked to the commit, so owner counts cannot race."""
    roster = await memberships.lock_roles(db)
    change = MemberChange(
        actor_is_person=principal.actor_type == "user",
        actor_id=principal.actor_id,
        actor_role=principal.role,
        actor_scopes=principal.scopes,
        roles=roster.roles,
        accepted=roster.accepted,
        user_id=user_id,
        new_role=new_role,
    )
    refusal = member_change_refusal(change)
    if refusal is not None:
        raise _refusal_error(refusal, user_id, new_role)
    return roster.roles[user_id]


ROUTES: list[BaseRoute] = [
    Route("/v1/members", list_members, methods=["GET"]),
    Route("/v1/members", add_member, methods=["POST"]),
    Route("/v1/members/{user_id}", change_role, methods=["PATCH"]),
    Route("/v1/members/{user_id}", remove_member, methods=["DELETE"]),
]
