"""Who may do what: permissions, the roles that bundle them, the two kinds of API key, and the rules for changing
an org's members and accepting invitations. Pure data and rules: the shells read the facts and raise the refusals.

A permission is also an API key scope: a key carries a subset of its creator's permissions. The api_keys and
memberships tables refuse any permission or role outside these lists (migration 002 carries the same lists;
tests/integration/test_pg_schema.py checks they agree), so a new one needs a migration as well as an entry here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from engine.refusals import Refusal


class Permission(StrEnum):
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    INVENTORY_READ = "inventory:read"
    INVENTORY_HOLD = "inventory:hold"
    INVENTORY_CONFIRM = "inventory:confirm"
    ORDERS_READ = "orders:read"
    ORDERS_REFUND = "orders:refund"
    LEDGER_READ = "ledger:read"
    PAYOUTS_WRITE = "payouts:write"
    SCANS_WRITE = "scans:write"
    REPORTS_READ = "reports:read"
    KEYS_MANAGE = "keys:manage"
    MEMBERS_MANAGE = "members:manage"
    AUDIT_READ = "audit:read"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    BOX_OFFICE = "box_office"
    SCANNER = "scanner"
    ANALYST = "analyst"


class KeyKind(StrEnum):
    SECRET = "secret"  # server to server: any scope its creator holds
    PUBLISHABLE = "publishable"  # a checkout front-end, readable by anyone: the buying scopes only


SCOPES: tuple[str, ...] = tuple(p.value for p in Permission)
ROLES: tuple[str, ...] = tuple(r.value for r in Role)
KEY_KINDS: tuple[str, ...] = tuple(k.value for k in KeyKind)

_ALL = frozenset(Permission)
_BUY = frozenset({Permission.INVENTORY_READ, Permission.INVENTORY_HOLD, Permission.INVENTORY_CONFIRM})

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _ALL,
    # An admin may do everything an owner may, except make, change or remove owners (see may_assign_role).
    Role.ADMIN: _ALL,
    Role.BOX_OFFICE: _BUY | {Permission.EVENTS_READ, Permission.ORDERS_READ},
    Role.SCANNER: frozenset({Permission.EVENTS_READ, Permission.SCANS_WRITE}),
    Role.ANALYST: frozenset(
        {Permission.EVENTS_READ, Permission.INVENTORY_READ, Permission.ORDERS_READ, Permission.REPORTS_READ,
         Permission.LEDGER_READ}
    ),
}

# What a publishable key may carry: availability (and seat ids, its legend), holds, release, confirm.
PUBLISHABLE_SCOPES: frozenset[Permission] = _BUY

# The key `voelgoed org create` prints may do everything.
OWNER_SCOPES: tuple[str, ...] = SCOPES


def permissions_of(role: str) -> frozenset[str]:
    """The role's permissions; ValueError for an unknown role."""
    return frozenset(p.value for p in ROLE_PERMISSIONS[Role(role)])


def scopes_beyond(granted: Iterable[str], holder: Iterable[str]) -> list[str]:
    """The scopes in ``granted`` that ``holder`` lacks, sorted: a key may not outrank its creator."""
    return sorted(set(granted) - set(holder))


def key_scope_problems(kind: str, scopes: Iterable[str], creator_scopes: Iterable[str]) -> dict[str, list[str]]:
    """Why a new key of ``kind`` with ``scopes`` may not be made by this creator; empty when it may.

    Keys: "unknown" (not a scope at all), "beyond_creator" (the creator lacks them), "not_publishable" (a
    publishable key asked for more than the buying scopes)."""
    wanted = set(scopes)
    problems = {
        "unknown": sorted(wanted - set(SCOPES)),
        "beyond_creator": scopes_beyond(wanted & set(SCOPES), creator_scopes),
        "not_publishable": sorted(wanted - PUBLISHABLE_SCOPES) if KeyKind(kind) is KeyKind.PUBLISHABLE else [],
    }
    return {reason: names for reason, names in problems.items() if names}


def may_assign_role(
    actor_role: str | None, actor_scopes: Iterable[str], target_role: str | None, new_role: str | None
) -> bool:
    """May this actor give a member ``new_role`` (None: remove them) when they now have ``target_role``
    (None: not yet a member)?

    ``actor_role`` is None for an API key (keys act for no person, so they never touch owners). Only an owner
    makes, changes or removes an owner; anyone else needs members:manage and every permission of the role they
    give, so nobody grants more than they hold."""
    scopes = set(actor_scopes)
    if Permission.MEMBERS_MANAGE not in scopes:
        return False
    touches_owner = Role.OWNER in {target_role, new_role}
    if touches_owner and actor_role != Role.OWNER:
        return False
    return new_role is None or permissions_of(new_role) <= scopes


def owners_left(roles: Iterable[str], target_role: str | None, new_role: str | None) -> int:
    """How many owners the org keeps if the member now ``target_role`` becomes ``new_role`` (None: removed).
    An org must always keep one owner."""
    count = sum(1 for role in roles if role == Role.OWNER)
    return count - (target_role == Role.OWNER) + (new_role == Role.OWNER)


# ---- membership changes and invitations --------------------------------------------------------------------


