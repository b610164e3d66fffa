"""Audit log use cases: read an organization's entries, a page at a time (writing them is every unit of work's
job: services/unit_of_work.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from persistence import audit
from services.unit_of_work import Tenants


@dataclass(frozen=True, slots=True)
class Filters:
    """Every given filter must match; ``since`` inclusive, ``until`` exclusive."""

    actor_id: str | None = None
    action: str | None = None
    object_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[audit.AuditRow]
    next_after_seq: int | None  # where the next (older) page starts; None at the end


async def page(tenants: Tenants, org_id: str, filters: Filters, *, after_seq: int | None, limit: int) -> Page:
    """The org's entries matching ``filters``, newest first, below ``after_seq``: at most ``limit``."""
    async with tenants.tenant(org_id) as db:
        # One more than asked: whether another page exists, without a trailing empty page.
        rows = await audit.query(
            db,
            actor_id=filters.actor_id,
            action=filters.action,
            object_id=filters.object_id,
            since=filters.since,
            until=filters.until,
            after_seq=after_seq,
            limit=limit + 1,
        )
    shown = rows[:limit]
    return Page(shown, shown[-1].entry.seq if len(rows) > limit else None)
