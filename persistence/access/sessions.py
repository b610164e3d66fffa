"""People's sessions: one row per login, holding the hash of its current refresh token.

A refresh token is "vr_<session id hex>_<secret>"; only sha256(secret) is stored (256 random bits need no
stretching). Every refresh replaces the secret, so each refresh token works once. Presenting the secret the last
refresh replaced means an old token was replayed: someone else may hold a copy (the thief, or the person after the
thief refreshed), so the whole session is revoked and both must log in again. Any other wrong secret is refused
and changes nothing: the session id is no secret (it is in the access token and the audit log), so a made-up
secret must not be able to end someone's session.
A session lives at most ``refresh_ttl_s`` from login, however often it is refreshed.
"""

from __future__ import annotations

import enum
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from persistence.access.secret_hashes import hash_secret
from persistence.db import Connection
from persistence.tenancy import OrgDb

SESSION_PREFIX = "ses_"
REFRESH_PREFIX = "vr_"
refresh_ttl_s = 30 * 24 * 3_600
refresh_secret_bytes = 32  # 43 url-safe characters
_REFRESH_RE = re.compile(r"vr_([0-9a-f]{32})_([A-Za-z0-9_-]{43})")
_COLUMNS = "id, org_id, user_id, created_at, refreshed_at, expires_at, revoked_at"


@dataclass(frozen=True)
class SessionRecord:
    id: str
    org_id: str
    user_id: str
    created_at: datetime
    refreshed_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


class RefreshOutcome(enum.Enum):
    ROTATED = "rotated"
    REUSED = "reused"  # the previous secret: the session is now revoked
    WRONG_SECRET = "wrong_secret"  # neither the current nor the previous secret: refused, nothing changed
    REVOKED = "revoked"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Refresh:
    outcome: RefreshOutcome
    session: SessionRecord | None = None
    refresh_token: str | None = None  # the new one, when ROTATED


def _new_secret() -> str:
    return secrets.token_urlsafe(refresh_secret_bytes)


def refresh_token_of(session_id: str, secret: str) -> str:
    return f"{REFRESH_PREFIX}{session_id[len(SESSION_PREFIX) :]}_{secret}"


def parse_refresh_token(token: str) -> tuple[str, str] | None:
    """(session id, secret), or None when the string is not shaped like a refresh token."""
    match = _REFRESH_RE.fullmatch(token)
    return (SESSION_PREFIX + match.group(1), match.group(2)) if match else None


def _record(row: asyncpg.Record) -> SessionRecord:
    return SessionRecord(
        row["id"],
        row["org_id"],
        row["user_id"],
        row["created_at"],
        row["refreshed_at"],
        row["expires_at"],
        row["revoked_at"],
    )


async def create_session(db: OrgDb, user_id: str, *, ttl_s: int = refresh_ttl_s) -> tuple[SessionRecord, str]:
    """A new session of the member in db's org: its record and refresh token (shown once, never stored)."""
    session_id = SESSION_PREFIX + secrets.token_hex(16)
    secret = _new_secret()
    row = await db.conn.fetchrow(
        "INSERT INTO sessions (id, org_id, user_id, refresh_hash, expires_at) "
        f"VALUES ($1, $2, $3, $4, now() + $5::interval) RETURNING {_COLUMNS}",
        session_id,
        db.org_id,
        user_id,
        hash_secret(secret),
        timedelta(seconds=ttl_s),
    )
    return _record(row), refresh_token_of(session_id, secret)


async def org_of_session(conn: Connection, session_id: str) -> str | None:
    """The org a session belongs to. Cross-org (a refresh token names no org): run inside ``unscoped``."""
    org_id: str | None = await conn.fetchval("SELECT org_id FROM sessions WHERE id = $1", session_id)
    return org_id


async def get_session(db: OrgDb, session_id: str) -> SessionRecord | None:
    row = await db.conn.fetchrow(
        f"SELECT {_COLUMNS} FROM sessions WHERE org_id = $1 AND id = $2", db.org_id, session_id
    )
    return _record(row) if row else None


async def rotate(db: OrgDb, session_id: str, secret: str) -> Refresh:
    """Exchange a refresh token's secret for a new one (locking the row, so two refreshes with the same token
    cannot both win). The previous secret revokes the session: commit the transaction even then."""
    row = await db.conn.fetchrow(
        f"SELECT {_COLUMNS}, refresh_hash, previous_refresh_hash, now() >= expires_at AS expired FROM sessions "
        "WHERE org_id = $1 AND id = $2 FOR UPDATE",
        db.org_id,
        session_id,
    )
    if row is None:
        return Refresh(RefreshOutcome.UNKNOWN)
    if row["revoked_at"] is not None:
        return Refresh(RefreshOutcome.REVOKED, _record(row))
    if row["expired"]:
        return Refresh(RefreshOutcome.EXPIRED, _record(row))
    presented = hash_secret(secret)
    if not hmac.compare_digest(presented, bytes(row["refresh_hash"])):
        previous = row["previous_refresh_hash"]
        if previous is None or not hmac.compare_digest(presented, bytes(previous)):
            return Refresh(RefreshOutcome.WRONG_SECRET, _record(row))
        revoked = await _revoke(db, session_id)
        return Refresh(RefreshOutcome.REUSED, revoked or _record(row))
    new_secret = _new_secret()
    updated = await db.conn.fetchrow(
        "UPDATE sessions SET previous_refresh_hash = refresh_hash, refresh_hash = $3, refreshed_at = now() "
        f"WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        db.org_id,
        session_id,
        hash_secret(new_secret),
    )
    return Refresh(RefreshOutcome.ROTATED, _record(updated), refresh_token_of(session_id, new_secret))


async def _revoke(db: OrgDb, session_id: str) -> SessionRecord | None:
    row = await db.conn.fetchrow(
        "UPDATE sessions SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        db.org_id,
        session_id,
    )
    return _record(row) if row else None


async def revoke_session(db: OrgDb, session_id: str) -> bool:
    """Revoke one session of db's org (revoking twice keeps the first time); False when there is none."""
    return await _revoke(db, session_id) is not None


async def revoke_member_sessions(db: OrgDb, user_id: str) -> list[str]:
    """Revoke every live session of the member in db's org; the ids revoked now (mark them in Redis)."""
    rows = await db.conn.fetch(
        "UPDATE sessions SET revoked_at = now() "
        "WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now() RETURNING id",
        db.org_id,
        user_id,
    )
    return [row["id"] for row in rows]


async def live_member_sessions(db: OrgDb, user_id: str) -> list[str]:
    """The member's unrevoked, unexpired sessions in db's org (before a removal deletes them)."""
    rows = await db.conn.fetch(
        "SELECT id FROM sessions WHERE org_id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()",
        db.org_id,
        user_id,
    )
    return [row["id"] for row in rows]
