"""Memberships: which person belongs to which org, with which role (engine/access/rules.py says what a role may do).

A membership an org makes is pending until the person accepts that org's invitation with their own password
(an org may invite any address, but only its owner joins); only accepted memberships log in or count as owners.
The platform operator (the CLI) makes accepted ones.

Removing a membership removes that person's sessions and invitations in the org too (foreign keys cascade);
the caller marks the sessions revoked in Redis so their access tokens stop at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.access.rules import ROLES
from persistence.db import Connection
from persistence.tenancy import OrgDb

_COLUMNS = "m.user_id, u.email, m.role, m.created_at, m.updated_at, m.accepted_at"
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
    accepted_at: datetime | None  # None while pending

    @property
    def accepted(self) -> bool:
        return self.accepted_at is not None


@dataclass(frozen=True)
class Roster:
    """Every member's role and who of them has accepted, read under lock (``lock_roles``)."""

    roles: dict[str, str]
    accepted: frozenset[str]


@dataclass(frozen=True)
class MembershipOf:
    """One org a person belongs to (found across orgs at login)."""

    org_id: str
    role: str


def _record(row: asyncpg.Record) -> MemberRecord:
    return MemberRecord(
        row["user_id"], row["email"], row["role"], row["created_at"], row["updated_at"], row["accepted_at"]
    )


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")


async def add_member(db: OrgDb, user_id: str, role: str, *, accepted: bool) -> MemberRecord:
    """Make the person a member of db's org: pending (an invitation they accept makes it active) unless
    ``accepted`` (the platform operator's CLI only). AlreadyMember when they are one (the caller's transaction
    stays usable: the insert runs in a savepoint)."""
    _check_role(role)
    try:
        async with db.conn.transaction():
            await db.conn.execute(
                "INSERT INTO memberships (org_id, user_id, role, accepted_at) "
                "VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END)",
                db.org_id,
                user_id,
                role,
                accepted,
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


async def lock_roles(db: OrgDb) -> Roster:
    """Every member's role and who has accepted, locking the org's memberships until the transaction ends, so
    two concurrent changes cannot both see "another owner remains" and leave the org without one, and a login
    (which reads its membership FOR SHARE) either finishes first or sees the change."""
    rows = await db.conn.fetch(
        "SELECT user_id, role, accepted_at IS NOT NULL AS accepted FROM memberships WHERE org_id = $1 "
        "ORDER BY user_id FOR UPDATE",
        db.org_id,
    )
    return Roster(
        {row["user_id"]: row["role"] for row in rows}, frozenset(row["user_id"] for row in rows if row["accepted"])
    )


async def accepted_role(db: OrgDb, user_id: str) -> str | None:
    """The member's role if their membership is accepted, else None; the row stays share-locked until the
    transaction ends, so a concurrent role change or removal waits for it (and then sees what it made)."""
    role: str | None = await db.conn.fetchval(
        "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2 AND accepted_at IS NOT NULL FOR SHARE",
        db.org_id,
        user_id,
    )
    return role


async def accept_membership(db: OrgDb, user_id: str) -> bool:
    """Make the member's pending membership active (accepting twice keeps the first time); False when db's org
    has no such member."""
    row = await db.conn.fetchrow(
        "UPDATE memberships SET accepted_at = coalesce(accepted_at, now()) "
        "WHERE org_id = $1 AND user_id = $2 RETURNING user_id",
        db.org_id,
        user_id,
    )
    return row is not None


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
    """Every org the person has joined (accepted memberships only: a pending one is an org's offer, not yet
    theirs), oldest first. Cross-org: run inside ``unscoped`` (login)."""
    rows = await conn.fetch(
        "SELECT org_id, role FROM memberships WHERE user_id = $1 AND accepted_at IS NOT NULL "
        "ORDER BY created_at, org_id",
        user_id,
    )
    return [MembershipOf(row["org_id"], row["role"]) for row in rows]
