"""People: one row per e-mail address, shared by every org the person belongs to (memberships say which).

Row-level security shows an org only its members, and anyone may add a person (migration 002). Under the
org-bound role nobody reads a password hash or changes a person: the row is shared by every org they belong to,
so one org must not be able to read or replace what guards the others. Finding a person by e-mail before any org
is known (logging in, inviting someone who may belong to other orgs), and setting a first password, run inside
``persistence.tenancy.unscoped``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from persistence.db import Connection
from persistence.tenancy import OrgDb

USER_PREFIX = "usr_"
email_chars_max = 254
_COLUMNS = "id, email, password_hash, created_at"
_ORG_COLUMNS = "id, email, created_at"  # what the org-bound role may read
_ID_RE = re.compile(re.escape(USER_PREFIX) + r"[0-9a-f]{32}")


class EmailTaken(ValueError):
    """A person with this e-mail address already exists."""


@dataclass(frozen=True)
class UserRecord:
    id: str
    email: str
    password_hash: str | None  # None until an invited person sets a password
    created_at: datetime


def is_user_id(value: str) -> bool:
    """Whether ``value`` is shaped like a person's id (anything else names nobody, without a query)."""
    return _ID_RE.fullmatch(value) is not None


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _record(row: asyncpg.Record) -> UserRecord:
    return UserRecord(row["id"], row["email"], row["password_hash"], row["created_at"])


async def create_user(conn: Connection, email: str, password_hash: str | None) -> UserRecord:
    """A new person (e-mail lower-cased); EmailTaken when the address is in use (in any org).

    Run it inside a transaction (a savepoint is taken, so a duplicate leaves the caller's transaction usable).
    No RETURNING: a person in no org yet is invisible to the org-bound role, and RETURNING would need to see it.
    """
    user_id = USER_PREFIX + secrets.token_hex(16)
    address = normalize_email(email)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)", user_id, address, password_hash
            )
            created_at = await conn.fetchval("SELECT now()")  # the insert's own default (transaction time)
    except asyncpg.UniqueViolationError:
        raise EmailTaken(f"a person with the e-mail {address!r} already exists") from None
    return UserRecord(user_id, address, password_hash, created_at)


async def find_user_by_email(conn: Connection, email: str) -> UserRecord | None:
    """The person with this e-mail (any case), or None. Cross-org: run inside ``unscoped`` (login, invite)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE email = $1", normalize_email(email))
    return _record(row) if row else None


async def find_user(db: OrgDb, user_id: str) -> UserRecord | None:
    """A member of db's org by id (row-level security hides everyone else); password_hash is always None here
    (the org-bound role may not read it)."""
    row = await db.conn.fetchrow(
        f"SELECT {_ORG_COLUMNS} FROM users u WHERE id = $1 "
        "AND EXISTS (SELECT FROM memberships m WHERE m.user_id = u.id AND m.org_id = $2)",
        user_id,
        db.org_id,
    )
    return UserRecord(row["id"], row["email"], None, row["created_at"]) if row else None


async def find_user_by_id(conn: Connection, user_id: str) -> UserRecord | None:
    """The person with this id, password hash included. Cross-org: run inside ``unscoped`` (accepting an
    invitation checks the person's own password)."""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1", user_id)
    return _record(row) if row else None


async def set_first_password(conn: Connection, user_id: str, password_hash: str) -> bool:
    """Store the first password of a person who has none; False when they have one already (never replaced
    this way). Cross-org: run inside ``unscoped`` (the org-bound role may not write users)."""
    row = await conn.fetchrow(
        "UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash IS NULL RETURNING id",
        user_id,
        password_hash,
    )
    return row is not None


async def rehash_password(conn: Connection, user_id: str, old_hash: str, new_hash: str) -> bool:
    """Replace a hash made with older argon2 parameters by one of the same password (login does, after checking
    it); False when the password changed meanwhile. Cross-org: run inside ``unscoped``."""
    row = await conn.fetchrow(
        "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 RETURNING id",
        user_id,
        old_hash,
        new_hash,
    )
    return row is not None
