"""The outbox's store (persistence/migrations/011_orders.sql): what committed changes still owe outside Postgres.

A use case owes work with ``UnitOfWork.owe`` (services/unit_of_work.py), which calls ``owe`` here in its own
transaction, so the debt is committed with the change or not at all. A row is named by (org, topic, key): owing
the same work twice leaves one row.

A drain (services/outbox.py) claims due rows across every org on an unscoped connection: ``claim`` counts the
attempt and pushes the row's next attempt out by a lease, all in one statement with SKIP LOCKED, so two drains
never take the same row at once and a drain that dies mid-work leaves its rows to be claimed again when the lease
ends. Handlers are idempotent by the row's key, so work done twice (a crash after the work, before ``done``)
changes nothing the second time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from persistence.tenancy import OrgDb

claim_rows_max = 200
error_chars_max = 500


@dataclass(frozen=True, slots=True)
class Owed:
    """One piece of work owed: its topic (who drains it), its key (what it is, idempotently), its data."""

    topic: str
    key: str
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Claimed:
    row_id: int
    org_id: str
    topic: str
    key: str
    payload: dict[str, Any]
    attempts: int  # counting this one
    created_at: datetime


async def owe(db: OrgDb, owed: list[Owed]) -> None:
    if not owed:
        return
    await db.conn.execute(
        "INSERT INTO outbox (org_id, topic, key, payload)"
        " SELECT $1, o.topic, o.key, o.payload::jsonb FROM unnest($2::text[], $3::text[], $4::text[])"
        " AS o(topic, key, payload) ON CONFLICT (org_id, topic, key) DO NOTHING",
        db.org_id, [o.topic for o in owed], [o.key for o in owed], [json.dumps(dict(o.payload)) for o in owed],
    )


async def claim(conn: asyncpg.Connection, topics: list[str], now: datetime, lease_s: float, limit: int
                ) -> list[Claimed]:
    """Up to ``limit`` due rows of ``topics``, oldest first, each leased for ``lease_s``."""
    if not 1 <= limit <= claim_rows_max:
        raise ValueError(f"a claim takes 1..{claim_rows_max} rows")
    rows = await conn.fetch(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2 + make_interval(secs => $3)"
        " WHERE id IN (SELECT id FROM outbox WHERE topic = ANY($1::text[]) AND done_at IS NULL AND NOT stuck"
        " AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, org_id, topic, key, payload, attempts, created_at",
        topics, now, lease_s, limit,
    )
    claimed = [Claimed(r["id"], r["org_id"], r["topic"], r["key"], json.loads(r["payload"]), r["attempts"],
                       r["created_at"]) for r in rows]
    return sorted(claimed, key=lambda c: c.row_id)


async def done(db: OrgDb, row_id: int) -> None:
    """Mark the row done, in the transaction of the work's own Postgres effects when it has some."""
    await db.conn.execute(
        "UPDATE outbox SET done_at = now(), last_error = NULL WHERE org_id = $1 AND id = $2", db.org_id, row_id
    )


async def retry_later(db: OrgDb, row_id: int, error: str, next_at: datetime, *, stuck: bool) -> None:
    """Keep the row for another attempt at ``next_at``, or give it up (``stuck``) for an operator."""
    await db.conn.execute(
        "UPDATE outbox SET last_error = $3, next_attempt_at = $4, stuck = $5 WHERE org_id = $1 AND id = $2",
        db.org_id, row_id, error[:error_chars_max], next_at, stuck,
    )


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    stuck: int


async def backlog(conn: asyncpg.Connection) -> Backlog:
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE done_at IS NULL AND NOT stuck) AS pending,"
        " count(*) FILTER (WHERE stuck) AS stuck FROM outbox"
    )
    return Backlog(row["pending"], row["stuck"])


async def rows_of(db: OrgDb, topic: str, key: str) -> list[dict[str, Any]]:
    """The row owed under (topic, key), for tests and the operator: its attempts and state."""
    rows = await db.conn.fetch(
        "SELECT id, attempts, done_at, stuck, last_error FROM outbox WHERE org_id = $1 AND topic = $2 AND key = $3",
        db.org_id, topic, key,
    )
    return [dict(r) for r in rows]
