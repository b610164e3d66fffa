"""API keys: "vk_<prefix>_<secret>". The prefix finds the row; only sha256(secret) is stored.

How the secret is hashed and compared: persistence/access/secret_hashes.py.

Creating, listing and revoking are the org's business (``OrgDb``). Finding a key by its prefix is cross-org by
nature (the presented key decides the org), as is recording when keys were last used: those take a plain
connection and must run inside ``persistence.tenancy.unscoped``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine import limits
from engine.access.rules import KEY_KINDS, SCOPES, KeyKind, key_expiry_problem, key_scope_problems
from persistence.access.secret_hashes import hash_secret
from persistence.db import Connection
from persistence.tenancy import OrgDb

KEY_PREFIX = "vk_"
KEY_ID_PREFIX = "key_"
key_prefix_bytes = 6  # 12 hex characters
key_secret_bytes = 32  # 43 url-safe characters
# A key that outlives its purpose is a liability: an expiry, when given, is at most this far ahead.
created_by_chars_max = 200
_KEY_RE = re.compile(r"vk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_KEY_ID_RE = re.compile(re.escape(KEY_ID_PREFIX) + r"[0-9a-f]{32}")
# Who made a key: a person, another key, or the platform itself (the CLI, `voelgoed up`).
_CREATED_BY_RE = re.compile(r"(user|key|system):[\x21-\x7e]+")

_COLUMNS = (
    "id, org_id, name, prefix, secret_hash, scopes, kind, expires_at, created_by, created_at, revoked_at, last_used_at"
)


class KeyRejected(ValueError):
    """A new key the store refuses; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    org_id: str
    name: str
    prefix: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    kind: str
    expires_at: datetime | None
    created_by: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Revocation:
    record: ApiKeyRecord  # as it is after the revocation
    newly: bool  # False when it was revoked already (the first time is kept)


def new_api_key() -> tuple[str, str, bytes]:
    """(prefix, plaintext key, sha256 of its secret). The plaintext is shown once and never stored."""
    prefix = secrets.token_hex(key_prefix_bytes)
    secret = secrets.token_urlsafe(key_secret_bytes)
    return prefix, f"{KEY_PREFIX}{prefix}_{secret}", hash_secret(secret)


def parse_api_key(plaintext: str) -> tuple[str, str] | None:
    """(prefix, secret), or None when the string is not shaped like a key."""
    match = _KEY_RE.fullmatch(plaintext)
    return (match.group(1), match.group(2)) if match else None


def is_key_id(key_id: str) -> bool:
    return _KEY_ID_RE.fullmatch(key_id) is not None


def audit_view(record: ApiKeyRecord) -> dict[str, Any]:
    """What the audit log keeps of a key: never its secret or hash."""
    return {
        "name": record.name,
        "kind": record.kind,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "created_by": record.created_by,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }


def _record(row: Mapping[str, Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        prefix=row["prefix"],
        secret_hash=bytes(row["secret_hash"]),
        scopes=tuple(row["scopes"]),
        kind=row["kind"],
        expires_at=row["expires_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def _check_new_key(
    name: str, scopes: Sequence[str], kind: str, expires_at: datetime | None, created_by: str, now: datetime
) -> None:
    """The store's own checks (the routes and the CLI check first, with their own messages). Creator scopes are
    the caller's business: here every known scope is allowed."""
    if not 1 <= len(name) <= limits.name_chars_max:
        raise KeyRejected("name", f"must be 1..{limits.name_chars_max} characters")
    if kind not in KEY_KINDS:
        raise KeyRejected("kind", f"must be one of {', '.join(KEY_KINDS)}")
    if not scopes:
        raise KeyRejected("scopes", "a key needs at least one scope")
    problems = key_scope_problems(kind, scopes, SCOPES)
    if problems:
        raise KeyRejected("scopes", "; ".join(f"{reason}: {names}" for reason, names in problems.items()))
    problem = key_expiry_problem(expires_at, now)
    if problem is not None:
        raise KeyRejected("expires_at", problem)
    if len(created_by) > created_by_chars_max or _CREATED_BY_RE.fullmatch(created_by) is None:
        raise KeyRejected("created_by", 'must be "user:<id>", "key:<id>" or "system:<what>"')


async def create_api_key(
    db: OrgDb,
    name: str,
    scopes: Sequence[str],
    *,
    created_by: str,
    kind: str = KeyKind.SECRET,
    expires_at: datetime | None = None,
) -> tuple[ApiKeyRecord, str]:
    """A new key for the org: its record and the plaintext (return it to the caller once, never log it)."""
    now = await db.conn.fetchval("SELECT now()")
    _check_new_key(name, scopes, str(kind), expires_at, created_by, now)
    prefix, plaintext, secret_hash = new_api_key()
    row = await db.conn.fetchrow(
        "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, scopes, kind, expires_at, created_by) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {_COLUMNS}",
        KEY_ID_PREFIX + secrets.token_hex(16),
        db.org_id,
        name,
        prefix,
        secret_hash,
        list(dict.fromkeys(scopes)),
        str(kind),
        expires_at,
        created_by,
    )
    return _record(row), plaintext


async def find_api_key(conn: Connection, prefix: str) -> ApiKeyRecord | None:
    """The key with this prefix, of any org, revoked or not: the key decides the org.

    Cross-org: run it inside ``unscoped(conn, reason=...)`` (under the app role without it, row-level security
    shows no key at all)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = $1", prefix)
    return _record(row) if row else None


async def list_api_keys(db: OrgDb) -> list[ApiKeyRecord]:
    rows = await db.conn.fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id", db.org_id)
    return [_record(row) for row in rows]


async def get_api_key(db: OrgDb, key_id: str) -> ApiKeyRecord | None:
    row = await db.conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE org_id = $1 AND id = $2", db.org_id, key_id)
    return _record(row) if row else None


async def revoke_api_key(db: OrgDb, key_id: str) -> Revocation | None:
    """Revoke the org's key; None when the org has no such key. Revoking twice keeps the first time."""
    if not is_key_id(key_id):
        return None
    before = await db.conn.fetchrow(
        "SELECT revoked_at FROM api_keys WHERE org_id = $1 AND id = $2 FOR UPDATE", db.org_id, key_id
    )
    if before is None:
        return None
    row = await db.conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
        f"WHERE org_id = $1 AND id = $2 RETURNING {_COLUMNS}",
        db.org_id,
        key_id,
    )
    return Revocation(_record(row), newly=before["revoked_at"] is None)


async def record_last_used(conn: Connection, used: Mapping[str, datetime]) -> int:
    """Set last_used_at of each key id (of any org) to its time, never moving it back; the number of rows touched.

    Cross-org (the authenticator batches keys of every org): run it inside ``unscoped(conn, reason=...)``."""
    if not used:
        return 0
    ids = list(used)
    result: str = await conn.execute(
        "UPDATE api_keys k SET last_used_at = u.at FROM unnest($1::text[], $2::timestamptz[]) AS u (id, at) "
        "WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)",
        ids,
        [used[key_id] for key_id in ids],
    )
    return int(result.rsplit(" ", 1)[-1])
