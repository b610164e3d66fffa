"""The outbox drain: claims due rows (persistence/outbox.py) across every org and runs each topic's handler,
bounded in everything.

A handler that returns did its work: the row is marked done. One that raises is tried again after a backoff that
doubles from ``backoff_s_first`` to ``backoff_s_max``; after ``attempts_max`` attempts, or once the row is older
than ``age_s_max``, it is given up (``stuck``) for an operator instead of retried for ever. A handler runs at most
``handler_s_max`` (then it counts as failed), at most ``concurrency_max`` at once, and its lease
(``lease_s``, longer than a handler may run) keeps other drains off the row meanwhile. Handlers are idempotent
by their row's key, so a crash between the work and ``done`` only repeats harmless work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from persistence import outbox
from persistence.outbox import Claimed
from services.unit_of_work import Platform, Tenants

log = logging.getLogger(__name__)
handler_s_max_default = 20.0
lease_margin_s = 1.0  # a policy made for a lease (``DrainPolicy.for_lease``) bounds its handlers this much shorter


@dataclass(frozen=True, slots=True)
class DrainPolicy:
    rows_per_pass_max: int = 100
    concurrency_max: int = 16
    handler_s_max: float = handler_s_max_default
    lease_s: float = 60.0
    attempts_max: int = 12
    age_s_max: float = 24 * 3600.0
    backoff_s_first: float = 0.5
    backoff_s_max: float = 300.0

    def __post_init__(self) -> None:
        assert 1 <= self.rows_per_pass_max <= outbox.claim_rows_max, self
        assert self.handler_s_max < self.lease_s, "a lease outlives the handler that holds it"
        assert 0 < self.backoff_s_first <= self.backoff_s_max and self.attempts_max >= 1, self

    @classmethod
    def for_lease(cls, lease_s: float) -> DrainPolicy:
        """The default policy with this lease (Settings.outbox_lease_s), its handlers bounded to fit in it."""
        return cls(lease_s=lease_s, handler_s_max=min(handler_s_max_default, lease_s - lease_margin_s))

    def backoff_s(self, attempts: int) -> float:
        return min(self.backoff_s_max, self.backoff_s_first * 2 ** max(0, attempts - 1))


class Stores(Tenants, Platform, Protocol):
    """Org transactions for marking rows, an unscoped one for claiming them (persistence.tenancy.TenantPool)."""


RowHandler = Callable[[Claimed], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Pass:
    claimed: int
    done: int
    retried: int
    stuck: int


async def drain_once(
    stores: Stores,
    handlers: Mapping[str, RowHandler],
    policy: DrainPolicy = DrainPolicy(),
    clock: Callable[[], float] = time.time,
) -> Pass:
    """One pass: claim what is due of the handlers' topics, run it, mark each row done or due again."""
    now = datetime.fromtimestamp(clock(), UTC)
    async with stores.unscoped("the outbox drain works for every org") as conn:
        rows = await outbox.claim(conn, sorted(handlers), now, policy.lease_s, policy.rows_per_pass_max)
    gate = asyncio.Semaphore(policy.concurrency_max)
    results = await asyncio.gather(*(_run(stores, handlers[row.topic], row, policy, clock, gate) for row in rows))
    return Pass(len(rows), results.count("done"), results.count("retried"), results.count("stuck"))


async def _run(
    stores: Stores, handler: RowHandler, row: Claimed, policy: DrainPolicy, clock: Callable[[], float],
    gate: asyncio.Semaphore,
) -> str:
    async with gate:
        try:
            await asyncio.wait_for(handler(row), policy.handler_s_max)
        except Exception as error:  # every failure is retried within the bounds, then left to an operator
            return await _failed(stores, row, error, policy, clock)
        async with stores.tenant(row.org_id) as db:
            await outbox.done(db, row.row_id)
        return "done"


async def _failed(
    stores: Stores, row: Claimed, error: Exception, policy: DrainPolicy, clock: Callable[[], float]
) -> str:
    now = datetime.fromtimestamp(clock(), UTC)
    stuck = row.attempts >= policy.attempts_max or (now - row.created_at).total_seconds() > policy.age_s_max
    next_at = now + timedelta(seconds=policy.backoff_s(row.attempts))
    log_at = logging.ERROR if stuck else logging.WARNING
    log.log(log_at, "outbox %s %s attempt %d failed: %r%s", row.topic, row.key, row.attempts, error,
            "; given up" if stuck else "")
    async with stores.tenant(row.org_id) as db:
        await outbox.retry_later(db, row.row_id, f"{type(error).__name__}: {error}", next_at, stuck=stuck)
    return "stuck" if stuck else "retried"
