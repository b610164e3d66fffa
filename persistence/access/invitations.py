"""Invitations: how a person joins an org. "vi_<invitation id hex>_<secret>", shown once to whoever invited
them; only sha256(secret) is stored. Usable once, until ``invitation_ttl_s`` after issue. Accepting one makes the
person's pending membership active; only the invitation that created the account (``creates_user``) may set its
first password, every other one is accepted with the person's existing password (services/access/sessions.py).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.access import rules as access
from engine.refusals import Refusal
from persistence.access.secret_hashes import hash_secret, secret_matches
from persistence.db import Connection
from persistence.tenancy import OrgDb

INVITATION_PREFIX = "inv_"
TOKEN_PREFIX = "vi_"
invitation_ttl_s = 7 * 24 * 3_600
invitation_secret_bytes = 32
_TOKEN_RE = re.compile(r"vi_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
_COLUMNS = "id, org_id, user_id, creates_user, created_at, expires_at, accepted_at"


@dataclass(frozen=True)
class InvitationRecord:
    id: str
    org_id: str
    user_id: str
    creates_user: bool  # the invitation that created the account: the only one that may set its first password
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None


@dataclass(frozen=True)
class Acceptance:
    """What accepting answers: no refusal (accepted, or it would be) or the invitation's refusal; the invitation
    itself unless it is unknown (a wrong secret learns nothing about it)."""

    refusal: Refusal | None
    invitation: InvitationRecord | None = None


def parse_invitation_token(token: str) -> tuple[str, str] | None:
    """(invitation id, secret), or None when the string is not shaped like an invitation token."""
    match = _TOKEN_RE.fullmatch(token)
    return (INVITATION_PREFIX + match.group(1), match.group(2)) if match else None


def _record(row: asyncpg.Record) -> InvitationRecord:
    return InvitationRecord(
        row["id"],
        row["org_id"],
        row["user_id"],
        row["creates_user"],
        row["created_at"],
        row["expires_at"],
        row["accepted_at"],
    )


async def create_invitation(
    db: OrgDb, user_id: str, *, creates_user: bool, ttl_s: int = invitation_ttl_s
) -> tuple[InvitationRecord, str]:
    """An invitation for a member of db's org: its record and token (shown once, never stored).
    ``creates_user`` only when this invitation's org created the account just now."""
    invitation_id = INVITATION_PREFIX + secrets.token_hex(16)
    secret = secrets.token_urlsafe(invitation_secret_bytes)
    row = await db.conn.fetchrow(
        "INSERT INTO invitations (id, org_id, user_id, secret_hash, creates_user, expires_at) "
        f"VALUES ($1, $2, $3, $4, $5, now() + $6::interval) RETURNING {_COLUMNS}",
        invitation_id,
        db.org_id,
        user_id,
        hash_secret(secret),
        creates_user,
        timedelta(seconds=ttl_s),
    )
    token = f"{TOKEN_PREFIX}{invitation_id[len(INVITATION_PREFIX) :]}_{secret}"
    return _record(row), token


async def first_password_unclaimed(conn: Connection, user_id: str) -> bool:
    """Whether a new invitation for this passwordless account may set its first password
    (engine/access/rules.py ``first_password_unclaimed``). Cross-org: run inside ``unscoped``."""
    row = await conn.fetchrow(
        "SELECT EXISTS (SELECT FROM memberships WHERE user_id = $1 AND accepted_at IS NOT NULL) AS joined, "
        "EXISTS (SELECT FROM invitations WHERE user_id = $1 AND creates_user "
        "AND accepted_at IS NULL AND expires_at > now()) AS first_open",
        user_id,
    )
    return access.first_password_unclaimed(row["joined"], row["first_open"])


async def check(conn: Connection, invitation_id: str, secret: str) -> Acceptance:
    """What accepting would answer now, changing nothing (no refusal: it would be accepted), so the caller can
    refuse a bad token before spending a password check on it. Cross-org (a token names no org): run inside
    ``unscoped``; then accept in the invitation's org, which checks again under lock."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, secret_hash, now() >= expires_at AS expired FROM invitations WHERE id = $1",
        invitation_id,
    )
    return _judge(row, secret)


def _judge(row: asyncpg.Record | None, secret: str) -> Acceptance:
    if row is None:
        return Acceptance(Refusal.INVITATION_NOT_FOUND)
    refusal = access.invitation_refusal(
        secret_matches(secret, bytes(row["secret_hash"])), used=row["accepted_at"] is not None, expired=row["expired"]
    )
    if refusal is Refusal.INVITATION_NOT_FOUND:
        return Acceptance(refusal)  # a wrong secret learns nothing about the invitation
    return Acceptance(refusal, _record(row))


async def accept(db: OrgDb, invitation_id: str, secret: str) -> Acceptance:
    """Use the invitation (once: the row is locked and marked accepted). The caller makes the membership active
    (and sets a first password, when the invitation may) in the same transaction."""
    row = await db.conn.fetchrow(
        f"SELECT {_COLUMNS}, secret_hash, now() >= expires_at AS expired FROM invitations "
        "WHERE org_id = $1 AND id = $2 FOR UPDATE",
        db.org_id,
        invitation_id,
    )
    judged = _judge(row, secret)
    if judged.refusal is not None:
        return judged
    updated = await db.conn.fetchrow(
        f"UPDATE invitations SET accepted_at = now() WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        db.org_id,
        invitation_id,
    )
    return Acceptance(None, _record(updated))
