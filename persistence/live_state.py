"""Redis as the warm tier of one event's inventory: live holds, the availability bitmap, counters, and the
versioned deltas published on the event's channel.

Redis is a cache the inventory actor can always rebuild: the actor writes each batch's changes here in one
MULTI/EXEC pipeline before it answers, and reads the live holds back when it recovers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis

from engine.commands import HoldView
from engine.inventory import SEAT_AVAILABLE, SEAT_STATE_NAMES, Changes, Inventory
from persistence import redis_keys

bitfield_ops_per_command_max = 512


@dataclass(frozen=True, slots=True)
class TicketTypeCounts:
    code: str
    capacity: int
    available: int
    held: int
    sold: int


@dataclass(frozen=True, slots=True)
class Delta:
    version: int
    seats: dict[int, int]
    seats_changed: dict[str, str]
    seats_available: int
    ticket_types: tuple[TicketTypeCounts, ...]
    full: bool


@dataclass(frozen=True, slots=True)
class AvailabilityView:
    version: int
    seats_total: int
    seats_available: int
    bitmap: bytes
    ticket_types: tuple[TicketTypeCounts, ...]

    def apply(self, delta: Delta) -> AvailabilityView | None:
        """The view after ``delta``, or None when the delta does not follow on (a gap, or a full rewrite)."""
        if delta.full or delta.version != self.version + 1:
            return None
        bitmap = bytearray(self.bitmap)
        for index, state in delta.seats.items():
            mask = 0x80 >> (index % 8)
            if state == SEAT_AVAILABLE:
                bitmap[index // 8] |= mask
            else:
                bitmap[index // 8] &= ~mask & 0xFF
        return AvailabilityView(delta.version, self.seats_total, delta.seats_available, bytes(bitmap), delta.ticket_types)


def _ticket_type_counts(inventory: Inventory) -> tuple[TicketTypeCounts, ...]:
    counts = [TicketTypeCounts(code, *numbers) for code, numbers in inventory.ga_counts().items()]
    seated = inventory.spec.seated_type
    if seated is not None:
        available, held, sold = inventory.seat_counts()
        counts.insert(0, TicketTypeCounts(seated, len(inventory.spec.seat_ids), available, held, sold))
    return tuple(counts)


def _encode_hold(view: HoldView) -> bytes:
    return msgpack.packb(
        [view.buyer_id, list(view.seats), view.ticket_type, view.quantity, list(view.units), view.expires_at]
    )


def _decode_hold(hold_id: str, blob: bytes) -> HoldView:
    buyer_id, seats, ticket_type, quantity, units, expires_at = msgpack.unpackb(blob)
    return HoldView(hold_id, buyer_id, tuple(seats), ticket_type, quantity, tuple(units), expires_at, "held")


def encode_delta(inventory: Inventory, changes: Changes) -> bytes:
    seat_ids = inventory.spec.seat_ids
    seats = [] if changes.full else [[i, s] for i, s in changes.seats.items()]
    return msgpack.packb(
        {
            "v": changes.version,
            "s": seats,
            "n": {seat_ids[i]: SEAT_STATE_NAMES[s] for i, s in seats},
            "sa": inventory.seat_counts()[0],
            "t": [[c.code, c.capacity, c.available, c.held, c.sold] for c in _ticket_type_counts(inventory)],
            "f": changes.full,
        }
    )


def decode_delta(data: bytes) -> Delta:
    raw = msgpack.unpackb(data, strict_map_key=False)
    return Delta(
        version=raw["v"],
        seats={i: s for i, s in raw["s"]},
        seats_changed=raw["n"],
        seats_available=raw["sa"],
        ticket_types=tuple(TicketTypeCounts(*t) for t in raw["t"]),
        full=raw["f"],
    )


async def write_changes(redis: Redis, org_id: str, inventory: Inventory, changes: Changes) -> None:
    """Write one batch's changes and publish its delta, atomically (MULTI/EXEC; one event = one slot)."""
    event_id = inventory.spec.event_id
    holds_key = redis_keys.holds(org_id, event_id)
    expiries_key = redis_keys.hold_expiries(org_id, event_id)
    pipe = redis.pipeline(transaction=True)
    if changes.holds_put:
        pipe.hset(holds_key, mapping={h: _encode_hold(v) for h, v in changes.holds_put.items()})
        pipe.zadd(expiries_key, {h: v.expires_at for h, v in changes.holds_put.items()})
    if changes.holds_removed:
        pipe.hdel(holds_key, *changes.holds_removed)
        pipe.zrem(expiries_key, *changes.holds_removed)
    _queue_bitmap(pipe, org_id, inventory, changes)
    _queue_counts(pipe, org_id, inventory, changes.version)
    pipe.publish(redis_keys.live_channel(org_id, event_id), encode_delta(inventory, changes))
    await pipe.execute()


