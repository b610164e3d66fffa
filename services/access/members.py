"""Member use cases: list the people of an org and their roles, invite one, change a member's role, remove one.

Nobody grants more than they hold, only an owner makes, changes or removes an owner, and an org always keeps
one owner (engine/access/rules.py ``member_change_refusal``, over the roster read under lock). Changing a member's role
or removing them ends their sessions in the org at once, so the old role's tokens stop working.

Inviting a person makes a pending membership and an invitation, always: the person joins by accepting it (a new
person sets their password with it, anyone else gives their own), so no org can join an account to itself
without its owner's consent. Pending members cannot log in and do not count as owners.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.access.rules import MemberChange, grant_refusal, invitation_sets_password, member_change_refusal
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.access import invitations, memberships, sessions, users
from persistence.tenancy import OrgDb
from services.access.sessions import SessionMarks
from services.unit_of_work import Platform, Tenants, UnitsOfWork

_MESSAGES: dict[Refusal, str] = {
    Refusal.SESSION_ENDED: "your role in this organization changed: log in again",
    Refusal.LAST_OWNER: "an organization must keep at least one owner",
}


@dataclass(frozen=True)
class Manager:
    """Who changes an org's members: as the audit log names them, with the role their token names (a person's;
    None for an API key) and the scopes their credential carries."""

    actor: audit.Actor
    role: str | None
    scopes: frozenset[str]


@dataclass(frozen=True)
class Invited:
    member: memberships.MemberRecord
    invitation: invitations.InvitationRecord
    token: str  # shown once, kept nowhere


def _not_grantable(refusal: Refusal, new_role: str | None) -> Refused:
    what = "remove this member" if new_role is None else f"give the role {new_role!r} to this member"
    return Refused(
        refusal,
        f"you may not {what}: only an owner touches owners, and nobody grants more than they hold",
        {"role": new_role},
    )


def _member_not_found(user_id: str) -> Refused:
    return Refused(Refusal.MEMBER_NOT_FOUND, "no such member", {"user_id": user_id})


def _refused(refusal: Refusal, user_id: str, new_role: str | None) -> Refused:
    if refusal is Refusal.MEMBER_NOT_FOUND:
        return _member_not_found(user_id)
    if refusal is Refusal.ROLE_NOT_GRANTABLE:
        return _not_grantable(refusal, new_role)
    return Refused(refusal, _MESSAGES[refusal])


async def list_members(tenants: Tenants, org_id: str) -> list[memberships.MemberRecord]:
    async with tenants.tenant(org_id) as db:
        return await memberships.list_members(db)


async def invite_member(
    platform: Platform, units: UnitsOfWork, org_id: str, manager: Manager, *, email: str, role: str
) -> Invited:
    """A pending member with ``role`` and their invitation. Only an invitation that makes the account (or revives
    an unclaimed passwordless one) may set its password; any other is accepted with the person's own."""
    refusal = grant_refusal(manager.role, manager.scopes, None, role)
    if refusal is not None:
        raise _not_grantable(refusal, role)
    async with platform.unscoped("invite: the person may already exist as a member of another org") as raw:
        existing = await users.find_user_by_email(raw, email)
        # Asked only of a passwordless account: no other can have its first password set by an invitation.
        unclaimed = (
            existing is not None
            and existing.password_hash is None
            and await invitations.first_password_unclaimed(raw, existing.id)
        )
    has_password = existing is not None and existing.password_hash is not None
    sets_password = invitation_sets_password(existing is not None, has_password, unclaimed)
    async with units.begin(org_id, manager.actor) as uow:
        try:
            person = existing or await users.create_user(uow.db.conn, email, None)
            member = await memberships.add_member(uow.db, person.id, role, accepted=False)
        except users.EmailTaken:  # invited by another org a moment ago
            raise Refused(Refusal.CONCURRENT_CHANGE, "the person was just added elsewhere: retry") from None
        except memberships.AlreadyMember:
            raise Refused(Refusal.ALREADY_MEMBER, "this person is already a member", {"user_id": person.id}) from None
        invitation, token = await invitations.create_invitation(uow.db, person.id, creates_user=sets_password)
        after = {"email": member.email, "role": member.role, "invited": True}
        uow.record(audit.Change("member.invite", "member", person.id, after=after))
    return Invited(member, invitation, token)


async def change_role(
    units: UnitsOfWork, marks: SessionMarks, org_id: str, manager: Manager, user_id: str, role: str
) -> memberships.MemberRecord:
    """The member with ``role``; a change (none when it is their role already) ends their sessions."""
    if not users.is_user_id(user_id):
        raise _member_not_found(user_id)
    async with units.begin(org_id, manager.actor) as uow:
        target_role = await _may_change(uow.db, manager, user_id, role)
        if target_role == role:
            member = await memberships.get_member(uow.db, user_id)
        else:
            member = await memberships.change_role(uow.db, user_id, role)
            await marks.end(org_id, await sessions.revoke_member_sessions(uow.db, user_id))
            before, after = {"role": target_role}, {"role": role}
            uow.record(audit.Change("member.role_change", "member", user_id, before=before, after=after))
    assert member is not None  # locked above
    return member


async def remove_member(units: UnitsOfWork, marks: SessionMarks, org_id: str, manager: Manager, user_id: str) -> None:
    """Remove the member, their sessions (ended at once) and their invitations."""
    if not users.is_user_id(user_id):
        raise _member_not_found(user_id)
    async with units.begin(org_id, manager.actor) as uow:
        target_role = await _may_change(uow.db, manager, user_id, None)
        member = await memberships.get_member(uow.db, user_id)
        await marks.end(org_id, await sessions.live_member_sessions(uow.db, user_id))
        await memberships.remove_member(uow.db, user_id)  # its sessions and invitations go with it
        before = {"role": target_role, "email": member.email if member else None}
        uow.record(audit.Change("member.remove", "member", user_id, before=before))


async def _may_change(db: OrgDb, manager: Manager, user_id: str, new_role: str | None) -> str:
    """The member's role now, once the manager may give them ``new_role`` (None: remove them). The roster stays
    locked to the commit, so owner counts cannot race."""
    roster = await memberships.lock_roles(db)
    change = MemberChange(
        actor_is_person=manager.actor.type == "user",
        actor_id=manager.actor.id,
        actor_role=manager.role,
        actor_scopes=manager.scopes,
        roles=roster.roles,
        accepted=roster.accepted,
        user_id=user_id,
        new_role=new_role,
    )
    refusal = member_change_refusal(change)
    if refusal is not None:
        raise _refused(refusal, user_id, new_role)
    return roster.roles[user_id]
