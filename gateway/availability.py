"""Availability for reads and the live websocket, served from this process's memory.

One PSUBSCRIBE per process to every event's delta channel keeps an in-memory AvailabilityView per event current
(bounded LRU). A gap in versions, a full rewrite or a lost subscription drops the copy; the next read takes a
fresh one from Redis (live_state.read_availability), never from Postgres. Deltas that arrive while a copy is being
read are buffered and applied after it, so a read racing a write does not cause a needless gap.
Live websocket subscribers get each event's deltas through a bounded queue (see LiveSubscriber).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import msgpack
from cachetools import LRUCache
from redis.asyncio import Redis

from gateway.errors import storage_outage_as_503
from gateway.subscription import Subscription
from persistence.catalog import events as pg_events
from persistence.inventory import live_state, redis_keys
from persistence.inventory.live_state import AvailabilityView, Delta
from persistence.tenancy import TenantPool

log = logging.getLogger(__name__)

views_cached_max = 1_000
deltas_buffered_max = 1_024
subscriber_queue_max = 256
seat_lists_cached_bytes_max = 64 * 1024 * 1024
_CHANNEL_RE = re.compile(r"vg:([^:]+):\{([^}]+)\}:live")

EventKey = tuple[str, str]  # (org id, event id)


def availability_json(event_id: str, view: AvailabilityView) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "version": view.version,
        "ticket_types": [_counts_json(t) for t in view.ticket_types],
        "seats": {
            "total": view.seats_total,
            "available": view.seats_available,
            "bitmap": base64.b64encode(view.bitmap).decode(),
        },
    }


def delta_json(delta: Delta) -> dict[str, Any]:
    return {
        "type": "delta",
        "version": delta.version,
        "seats_changed": delta.seats_changed,
        "seats_available": delta.seats_available,
        "ticket_types": [_counts_json(t) for t in delta.ticket_types],
    }


def _counts_json(t: live_state.TicketTypeCounts) -> dict[str, Any]:
    return {"code": t.code, "capacity": t.capacity, "available": t.available, "held": t.held, "sold": t.sold}


RESYNC = None  # queued to a subscriber in place of a delta: "send a fresh snapshot"


class LiveSubscriber:
    """One websocket's bounded queue of deltas. On overflow the backlog is dropped and replaced by RESYNC, so a
    slow client gets a fresh snapshot instead of unbounded memory or a silent gap."""

    def __init__(self, queue_max: int = subscriber_queue_max) -> None:
        self.queue: asyncio.Queue[Delta | None] = asyncio.Queue(queue_max)
        self.resyncs = 0

    def offer(self, item: Delta | None) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.resyncs += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)


@dataclass(slots=True)
class _Loading:
    buffered: list[Delta]


class AvailabilityCache:
    def __init__(self, redis: Redis, *, listener_redis: Redis | None = None, views_max: int = views_cached_max) -> None:
        self._redis = redis
        self._listener_redis = listener_redis or redis
        self._views: LRUCache[EventKey, AvailabilityView] = LRUCache(views_max)
        self._loading: dict[EventKey, _Loading] = {}
        self._subscribers: dict[EventKey, set[LiveSubscriber]] = {}
        self.listening = asyncio.Event()

    async def get(self, org_id: str, event_id: str) -> AvailabilityView | None:
        """The event's availability, or None when Redis has none (its inventory was never loaded)."""
        key = (org_id, event_id)
        view = self._views.get(key)
        if view is not None:
            return view
        return await self._load(key)

    def subscribe(self, org_id: str, event_id: str, subscriber: LiveSubscriber) -> None:
        self._subscribers.setdefault((org_id, event_id), set()).add(subscriber)

    def unsubscribe(self, org_id: str, event_id: str, subscriber: LiveSubscriber) -> None:
        key = (org_id, event_id)
        subscribers = self._subscribers.get(key)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[key]

    def on_message(self, channel: str, data: bytes) -> None:
        match = _CHANNEL_RE.fullmatch(channel)
        if match is None:
            return
        key = (match.group(1), match.group(2))
        if key not in self._views and key not in self._loading and key not in self._subscribers:
            return  # nobody here reads this event: skip decoding
        self.on_delta(key, live_state.decode_delta(data))

    def on_delta(self, key: EventKey, delta: Delta) -> None:
        loading = self._loading.get(key)
        if loading is not None and len(loading.buffered) < deltas_buffered_max:
            loading.buffered.append(delta)
        view = self._views.get(key)
        if view is not None and delta.full:
            del self._views[key]  # a rebuilt inventory: its version may even have gone back
        elif view is not None and delta.version > view.version:
            following = view.apply(delta)
            if following is None:
                del self._views[key]
            else:
                self._views[key] = following
        for subscriber in self._subscribers.get(key, ()):
            subscriber.offer(RESYNC if delta.full else delta)

    def drop_all(self) -> None:
        """Forget every copy and tell every subscriber to resync (deltas may have been missed)."""
        self._views.clear()
        for subscribers in self._subscribers.values():
            for subscriber in subscribers:
                subscriber.offer(RESYNC)

    async def listen(self) -> None:
        """Apply every event's deltas as they are published; runs until cancelled, reconnecting."""
        await Subscription(
            self._listener_redis,
            "availability listener",
            on_message=self.on_message,
            patterns=(redis_keys.LIVE_CHANNEL_PATTERN,),
            on_connect=self._connected,
            on_disconnect=self._disconnected,
        ).run_forever()

    def _connected(self) -> None:
        self.drop_all()  # anything published while we were not listening is unknown
        self.listening.set()

    def _disconnected(self) -> None:
        self.listening.clear()
        self.drop_all()

    async def _load(self, key: EventKey) -> AvailabilityView | None:
        loading = self._loading.get(key)
        if loading is not None:
            # Another request is reading this copy now; read on our own rather than wait on it.
            with storage_outage_as_503():
                return await live_state.read_availability(self._redis, *key)
        self._loading[key] = loading = _Loading([])
        try:
            with storage_outage_as_503():
                view = await live_state.read_availability(self._redis, *key)
        finally:
            del self._loading[key]
        if view is None:
            return None
        for delta in loading.buffered:
            if delta.version > view.version:
                following = view.apply(delta)
                if following is None:
                    return view  # a gap after our read: serve what we read, keep no copy
                view = following
        if self.listening.is_set():
            self._views[key] = view
        return view


