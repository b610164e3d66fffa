"""An event's hot-path metadata (org, status, ticket types, limits), without a Postgres read on the hot path.

Lookup order: this process's bounded LRU -> the Redis meta (written at creation and again at publish) ->
Postgres (only on a miss, e.g. an event created before its meta reached Redis). Only on-sale metas are kept in
memory or written back to Redis from a Postgres read: status moves draft -> on_sale and never back, so an on-sale
meta can never go stale, while a remembered draft would hide the publish that follows it.
Unknown ids are remembered briefly as absent, so a flood of made-up ids cannot turn into a flood of queries.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache, TTLCache
from redis.asyncio import Redis

from engine import ids
from engine.catalog.lifecycle import is_on_sale
from engine.refusals import Refusal
from gateway.auth import Principal
from gateway.errors import ApiError, storage_outage_as_503
from gateway.refusals import refused
from persistence.catalog import event_metas
from persistence.catalog import events as pg_events
from persistence.tenancy import TenantPool

events_cached_max = 10_000
absent_cached_max = 10_000
absent_ttl_s = 5.0

EventKey = tuple[str, str]  # (org id, event id)


@dataclass(frozen=True, slots=True)
class TicketTypeMeta:
    code: str
    kind: str
    capacity: int


@dataclass(frozen=True, slots=True)
class EventMeta:
    event_id: str
    org_id: str
    status: str
    hold_ttl_s: int
    max_tickets_per_buyer: int
    dedicated: bool
    ticket_types: tuple[TicketTypeMeta, ...]

    @property
    def on_sale(self) -> bool:
        return is_on_sale(self.status)

    def to_dict(self) -> dict[str, Any]:
        """The msgpack-able meta shared with every gateway process through Redis."""
        return {
            "org_id": self.org_id,
            "status": self.status,
            "hold_ttl_s": self.hold_ttl_s,
            "max_tickets_per_buyer": self.max_tickets_per_buyer,
            "dedicated": self.dedicated,
            "ticket_types": [{"code": t.code, "kind": t.kind, "capacity": t.capacity} for t in self.ticket_types],
        }


def meta_of_record(record: pg_events.EventRecord) -> EventMeta:
    return EventMeta(
        event_id=record.id,
        org_id=record.org_id,
        status=record.status,
        hold_ttl_s=record.hold_ttl_s,
        max_tickets_per_buyer=record.max_tickets_per_buyer,
        dedicated=record.dedicated,
        ticket_types=tuple(TicketTypeMeta(t.code, t.kind, t.capacity) for t in record.ticket_types),
    )


def meta_of_dict(event_id: str, raw: dict[str, Any]) -> EventMeta:
    return EventMeta(
        event_id=event_id,
        org_id=raw["org_id"],
        status=raw["status"],
        hold_ttl_s=raw["hold_ttl_s"],
        max_tickets_per_buyer=raw["max_tickets_per_buyer"],
        dedicated=bool(raw.get("dedicated", False)),
        ticket_types=tuple(TicketTypeMeta(t["code"], t["kind"], t["capacity"]) for t in raw["ticket_types"]),
    )


class EventCache:
    """``timer`` (monotonic seconds) is for tests that move time past ``absent_ttl_s``."""

    def __init__(
        self,
        db: TenantPool,
        redis: Redis,
        *,
        entries_max: int = events_cached_max,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._redis = redis
        self._metas: LRUCache[EventKey, EventMeta] = LRUCache(entries_max)
        self._absent: TTLCache[EventKey, bool] = TTLCache(absent_cached_max, absent_ttl_s, timer=timer)

    async def get(self, org_id: str, event_id: str) -> EventMeta:
        """The org's event meta; 404 event_not_found for a malformed, unknown or other org's id."""
        if not ids.is_event_id(event_id):
            raise event_not_found(event_id)
        key = (org_id, event_id)
        meta = self._metas.get(key)
        if meta is not None:
            return meta
        if key in self._absent:
            raise event_not_found(event_id)
        meta = await self._load(org_id, event_id)
        if meta is None:
            self._absent[key] = True
            raise event_not_found(event_id)
        if meta.on_sale:
            self.remember(meta)
        return meta

    def remember(self, meta: EventMeta) -> None:
        key = (meta.org_id, meta.event_id)
        self._absent.pop(key, None)
        if not meta.on_sale:
            return
        self._metas[key] = meta

    async def share(self, meta: EventMeta) -> None:
        """Make a new or just-published meta visible to every gateway process (Redis); remember it here."""
        with storage_outage_as_503():
            await event_metas.put_event_meta(self._redis, meta.org_id, meta.event_id, meta.to_dict())
        self.remember(meta)

    async def share_record(self, record: pg_events.EventRecord) -> None:
        """``share`` for a record just written (services/catalog.py's SharedEvents)."""
        await self.share(meta_of_record(record))

    def forget_absent(self, org_id: str, event_id: str) -> None:
        self._absent.pop((org_id, event_id), None)

    async def _load(self, org_id: str, event_id: str) -> EventMeta | None:
        with storage_outage_as_503():
            raw = await event_metas.get_event_meta(self._redis, org_id, event_id)
        if raw is not None and raw.get("org_id") == org_id:
            return meta_of_dict(event_id, raw)
        with storage_outage_as_503():
            async with self._db.tenant(org_id) as db:
                record = await pg_events.get_event(db, event_id)
        if record is None:
            return None
        meta = meta_of_record(record)
        if meta.on_sale:
            with storage_outage_as_503():
                await event_metas.put_event_meta(self._redis, org_id, event_id, meta.to_dict())
        return meta


def event_not_found(event_id: str) -> ApiError:
    return refused(Refusal.EVENT_NOT_FOUND, "no such event", {"event_id": event_id})


def visible_to(principal: Principal, meta: EventMeta) -> EventMeta:
    """The event, unless the caller is a publishable key and the event is not on sale: then 404."""
    if principal.publishable and not meta.on_sale:
        raise event_not_found(meta.event_id)
    return meta


def not_on_sale(event_id: str) -> ApiError:
    return refused(Refusal.NOT_ON_SALE, "the event is not on sale", {"event_id": event_id})
