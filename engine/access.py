"""Who may do what: permissions, the roles that bundle them, and the two kinds of API key. Pure data and rules.

A permission is also an API key scope: a key carries a subset of its creator's permissions. The api_keys and
memberships tables refuse any permission or role outside these lists (migration 002 carries the same lists;
tests/integration/test_pg_schema.py checks they agree), so a new one needs a migration as well as an entry here.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    EVENTS_READ = "events:read"
    EVENTS_WRITE = "events:write"
    INVENTORY_READ = "inventory:read"
    INVENTORY_HOLD = "inventory:hold"
    INVENTORY_CONFIRM = "inventory:confirm"
    ORDERS_READ = "orders:read"
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
        {Permission.EVENTS_READ, Permission.INVENTORY_READ, Permission.ORDERS_READ, Permission.REPORTS_READ}
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