class SeatListCache:
    """Each event's rendered {"seat_ids": [...]} body (seat ids never change after creation), bounded by bytes."""

    def __init__(self, db: TenantPool, redis: Redis, *, bytes_max: int = seat_lists_cached_bytes_max) -> None:
        self._db = db
        self._redis = redis
        self._bodies: LRUCache[EventKey, bytes] = LRUCache(bytes_max, getsizeof=len)

    async def body(self, org_id: str, event_id: str) -> bytes | None:
        key = (org_id, event_id)
        body = self._bodies.get(key)
        if body is not None:
            return body
        seat_ids = await self._load(org_id, event_id)
        if seat_ids is None:
            return None
        body = json.dumps({"seat_ids": list(seat_ids)}, separators=(",", ":")).encode()
        self._remember(key, body)
        return body

    async def _load(self, org_id: str, event_id: str) -> tuple[str, ...] | None:
        with storage_outage_as_503():
            cached = await live_state.read_seat_ids(self._redis, org_id, event_id)
        if cached is not None:
            return tuple(cached)
        with storage_outage_as_503():
            async with self._db.tenant(org_id) as db:
                seat_ids = await pg_events.list_seat_ids(db, event_id)
        if seat_ids is not None:
            with storage_outage_as_503():
                await self._redis.set(redis_keys.seat_ids(org_id, event_id), _pack(seat_ids), nx=True)
        return seat_ids

    def _remember(self, key: EventKey, body: bytes) -> None:
        if len(body) > self._bodies.maxsize:
            return  # served, not kept: it would evict every other body and still not fit
        self._bodies[key] = body


def _pack(seat_ids: tuple[str, ...]) -> bytes:
    return msgpack.packb(list(seat_ids))


@dataclass(frozen=True)
class AvailabilityReads:
    """The inventory domain's own process objects in the gateway (``Services.domain(AvailabilityReads)``): each
    event's availability copy, kept current by one subscription, and its rendered seat list."""

    availability: AvailabilityCache
    seat_lists: SeatListCache
