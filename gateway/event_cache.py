"""An event's hot-path metadata (org, status, ticket types, limits, sale schedule), without a Postgres read on the
hot path.

Lookup order: this process's bounded LRU -> the Redis meta -> Postgres (only on a miss, e.g. an event created
before its meta reached Redis; the row's meta is then written back). Metas change (a pause, a timed opening, a
sell-out, an edit): every writer stores the meta of the row it committed in Redis, newest revision kept, and
announces it on a channel (persistence/catalog/event_metas.py); each process listens and drops its copy, so a
pause reaches every process within a pub/sub hop. Should the subscription drop, every copy is dropped (it may
have missed messages), and each copy lives at most ``metas_ttl_s`` anyway. The inventory checks the status
itself too (engine/inventory/machine.py's gate), so a copy a moment stale cannot place a hold on a paused event.
Unknown ids are remembered briefly as absent, so a flood of made-up ids cannot turn into a flood of queries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache
from redis.asyncio import Redis

from engine import ids
from engine.catalog import lifecycle
from engine.catalog.presales import Presale, SaleSchedule, hold_refusal
from engine.refusals import Refusal
from gateway.auth import Principal
from gateway.errors import ApiError, storage_outage_as_503
from gateway.refusals import refused
from gateway.subscription import Subscription
from persistence.catalog import event_metas
from persistence.catalog import events as pg_events
from persistence.catalog.redis_keys import EVENT_METAS_CHANGED_CHANNEL
from persistence.tenancy import TenantPool

log = logging.getLogger(__name__)

events_cached_max = 10_000
absent_cached_max = 10_000
absent_ttl_s = 5.0
metas_ttl_s = 5.0  # the longest a copy lives if this process missed the announcement of a change

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
    schedule: SaleSchedule = field(default_factory=SaleSchedule)
    revision: int = 0

    @property
    def on_sale(self) -> bool:
        """The general sale is running (on_sale or sold_out)."""
        return lifecycle.is_on_sale(self.status)

    @property
    def has_inventory(self) -> bool:
        """Published once: its inventory serves confirms, lookups and availability (lifecycle.has_inventory)."""
        return lifecycle.has_inventory(self.status)

    def hold_refusal(self, presale_code: str | None, buyer_id: str, now: float) -> str | None:
        """Why a hold may not be placed now (engine/catalog/presales.py), or None."""
        return hold_refusal(self.status, self.schedule, presale_code, buyer_id, now)

    def to_dict(self) -> dict[str, Any]:
        """The msgpack-able meta shared with every gateway process through Redis."""
        return {
            "org_id": self.org_id,
            "status": self.status,
            "hold_ttl_s": self.hold_ttl_s,
            "max_tickets_per_buyer": self.max_tickets_per_buyer,
            "dedicated": self.dedicated,
            "ticket_types": [{"code": t.code, "kind": t.kind, "capacity": t.capacity} for t in self.ticket_types],
            "sale_opens_at": self.schedule.sale_opens_at,
            "sale_closes_at": self.schedule.sale_closes_at,
            "presales": [
                {
                    "code": p.code,
                    "opens_at": p.opens_at,
                    "closes_at": p.closes_at,
                    "buyer_ids": None if p.buyer_ids is None else sorted(p.buyer_ids),
                }
                for p in self.schedule.presales
            ],
            "revision": self.revision,
        }


def meta_of_record(record: pg_events.EventRecord) -> EventMeta:
    return meta_of_dict(record.id, event_metas.record_meta(record))


def meta_of_dict(event_id: str, raw: dict[str, Any]) -> EventMeta:
    return EventMeta(
        event_id=event_id,
        org_id=raw["org_id"],
        status=raw["status"],
        hold_ttl_s=raw["hold_ttl_s"],
        max_tickets_per_buyer=raw["max_tickets_per_buyer"],
        dedicated=bool(raw.get("dedicated", False)),
        ticket_types=tuple(TicketTypeMeta(t["code"], t["kind"], t["capacity"]) for t in raw["ticket_types"]),
        schedule=SaleSchedule(
            raw.get("sale_opens_at"),
            raw.get("sale_closes_at"),
            tuple(
                Presale(
                    p["code"], p["opens_at"], p["closes_at"],
                    None if p.get("buyer_ids") is None else frozenset(p["buyer_ids"]),
                )
                for p in raw.get("presales") or ()
            ),
        ),
        revision=int(raw.get("revision", 0)),
    )


class EventCache:
    """``timer`` (monotonic seconds) is for tests that move time past ``absent_ttl_s`` or ``metas_ttl_s``;
    ``listener_redis`` is the connection the change announcements arrive on (none: copies live ``metas_ttl_s``)."""

    def __init__(
        self,
        db: TenantPool,
        redis: Redis,
        *,
        entries_max: int = events_cached_max,
        timer: Callable[[], float] = time.monotonic,
        listener_redis: Redis | None = None,
    ) -> None:
        self._db = db
        self._redis = redis
        self._listener_redis = listener_redis
        self._metas: TTLCache[EventKey, EventMeta] = TTLCache(entries_max, metas_ttl_s, timer=timer)
        self._absent: TTLCache[EventKey, bool] = TTLCache(absent_cached_max, absent_ttl_s, timer=timer)
        # Counts the announcements heard: a load that began before one must not keep what it read.
        self._changes = 0

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
        changes = self._changes
        meta = await self._load(org_id, event_id)
        if meta is None:
            self._absent[key] = True
            raise event_not_found(event_id)
        if changes == self._changes:
            self.remember(meta)
        return meta

    @property
    def changes_heard(self) -> int:
        """How many announcements (and subscription losses) this cache has acted on."""
        return self._changes

    def cached(self, org_id: str, event_id: str) -> EventMeta | None:
        """This process's copy, if it has one (no lookup)."""
        return self._metas.get((org_id, event_id))

    def remember(self, meta: EventMeta) -> None:
        key = (meta.org_id, meta.event_id)
        self._absent.pop(key, None)
        self._metas[key] = meta

    def forget(self, org_id: str, event_id: str) -> None:
        """Drop this process's copy (its meta changed): the next request reads Redis."""
        self._changes += 1
        self._metas.pop((org_id, event_id), None)
        self._absent.pop((org_id, event_id), None)

    def forget_all(self) -> None:
        self._changes += 1
        self._metas.clear()

    async def share(self, meta: EventMeta) -> None:
        """Make a new or changed meta visible to every gateway process (Redis, announced); remember it here."""
        with storage_outage_as_503():
            await event_metas.share_event_meta(self._redis, meta.org_id, meta.event_id, meta.to_dict())
        self.forget(meta.org_id, meta.event_id)
        self.remember(meta)

    async def share_record(self, record: pg_events.EventRecord) -> None:
        """``share`` for a record just written (services/catalog/events.py's SharedEvents)."""
        await self.share(meta_of_record(record))

    def forget_absent(self, org_id: str, event_id: str) -> None:
        self._absent.pop((org_id, event_id), None)

    async def listen(self) -> None:
        """Drop copies as their changes are announced; runs until cancelled, reconnecting."""
        if self._listener_redis is None:
            return
        await Subscription(
            self._listener_redis,
            "event meta listener",
            on_message=self._on_changed,
            channels=(EVENT_METAS_CHANGED_CHANNEL,),
            on_connect=self.forget_all,
            on_disconnect=self.forget_all,
        ).run_forever()

    def _on_changed(self, _channel: str, data: bytes) -> None:
        key = event_metas.parse_changed(data)
        if key is None:
            log.warning("ignoring a malformed meta announcement %r", data[:100])
            return
        self.forget(*key)

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
        with storage_outage_as_503():
            await event_metas.share_event_meta(self._redis, org_id, event_id, meta.to_dict())
        return meta


def event_not_found(event_id: str) -> ApiError:
    return refused(Refusal.EVENT_NOT_FOUND, "no such event", {"event_id": event_id})


def visible_to(principal: Principal, meta: EventMeta) -> EventMeta:
    """The event, unless the caller is a publishable key and the event is a draft: then 404."""
    if principal.publishable and not lifecycle.visible_to_buyers(meta.status):
        raise event_not_found(meta.event_id)
    return meta


def not_on_sale(event_id: str, reason: str | None = None) -> ApiError:
    details: dict[str, Any] = {"event_id": event_id}
    if reason is not None:
        details["reason"] = reason
    return refused(Refusal.NOT_ON_SALE, "the event is not on sale", details)
