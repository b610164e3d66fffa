"""How every Postgres transaction is bound to one organization, and the one explicit way round it.

Every repository function takes an ``OrgDb``: a connection inside a transaction whose org is set for row-level
security (``set_config('voelgoed.org_id', org, true)``, undone at commit) and carried along for the queries' own
``WHERE org_id = ...`` filters. Only ``org_transaction`` makes one, and it refuses a missing or malformed org, so
a repository call without an org raises before it touches the database.

Work that is cross-org by nature (finding the org of a presented API key, session or invitation; logging in by
e-mail; an inventory recovering its event by id; migrations and platform reports) goes through ``unscoped``,
which switches the transaction to the BYPASSRLS role. ``grep -rn "unscoped("`` lists every such place, each
with its reason.

``TenantPool`` is how a process reaches both from its pool: a pooled connection, waited for at most
``db_acquire_timeout_s``, already inside an org transaction or an unscoped one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from persistence.db import Connection, pooled

ORG_SETTING = "voelgoed.org_id"
# Migration 002 creates it, beside persistence.db.APP_ROLE (the role of every platform connection).
PLATFORM_ROLE = "voelgoed_platform"
_ORG_ID_RE = re.compile(r"org_[0-9a-f]{32}")
reason_chars_max = 200
# A request waits this long for a pooled connection, then fails as an outage instead of queueing unboundedly.
db_acquire_timeout_s = 2.0


class MissingOrg(ValueError):
    """A tenant-scoped database call was made without a (well-formed) organization."""


def require_org(org_id: object) -> str:
    if not isinstance(org_id, str) or _ORG_ID_RE.fullmatch(org_id) is None:
        raise MissingOrg(f"a tenant-scoped database call needs an organization id, not {org_id!r}")
    return org_id


@dataclass(frozen=True, slots=True)
class OrgDb:
    """A connection in a transaction bound to ``org_id``. Made only by ``org_transaction``."""

    conn: Connection
    org_id: str


class NestedTenancy(RuntimeError):
    """An org transaction and an unscoped one were nested: the role or org of one would leak into the other."""


@asynccontextmanager
async def org_transaction(conn: Connection, org_id: str) -> AsyncIterator[OrgDb]:
    """A transaction (a savepoint inside one already open) that sees and writes only ``org_id``'s rows.

    Refused (``NestedTenancy``) inside ``unscoped``: the BYPASSRLS role would still apply, so row-level security
    would not guard this org's queries."""
    require_org(org_id)
    async with conn.transaction():
        # One round trip: the org is set, and the role it runs as is read to refuse the BYPASSRLS one.
        role = await conn.fetchval("SELECT current_user::text FROM set_config($1, $2, true)", ORG_SETTING, org_id)
        if role == PLATFORM_ROLE:
            raise NestedTenancy(
                "org_transaction inside unscoped: row-level security would not apply; end the unscoped "
                "transaction first"
            )
        yield OrgDb(conn, org_id)


@asynccontextmanager
async def unscoped(conn: Connection, *, reason: str) -> AsyncIterator[Connection]:
    """A transaction that sees every org's rows. The one cross-org entry: say why in ``reason``.

    Only on a connection outside any transaction (``NestedTenancy`` otherwise): inside one it would be a
    savepoint, and SET LOCAL ROLE outlives a savepoint's release, so the enclosing (org) transaction would run
    without row-level security until its commit."""
    if not 1 <= len(reason) <= reason_chars_max:
        raise ValueError("an unscoped transaction must say why it needs every org's rows")
    if conn.is_in_transaction():
        raise NestedTenancy("unscoped inside a transaction: its role would outlast it; use a connection of its own")
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {PLATFORM_ROLE}")
        yield conn


class TenantPool:
    """A connection pool whose connections come already bound: to one org, or (said why) to every org."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout_s: float = db_acquire_timeout_s) -> None:
        self._pool = pool
        self._acquire_timeout_s = acquire_timeout_s

    @asynccontextmanager
    async def tenant(self, org_id: str) -> AsyncIterator[OrgDb]:
        """A pooled connection in ``org_transaction(conn, org_id)``."""
        async with self.connection() as conn, org_transaction(conn, org_id) as db:
            yield db

    @asynccontextmanager
    async def unscoped(self, reason: str) -> AsyncIterator[Connection]:
        """A pooled connection in ``unscoped(conn, reason=reason)``: only for work that is cross-org by nature."""
        async with self.connection() as conn, unscoped(conn, reason=reason) as raw:
            yield raw

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A bare pooled connection, in no transaction: only for what reads no table (the readiness probe's
        ``select 1``); whatever reads a table goes through ``tenant`` or ``unscoped``."""
        async with pooled(self._pool, self._acquire_timeout_s) as conn:
            yield conn
