"""Memberships: which person belongs to which org, with which role (engine/access.py says what a role may do).

Removing a membership removes that person's sessions and invitations in the org too (foreign keys cascade);
the caller marks the sessions revoked in Redis so their access tokens stop at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.access import ROLES
from persistence.db import Connection
from persistence.tenancy import OrgDb

_COLUMNS = "m.user_id, u.email, m.role, m.created_at, m.updated_at"
_FROM = "FROM memberships m JOIN users u ON u.id = m.user_id"


class AlreadyMember(ValueError):
    """The person already belongs to the org."""


@dataclass(frozen=True)
class MemberRecord:
    user_id: str
    email: str
    role: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class MembershipOf:
    """One org a person belongs to (found across orgs at login)."""

    org_id: str
    role: str


def _record(row: asyncpg.Record) -> MemberRecord:
    return MemberRecord(row["user_id"], row["email"], row["role"], row["created_at"], row["updated_at"])


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")


async def add_member(db: OrgDb, user_id: str, role: str) -> MemberRecord:
    """Make the person a member of db's org; AlreadyMember when they are one (the caller's transaction stays
    usable: the insert runs in a savepoint)."""
    _check_role(role)
    try:
        async with db.conn.transaction():
            await db.conn.execute(
                "INSERT INTO memberships (org_id, user_id, role) VALUES ($1, $2, $3)", db.org_id, user_id, role
            )
    except asyncpg.UniqueViolationError:
        raise AlreadyMember(f"{user_id} is already a member") from None
    found = await get_member(db, user_id)
    assert found is not None  # just inserted, in this transaction
    return found


async def get_member(db: OrgDb, user_id: str) -> MemberRecord | None:
    row = await db.conn.fetchrow(
        f"SELECT {_COLUMNS} {_FROM} WHERE m.org_id = $1 AND m.user_id = $2", db.org_id, user_id
    )
    return _record(row) if row else None


async def list_members(db: OrgDb) -> list[MemberRecord]:
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} {_FROM} WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id", db.org_id
    )
    return [_record(row) for row in rows]


async def lock_roles(db: OrgDb) -> dict[str, str]:
    """Every member's role, locking the org's memberships until the transaction ends, so two concurrent
    changes cannot both see "another owner remains" and leave the org without one."""
    rows = await db.conn.fetch(
        "SELECT user_id, role FROM memberships WHERE org_id = $1 ORDER BY user_id FOR UPDATE", db.org_id
    )
    return {row["user_id"]: row["role"] for row in rows}


async def change_role(db: OrgDb, user_id: str, role: str) -> MemberRecord | None:
    """Give the member ``role``; None when db's org has no such member."""
    _check_role(role)
    row = await db.conn.fetchrow(
        "UPDATE memberships SET role = $3, updated_at = now() WHERE org_id = $1 AND user_id = $2 RETURNING user_id",
        db.org_id,
        user_id,
        role,
    )
    return await get_member(db, user_id) if row else None


async def remove_member(db: OrgDb, user_id: str) -> bool:
    """Remove the member (their sessions and invitations in the org go too); False when there is none."""
    row = await db.conn.fetchrow(
        "DELETE FROM memberships WHERE org_id = $1 AND user_id = $2 RETURNING user_id", db.org_id, user_id
    )
    return row is not None


async def memberships_of_user(conn: Connection, user_id: str) -> list[MembershipOf]:
    """Every org the person belongs to, oldest first. Cross-org: run inside ``unscoped`` (login)."""
    rows = await conn.fetch(
        "SELECT org_id, role FROM memberships WHERE user_id = $1 ORDER BY created_at, org_id", user_id
    )
    return [MembershipOf(row["org_id"], row["role"]) for row in rows]
