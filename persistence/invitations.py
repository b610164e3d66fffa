"""Invitations: how a person added without a password sets one. "vi_<invitation id hex>_<secret>", shown once
to whoever invited them; only sha256(secret) is stored. Usable once, until ``invitation_ttl_s`` after issue.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from persistence.db import Connection
from persistence.tenancy import OrgDb

INVITATION_PREFIX = "inv_"
TOKEN_PREFIX = "vi_"
invitation_ttl_s = 7 * 24 * 3_600
invitation_secret_bytes = 32
_TOKEN_RE = re.compile(r"vi_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
_COLUMNS = "id, org_id, user_id, created_at, expires_at, accepted_at"


@dataclass(frozen=True)
class InvitationRecord:
    id: str
    org_id: str
    user_id: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None


class AcceptOutcome(enum.Enum):
    ACCEPTED = "accepted"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # no such invitation, or the secret does not match


@dataclass(frozen=True)
class Acceptance:
    outcome: AcceptOutcome
    invitation: InvitationRecord | None = None


def _hash(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_invitation_token(token: str) -> tuple[str, str] | None:
    """(invitation id, secret), or None when the string is not shaped like an invitation token."""
    match = _TOKEN_RE.fullmatch(token)
    return (INVITATION_PREFIX + match.group(1), match.group(2)) if match else None


def _record(row: asyncpg.Record) -> InvitationRecord:
    return InvitationRecord(
        row["id"], row["org_id"], row["user_id"], row["created_at"], row["expires_at"], row["accepted_at"]
    )


async def create_invitation(db: OrgDb, user_id: str, *, ttl_s: int = invitation_ttl_s) -> tuple[InvitationRecord, str]:
    """An invitation for a member of db's org: its record and token (shown once, never stored)."""
    invitation_id = INVITATION_PREFIX + secrets.token_hex(16)
    secret = secrets.token_urlsafe(invitation_secret_bytes)
    row = await db.conn.fetchrow(
        "INSERT INTO invitations (id, org_id, user_id, secret_hash, expires_at) "
        f"VALUES ($1, $2, $3, $4, now() + $5::interval) RETURNING {_COLUMNS}",
        invitation_id,
        db.org_id,
        user_id,
        _hash(secret),
        timedelta(seconds=ttl_s),
    )
    token = f"{TOKEN_PREFIX}{invitation_id[len(INVITATION_PREFIX) :]}_{secret}"
    return _record(row), token


async def org_of_invitation(conn: Connection, invitation_id: str) -> str | None:
    """The org an invitation belongs to. Cross-org (a token names no org): run inside ``unscoped``."""
    org_id: str | None = await conn.fetchval("SELECT org_id FROM invitations WHERE id = $1", invitation_id)
    return org_id


async def accept(db: OrgDb, invitation_id: str, secret: str) -> Acceptance:
    """Use the invitation (once: the row is locked and marked accepted). The caller sets the password in the
    same transaction."""
    row = await db.conn.fetchrow(
        f"SELECT {_COLUMNS}, secret_hash, now() >= expires_at AS expired FROM invitations "
        "WHERE org_id = $1 AND id = $2 FOR UPDATE",
        db.org_id,
        invitation_id,
    )
    if row is None or not hmac.compare_digest(_hash(secret), bytes(row["secret_hash"])):
        return Acceptance(AcceptOutcome.UNKNOWN)
    if row["accepted_at"] is not None:
        return Acceptance(AcceptOutcome.ALREADY_USED, _record(row))
    if row["expired"]:
        return Acceptance(AcceptOutcome.EXPIRED, _record(row))
    updated = await db.conn.fetchrow(
        f"UPDATE invitations SET accepted_at = now() WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        db.org_id,
        invitation_id,
    )
    return Acceptance(AcceptOutcome.ACCEPTED, _record(updated))
