"""Ticket signing keys and revocation lists (migration 007).

Keys: each org has at most one active key, whose private half is stored only sealed (engine/tickets/sealing.py,
under the master key the caller hands in); rotating makes a new active key and moves the old one to retiring,
erasing its sealed private half (it signs nothing more); retiring one moves it to retired. Key changes of one org
queue on a transaction-scoped advisory lock, so two rotations at once make two keys one after the other, never
two active ones. The random parts (kid, seed, nonce) are drawn here: the core only derives.

Revocations: per event, a list whose version grows by one with every call that revokes something new; each
revoked ticket keeps the version that revoked it, so a scanner holding version V asks for the ones after V.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from engine.tickets.keys import KeyStatus, SigningKey, VerifyingKey, kid_bytes, may_move, public_key_of, seed_bytes
from engine.tickets.sealing import MasterKey, nonce_bytes
from persistence.tenancy import OrgDb

kid_draw_attempts_max = 16  # 3-byte kids, unique per org: a collision is ~1 in 16,000 for an org with 1,000 keys
ticket_keys_per_org_max = 1_000  # a rotation a week for 19 years; retired keys are kept to refuse their tickets
revocations_per_call_max = 10_000
_KEY_LOCK = "voelgoed:ticket_keys:"
_REVOCATION_LOCK = "voelgoed:ticket_revocations:"
_KEY_COLUMNS = "kid, public_key, status, created_at, retiring_at, retired_at"


class TooManyKeys(RuntimeError):
    pass


@dataclass(frozen=True)
class TicketKeyRecord:
    """A key as stored, without its private half."""

    org_id: str
    kid: str
    public_key: bytes
    status: KeyStatus
    created_at: datetime
    retiring_at: datetime | None
    retired_at: datetime | None

    def verifying_key(self) -> VerifyingKey:
        return VerifyingKey(self.kid, self.org_id, self.public_key, self.status)


class Retire(StrEnum):
    RETIRED = "retired"
    NOT_FOUND = "not_found"
    NOT_RETIRING = "not_retiring"  # active (rotate first) or retired already


@dataclass(frozen=True)
class Revocations:
    version: int  # 0: nothing was ever revoked for the event
    ticket_ids: tuple[str, ...]


def _record(db: OrgDb, row: asyncpg.Record) -> TicketKeyRecord:
    return TicketKeyRecord(
        db.org_id, row["kid"], bytes(row["public_key"]), KeyStatus(row["status"]), row["created_at"],
        row["retiring_at"], row["retired_at"],
    )  # fmt: skip


async def _lock_keys(db: OrgDb) -> None:
    await db.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _KEY_LOCK + db.org_id)


async def _active_row(db: OrgDb) -> asyncpg.Record | None:
    return await db.conn.fetchrow(
        f"SELECT {_KEY_COLUMNS} FROM ticket_keys WHERE org_id = $1 AND status = 'active'", db.org_id
    )


async def _insert_new_key(db: OrgDb, master: MasterKey) -> TicketKeyRecord:
    count: int = await db.conn.fetchval("SELECT count(*) FROM ticket_keys WHERE org_id = $1", db.org_id)
    if count >= ticket_keys_per_org_max:
        raise TooManyKeys(f"an org keeps at most {ticket_keys_per_org_max} ticket keys")
    seed = secrets.token_bytes(seed_bytes)
    for _ in range(kid_draw_attempts_max):
        kid = secrets.token_bytes(kid_bytes).hex()
        nonce = secrets.token_bytes(nonce_bytes)
        row = await db.conn.fetchrow(
            "INSERT INTO ticket_keys (org_id, kid, public_key, status, private_key_sealed, private_key_nonce, "
            f"master_id) VALUES ($1, $2, $3, 'active', $4, $5, $6) ON CONFLICT (org_id, kid) DO NOTHING "
            f"RETURNING {_KEY_COLUMNS}",
            db.org_id, kid, public_key_of(seed), master.seal(db.org_id, kid, seed, nonce), nonce, master.master_id,
        )  # fmt: skip
        if row is not None:
            return _record(db, row)
    raise RuntimeError(f"no free kid after {kid_draw_attempts_max} draws")


async def create_key(db: OrgDb, master: MasterKey) -> TicketKeyRecord | None:
    """The org's first active key; None when it has an active key already (rotate it instead)."""
    await _lock_keys(db)
    if await _active_row(db) is not None:
        return None
    return await _insert_new_key(db, master)


async def ensure_active_key(db: OrgDb, master: MasterKey) -> TicketKeyRecord:
    """The org's active key, made if it has none: what issuing a ticket calls."""
    await _lock_keys(db)
    row = await _active_row(db)
    return _record(db, row) if row is not None else await _insert_new_key(db, master)