def _queue_bitmap(pipe: Any, org_id: str, inventory: Inventory, changes: Changes) -> None:
    event_id = inventory.spec.event_id
    key = redis_keys.availability_bitmap(org_id, event_id)
    if changes.full:
        pipe.set(key, inventory.availability_bitmap())
        pipe.set(redis_keys.seat_ids(org_id, event_id), msgpack.packb(list(inventory.spec.seat_ids)))
        return
    items = list(changes.seats.items())
    for start in range(0, len(items), bitfield_ops_per_command_max):
        args: list[Any] = []
        for index, state in items[start : start + bitfield_ops_per_command_max]:
            args += ["SET", "u1", index, 1 if state == SEAT_AVAILABLE else 0]
        pipe.execute_command("BITFIELD", key, *args)


def _queue_counts(pipe: Any, org_id: str, inventory: Inventory, version: int) -> None:
    available, held, sold = inventory.seat_counts()
    mapping: dict[str, Any] = {
        "version": version,
        "seats_total": len(inventory.spec.seat_ids),
        "seats_available": available,
        "seats_held": held,
        "seats_sold": sold,
        "ticket_types": msgpack.packb(
            [[c.code, c.capacity, c.available, c.held, c.sold] for c in _ticket_type_counts(inventory)]
        ),
    }
    pipe.hset(redis_keys.counts(org_id, inventory.spec.event_id), mapping=mapping)


async def load_holds(redis: Redis, org_id: str, event_id: str) -> tuple[int, list[HoldView]]:
    """The last written version and every hold Redis still has (expired ones included: the core drops them)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hget(redis_keys.counts(org_id, event_id), "version")
    pipe.hgetall(redis_keys.holds(org_id, event_id))
    version, blobs = await pipe.execute()
    holds = [_decode_hold(_text(h), blob) for h, blob in blobs.items()]
    return int(version or 0), holds


async def read_availability(redis: Redis, org_id: str, event_id: str) -> AvailabilityView | None:
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(redis_keys.counts(org_id, event_id))
    pipe.get(redis_keys.availability_bitmap(org_id, event_id))
    counts, bitmap = await pipe.execute()
    if not counts:
        return None
    fields = {_text(k): v for k, v in counts.items()}
    return AvailabilityView(
        version=int(fields["version"]),
        seats_total=int(fields["seats_total"]),
        seats_available=int(fields["seats_available"]),
        bitmap=bitmap or b"",
        ticket_types=tuple(TicketTypeCounts(*t) for t in msgpack.unpackb(fields["ticket_types"])),
    )


async def read_seat_ids(redis: Redis, org_id: str, event_id: str) -> Sequence[str] | None:
    blob = await redis.get(redis_keys.seat_ids(org_id, event_id))
    return None if blob is None else msgpack.unpackb(blob)


async def put_event_meta(redis: Redis, org_id: str, event_id: str, meta: dict[str, Any]) -> None:
    await redis.set(redis_keys.event_meta(org_id, event_id), msgpack.packb(meta))


async def get_event_meta(redis: Redis, org_id: str, event_id: str) -> dict[str, Any] | None:
    blob = await redis.get(redis_keys.event_meta(org_id, event_id))
    return None if blob is None else msgpack.unpackb(blob)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
