"""The unit of work: one use case's change in one org-scoped transaction, with everything it records beside it.

``async with units.begin(org_id, actor) as uow:`` opens a transaction bound to the org (row-level security
applies), hands the use case ``uow.db`` for its repository calls and ``uow.record(change)`` for what happened;
leaving the block without an error writes the recorded audit entries in that same transaction, then commits.
So a change exists if and only if its records do, and an error anywhere rolls both back. ``uow.owe(owed)``
does the same for the outbox (persistence/outbox.py): work the change owes outside Postgres (confirm a paid
order's hold, refund a payment, deliver a webhook) is committed with the change or not at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from persistence import audit, outbox
from persistence.db import Connection
from persistence.tenancy import OrgDb, org_transaction

changes_per_unit_max = 10_000


class Tenants(Protocol):
    """Where units of work get their org-bound transactions: a bounded wait for a pooled connection, and
    whatever the caller makes of an outage (the gateway's answers 503)."""

    def tenant(self, org_id: str) -> AbstractAsyncContextManager[OrgDb]: ...


class Platform(Protocol):
    """Where use cases get a transaction that sees every org (persistence.tenancy.unscoped), for work that is
    cross-org by nature: finding the person or the org a presented credential names. ``reason`` says why."""

    def unscoped(self, reason: str) -> AbstractAsyncContextManager[Connection]: ...


class UnitOfWork:
    """What one use case changes and records, inside one org transaction. Made only by ``UnitsOfWork`` or
    ``unit_of_work_on``."""

    def __init__(self, db: OrgDb, actor: audit.Actor) -> None:
        self.db = db
        self.actor = actor
        self._entries: list[tuple[audit.Actor, audit.Change]] = []
        self._owed: list[outbox.Owed] = []

    @property
    def org_id(self) -> str:
        return self.db.org_id

    def record(self, change: audit.Change, *, by: audit.Actor | None = None) -> None:
        """Note ``change`` for the audit log, by the unit's actor unless ``by`` names another (a group commit's
        sales each name the caller who confirmed them)."""
        if len(self._entries) >= changes_per_unit_max:
            raise ValueError(f"a unit of work records at most {changes_per_unit_max} changes")
        self._entries.append((by or self.actor, change))

    def owe(self, owed: outbox.Owed) -> None:
        """Note work this change owes outside Postgres, for the outbox: written with the audit entries."""
        if len(self._owed) >= changes_per_unit_max:
            raise ValueError(f"a unit of work owes at most {changes_per_unit_max} pieces of work")
        self._owed.append(owed)

    async def flush(self) -> None:
        """Write what was recorded and owed so far, in the unit's transaction (in recording order), and start
        afresh."""
        entries, self._entries = self._entries, []
        owed, self._owed = self._owed, []
        await audit.record_many(self.db, entries)
        await outbox.owe(self.db, owed)


class UnitsOfWork:
    """Opens units of work on the process's tenant transactions."""

    def __init__(self, tenants: Tenants) -> None:
        self._tenants = tenants

    @asynccontextmanager
    async def begin(self, org_id: str, actor: audit.Actor) -> AsyncIterator[UnitOfWork]:
        async with self._tenants.tenant(org_id) as db:
            uow = UnitOfWork(db, actor)
            yield uow
            await uow.flush()


@asynccontextmanager
async def unit_of_work_on(conn: Connection, org_id: str, actor: audit.Actor) -> AsyncIterator[UnitOfWork]:
    """A unit of work on a connection the caller holds (an inventory actor's group commit, bounded by it)."""
    async with org_transaction(conn, org_id) as db:
        uow = UnitOfWork(db, actor)
        yield uow
        await uow.flush()