async def rotate_key(db: OrgDb, master: MasterKey) -> tuple[TicketKeyRecord, TicketKeyRecord | None]:
    """A new active key, and the old active one (if any) now retiring, its private half erased."""
    await _lock_keys(db)
    old = await db.conn.fetchrow(
        "UPDATE ticket_keys SET status = 'retiring', retiring_at = now(), private_key_sealed = NULL, "
        f"private_key_nonce = NULL, master_id = NULL WHERE org_id = $1 AND status = 'active' RETURNING {_KEY_COLUMNS}",
        db.org_id,
    )
    new = await _insert_new_key(db, master)
    return new, None if old is None else _record(db, old)


async def retire_key(db: OrgDb, kid: str) -> Retire:
    """Retire a retiring key: from now on its tickets are refused."""
    await _lock_keys(db)
    status = await db.conn.fetchval("SELECT status FROM ticket_keys WHERE org_id = $1 AND kid = $2", db.org_id, kid)
    if status is None:
        return Retire.NOT_FOUND
    if not may_move(KeyStatus(status), KeyStatus.RETIRED):
        return Retire.NOT_RETIRING
    await db.conn.execute(
        "UPDATE ticket_keys SET status = 'retired', retired_at = now() WHERE org_id = $1 AND kid = $2", db.org_id, kid
    )
    return Retire.RETIRED


async def list_keys(db: OrgDb, *, with_retired: bool = False) -> list[TicketKeyRecord]:
    """The org's keys, oldest first: the active and retiring ones (what verifies), and the retired if asked."""
    rows = await db.conn.fetch(
        f"SELECT {_KEY_COLUMNS} FROM ticket_keys WHERE org_id = $1 AND ($2 OR status <> 'retired') "
        "ORDER BY created_at, kid",
        db.org_id,
        with_retired,
    )
    return [_record(db, row) for row in rows]


async def signing_key(db: OrgDb, master: MasterKey) -> SigningKey | None:
    """The active key with its private half opened; SealBroken if the master is not the one that sealed it."""
    row = await db.conn.fetchrow(
        "SELECT kid, private_key_sealed, private_key_nonce FROM ticket_keys WHERE org_id = $1 AND status = 'active'",
        db.org_id,
    )
    if row is None:
        return None
    seed = master.open(db.org_id, row["kid"], bytes(row["private_key_sealed"]), bytes(row["private_key_nonce"]))
    return SigningKey(row["kid"], db.org_id, seed)


async def revoke_tickets(db: OrgDb, event_id: str, ticket_ids: list[str] | tuple[str, ...]) -> int:
    """Revoke ``ticket_ids`` (tickets of ``event_id``); the list's version after, bumped only if one is new.
    Revocations of one event queue on a transaction-scoped advisory lock, so versions are never skipped or
    shared between two calls."""
    assert len(ticket_ids) <= revocations_per_call_max
    await db.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _REVOCATION_LOCK + event_id)
    wanted = list(dict.fromkeys(ticket_ids))
    new = await db.conn.fetch(
        "SELECT t FROM unnest($3::text[]) AS t WHERE NOT EXISTS (SELECT FROM ticket_revocations r "
        "WHERE r.org_id = $1 AND r.event_id = $2 AND r.ticket_id = t)",
        db.org_id, event_id, wanted,
    )  # fmt: skip
    if not new:
        current = await db.conn.fetchval(
            "SELECT version FROM ticket_revocation_lists WHERE org_id = $1 AND event_id = $2", db.org_id, event_id
        )
        return int(current or 0)
    version: int = await db.conn.fetchval(
        "INSERT INTO ticket_revocation_lists AS l (org_id, event_id, version) VALUES ($1, $2, 1) "
        "ON CONFLICT (event_id) DO UPDATE SET version = l.version + 1, updated_at = now() RETURNING version",
        db.org_id,
        event_id,
    )
    await db.conn.executemany(
        "INSERT INTO ticket_revocations (org_id, event_id, ticket_id, version) VALUES ($1, $2, $3, $4)",
        [(db.org_id, event_id, row["t"], version) for row in new],
    )
    return version


async def read_revocations(db: OrgDb, event_id: str, *, since_version: int = 0) -> Revocations:
    """The event's revoked tickets after ``since_version`` (all of them from 0), and the list's version now."""
    version = await db.conn.fetchval(
        "SELECT version FROM ticket_revocation_lists WHERE org_id = $1 AND event_id = $2", db.org_id, event_id
    )
    rows = await db.conn.fetch(
        "SELECT ticket_id FROM ticket_revocations WHERE org_id = $1 AND event_id = $2 AND version > $3 "
        "ORDER BY version, ticket_id",
        db.org_id,
        event_id,
        since_version,
    )
    return Revocations(version or 0, tuple(row["ticket_id"] for row in rows))
