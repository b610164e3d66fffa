"""The audit log: who did what to which object, when and from where, one hash chain per org.

``record`` appends in the caller's transaction, so an entry commits or rolls back with the change it records.
It locks the org's head row first, so an org's entries get gapless sequence numbers in commit order, however
many connections write at once. engine/audit_chain.py defines the hashes; ``verify`` re-reads a chain and names
its first broken link. The table refuses UPDATE, DELETE and TRUNCATE (a trigger, for its owner too).

before/after are snapshots for people reading the log: never put a secret, a hash or a password in them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from engine.audit_chain import GENESIS_HASH, ChainedEntry, ChainVerifier, Entry, Head, Verdict, chain
from persistence.db import Connection
from persistence.tenancy import OrgDb, org_transaction, require_org

ActorType = Literal["user", "key", "system"]
# A chain is read back in pages of this many entries, so verifying a long one holds bounded memory.
verify_page_entries = 1_000
query_entries_max = 1_000

AuditRow = ChainedEntry
VerifyResult = Verdict

_COLUMNS = "org_id, seq, at, actor_type, actor_id, action, object_type, object_id, ip, before, after, prev_hash, hash"

# Locks the org's head row until the transaction ends: this is what serializes an org's appends. An org's first
# append creates the row first (ON CONFLICT: another transaction may be creating it at the same moment).
_LOCK_HEAD = "SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE"
_CREATE_HEAD = "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT (org_id) DO NOTHING"
# Every entry of one call in one statement, and the head moved with them; each entry has its own actor (a group
# commit's sales were confirmed by different callers). INSERT ... SELECT FROM unnest rather than COPY: Postgres
# refuses COPY FROM into a table with row-level security.
_APPEND = (
    "WITH appended AS ("
    " INSERT INTO audit_log (org_id, seq, at, actor_type, actor_id, action, object_type, object_id, ip,"
    " before, after, prev_hash, hash)"
    " SELECT $1::text, e.seq, $2::timestamptz, e.actor_type, e.actor_id, e.action, e.object_type, e.object_id,"
    " e.ip, e.before::jsonb, e.after::jsonb, e.prev_hash, e.hash"
    " FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
    " $10::text[], $11::text[], $12::bytea[], $13::bytea[])"
    " AS e(seq, actor_type, actor_id, ip, action, object_type, object_id, before, after, prev_hash, hash)"
    ") UPDATE audit_heads SET seq = $14, hash = $15 WHERE org_id = $1"
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, an API key, or the platform itself ("system", id naming the part)."""

    type: str  # an ActorType; record() refuses anything else
    id: str
    ip: str | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One thing that happened to one object; before/after are JSON snapshots without secrets."""

    action: str
    object_type: str
    object_id: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


def now() -> datetime:
    # Microseconds, as a timestamptz keeps them, so the hashed time is the stored time.
    return datetime.now(UTC)


async def record(db: OrgDb, actor: Actor, *changes: Change) -> None:
    """Append ``changes``, all by ``actor``, to db's org's chain, in db's transaction. No changes: nothing
    happens."""
    await record_many(db, [(actor, change) for change in changes])


async def record_many(db: OrgDb, entries: Sequence[tuple[Actor, Change]]) -> None:
    """Append each (actor, change) in order to db's org's chain, in db's transaction, in one statement: a group
    commit records every sale under the caller who confirmed it. No entries: nothing happens."""
    if not entries:
        return
    at = now()
    head_row = await db.conn.fetchrow(_LOCK_HEAD, db.org_id)
    if head_row is None:
        await db.conn.execute(_CREATE_HEAD, db.org_id, GENESIS_HASH)
        head_row = await db.conn.fetchrow(_LOCK_HEAD, db.org_id)
        assert head_row is not None
    head = Head(head_row["seq"], bytes(head_row["hash"]))
    numbered = [
        Entry(
            org_id=db.org_id,
            seq=head.seq + n,
            at=at,
            actor_type=actor.type,
            actor_id=actor.id,
            action=change.action,
            object_type=change.object_type,
            object_id=change.object_id,
            ip=actor.ip,
            before=change.before,
            after=change.after,
        )
        for n, (actor, change) in enumerate(entries, start=1)
    ]
    chained, new_head = chain(head, numbered)  # raises ValueError for a bad entry, before anything is written
    await db.conn.execute(
        _APPEND,
        db.org_id,
        at,
        [c.entry.seq for c in chained],
        [c.entry.actor_type for c in chained],
        [c.entry.actor_id for c in chained],
        [c.entry.ip for c in chained],
        [c.entry.action for c in chained],
        [c.entry.object_type for c in chained],
        [c.entry.object_id for c in chained],
        [_json_or_none(c.entry.before) for c in chained],
        [_json_or_none(c.entry.after) for c in chained],
        [c.prev_hash for c in chained],
        [c.hash for c in chained],
        new_head.seq,
        new_head.hash,
    )


def _json_or_none(value: Mapping[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _row(row: asyncpg.Record) -> AuditRow:
    return ChainedEntry(
        entry=Entry(
            org_id=row["org_id"],
            seq=row["seq"],
            at=row["at"],
            actor_type=row["actor_type"],
            actor_id=row["actor_id"],
            action=row["action"],
            object_type=row["object_type"],
            object_id=row["object_id"],
            ip=row["ip"],
            before=None if row["before"] is None else json.loads(row["before"]),
            after=None if row["after"] is None else json.loads(row["after"]),
        ),
        prev_hash=bytes(row["prev_hash"]),
        hash=bytes(row["hash"]),
    )


async def query(
    db: OrgDb,
    *,
    actor_id: str | None = None,
    action: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_seq: int | None = None,
    limit: int,
) -> list[AuditRow]:
    """db's org's entries matching every given filter, newest first: ``since`` inclusive, ``until`` exclusive;
    ``after_seq`` (the last seq of the previous page) continues below it."""
    if not 1 <= limit <= query_entries_max:
        raise ValueError(f"limit must be 1..{query_entries_max}")
    conditions = ["org_id = $1"]
    args: list[object] = [db.org_id]
    for column, op, value in (
        ("actor_id", "=", actor_id),
        ("action", "=", action),
        ("object_id", "=", object_id),
        ("at", ">=", since),
        ("at", "<", until),
        ("seq", "<", after_seq),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} {op} ${len(args)}")
    args.append(limit)
    rows = await db.conn.fetch(
        f"SELECT {_COLUMNS} FROM audit_log WHERE {' AND '.join(conditions)} ORDER BY seq DESC LIMIT ${len(args)}",
        *args,
    )
    return [_row(row) for row in rows]


async def verify(conn_or_db: Connection | OrgDb, org_id: str) -> VerifyResult:
    """Re-read ``org_id``'s whole chain in seq order (in pages) and its head, and check them: the first broken
    link, if any, with why. Works from a plain connection (the CLI's) or inside an org transaction."""
    require_org(org_id)
    if isinstance(conn_or_db, OrgDb):
        if conn_or_db.org_id != org_id:
            raise ValueError("verify was given another org's transaction")
        conn = conn_or_db.conn
    else:
        conn = conn_or_db
    async with AsyncExitStack() as stack:
        if not conn.is_in_transaction():
            # One snapshot for every page and the head, so appends made meanwhile cannot look like a break.
            await stack.enter_async_context(conn.transaction(isolation="repeatable_read", readonly=True))
        db = await stack.enter_async_context(org_transaction(conn, org_id))
        verifier = ChainVerifier(org_id)
        last_seq = 0
        while not verifier.broken:
            rows = await db.conn.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                org_id,
                last_seq,
                verify_page_entries,
            )
            for row in rows:
                if not verifier.feed(_row(row)):
                    break
            if len(rows) < verify_page_entries:
                break
            last_seq = rows[-1]["seq"]
        head_row = await db.conn.fetchrow("SELECT seq, hash FROM audit_heads WHERE org_id = $1", org_id)
        head = Head(0, GENESIS_HASH) if head_row is None else Head(head_row["seq"], bytes(head_row["hash"]))
        return verifier.finish(head)
