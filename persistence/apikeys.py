"""API keys: "vk_<prefix>_<secret>". The prefix finds the row; only sha256(secret) is stored.

A secret from secrets.token_urlsafe has 256 bits of entropy, so a fast hash is enough (no password
stretching): the stored hash cannot be reversed, and comparing hashes in constant time leaks nothing useful.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine import limits
from engine.access import SCOPES
from persistence.db import Connection

KEY_PREFIX = "vk_"
KEY_ID_PREFIX = "key_"
key_prefix_bytes = 6  # 12 hex characters
key_secret_bytes = 32  # 43 url-safe characters
_KEY_RE = re.compile(r"vk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")

_COLUMNS = "id, org_id, name, prefix, secret_hash, scopes, created_at, revoked_at"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    org_id: str
    name: str
    prefix: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_api_key() -> tuple[str, str, bytes]:
    """(prefix, plaintext key, sha256 of its secret). The plaintext is shown once and never stored."""
    prefix = secrets.token_hex(key_prefix_bytes)
    secret = secrets.token_urlsafe(key_secret_bytes)
    return prefix, f"{KEY_PREFIX}{prefix}_{secret}", hash_secret(secret)


def parse_api_key(plaintext: str) -> tuple[str, str] | None:
    """(prefix, secret), or None when the string is not shaped like a key."""
    match = _KEY_RE.fullmatch(plaintext)
    return (match.group(1), match.group(2)) if match else None


def secret_matches(secret: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def _record(row: asyncpg.Record) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        prefix=row["prefix"],
        secret_hash=bytes(row["secret_hash"]),
        scopes=tuple(row["scopes"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _check_new_key(name: str, scopes: Sequence[str]) -> None:
    if not 1 <= len(name) <= limits.name_chars_max:
        raise ValueError(f"key name must be 1..{limits.name_chars_max} characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes: {unknown}")


async def create_api_key(
    conn: Connection, org_id: str, name: str, scopes: Sequence[str]
) -> tuple[ApiKeyRecord, str]:
    """A new key for the org: its record and the plaintext (return it to the caller once, never log it)."""
    _check_new_key(name, scopes)
    prefix, plaintext, secret_hash = new_api_key()
    distinct_scopes = list(dict.fromkeys(scopes))
    row = await conn.fetchrow(
        "INSERT INTO api_keys (id, org_id, name, prefix, secret_hash, scopes) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}",
        KEY_ID_PREFIX + secrets.token_hex(16),
        org_id,
        name,
        prefix,
        secret_hash,
        distinct_scopes,
    )
    return _record(row), plaintext


async def find_api_key(conn: Connection, prefix: str) -> ApiKeyRecord | None:
    """The key with this prefix, revoked or not. Not org-scoped: the key decides the org."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE prefix = $1", prefix)
    return _record(row) if row else None


async def list_api_keys(conn: Connection, org_id: str) -> list[ApiKeyRecord]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at, id", org_id
    )
    return [_record(row) for row in rows]


async def revoke_api_key(conn: Connection, org_id: str, key_id: str) -> bool:
    """Revoke the org's key; False when the org has no such key. Revoking twice keeps the first time."""
    row = await conn.fetchrow(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
        "WHERE org_id = $1 AND id = $2 RETURNING id",
        org_id,
        key_id,
    )
    return row is not None