def stale_actor_refusal(
    is_person: bool, token_role: str | None, current_role: str | None, accepted: bool
) -> Refusal | None:
    """A person's token names the role they had at login; a change since then ends their sessions, but a request
    already past authentication could still land. So, read under the memberships' lock, the role must still be
    theirs and their membership accepted. A key acts for no person and has no role to lose."""
    if is_person and (current_role != token_role or not accepted):
        return Refusal.SESSION_ENDED
    return None


def grant_refusal(
    actor_role: str | None, actor_scopes: Iterable[str], target_role: str | None, new_role: str | None
) -> Refusal | None:
    """``may_assign_role`` as a refusal."""
    if not may_assign_role(actor_role, actor_scopes, target_role, new_role):
        return Refusal.ROLE_NOT_GRANTABLE
    return None


def last_owner_refusal(
    target_accepted: bool, target_role: str, accepted_roles: Iterable[str], new_role: str | None
) -> Refusal | None:
    """Whether giving the member ``new_role`` (None: removing them) would leave the org without an owner.

    Only a change to an accepted owner can lose the last one: an org made with `voelgoed org create` has an owner
    key but may have no owner person yet, and its other members must stay manageable meanwhile. Pending owners do
    not count: an invitation nobody accepts must not keep an org "owned"."""
    if not target_accepted or target_role != Role.OWNER:
        return None
    if owners_left(accepted_roles, target_role, new_role) < 1:
        return Refusal.LAST_OWNER
    return None


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A change to one member as plain values: who acts, the org's members as read under lock, and the change."""

    actor_is_person: bool
    actor_id: str
    actor_role: str | None  # the role the actor's token names; None for an API key
    actor_scopes: frozenset[str]
    roles: Mapping[str, str]  # user id -> role, every member
    accepted: frozenset[str]  # the members who have accepted their invitation
    user_id: str
    new_role: str | None  # None: remove the member


def member_change_refusal(change: MemberChange) -> Refusal | None:
    """Why the change may not happen, checked in the order the caller learns of them: their own standing first
    (a stale session learns nothing about members), then the member, then the grant, then the last owner."""
    stale = stale_actor_refusal(
        change.actor_is_person,
        change.actor_role,
        change.roles.get(change.actor_id),
        change.actor_id in change.accepted,
    )
    if stale is not None:
        return stale
    target_role = change.roles.get(change.user_id)
    if target_role is None:
        return Refusal.MEMBER_NOT_FOUND
    refused = grant_refusal(change.actor_role, change.actor_scopes, target_role, change.new_role)
    if refused is not None:
        return refused
    accepted_roles = [role for user_id, role in change.roles.items() if user_id in change.accepted]
    return last_owner_refusal(change.user_id in change.accepted, target_role, accepted_roles, change.new_role)


def invitation_refusal(secret_matches: bool, used: bool, expired: bool) -> Refusal | None:
    """Whether an invitation may be accepted now: a wrong secret reads as no invitation at all (nothing about it
    is revealed), and an invitation is used at most once, before it expires."""
    if not secret_matches:
        return Refusal.INVITATION_NOT_FOUND
    if used:
        return Refusal.INVITATION_USED
    if expired:
        return Refusal.INVITATION_EXPIRED
    return None


def first_password_unclaimed(anyone_joined_with_it: bool, first_password_invitation_open: bool) -> bool:
    """Whether a passwordless account's first password is still free to be set by a new invitation: nobody has
    joined an org with the account and no other invitation that may set it is still open. (An org that removes a
    pending member, or lets the invitation expire, must be able to invite them again; while another org's
    invitation may still set the password, or an org already counts the account as a member, a second one must
    not.)"""
    return not anyone_joined_with_it and not first_password_invitation_open


def invitation_sets_password(account_exists: bool, has_password: bool, unclaimed: bool) -> bool:
    """Whether a new invitation may set the person's first password. Whoever invites sees the token, so only the
    invitation that makes the account, or revives a passwordless one whose first password is ``unclaimed``, may
    set it; any other is accepted with the person's own password."""
    return not account_exists or (not has_password and unclaimed)


def invitation_password_refusal(has_password: bool, invitation_creates_user: bool) -> Refusal | None:
    """Whether the person may accept this invitation with a password at all. Whoever invited them saw the token,
    so a token never sets the password of an account another invitation owns: a passwordless person first
    accepts the invitation that created their account (it sets the first password), then any other with that
    password. A person with a password accepts every invitation with it."""
    if not has_password and not invitation_creates_user:
        return Refusal.PASSWORD_NOT_SET
    return None


# ---- API key lifetimes ---------------------------------------------------------------------------------------

key_lifetime_days_max = 730


def key_expiry_problem(expires_at: datetime | None, now: datetime) -> str | None:
    """Why ``expires_at`` cannot be a new key's expiry, or None when it can (None: the key never expires)."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        return "must carry a time zone"
    if expires_at <= now:
        return "must be in the future"
    if expires_at > now + timedelta(days=key_lifetime_days_max):
        return f"must be at most {key_lifetime_days_max} days ahead"
    return None


def key_expiry_under_creator(
    wanted: datetime | None, creator_expires_at: datetime | None
) -> tuple[datetime | None, bool]:
    """The new key's expiry and whether ``wanted`` is allowed: never after the creating key's (a key expiring
    tomorrow must not mint one that never does), so none given means the creator's; a person's session bounds
    nothing (``creator_expires_at`` None: keys belong to the org)."""
    if creator_expires_at is None:
        return wanted, True
    if wanted is None:
        return creator_expires_at, True
    return wanted, wanted <= creator_expires_at
