"""Redis as the warm tier of one event's inventory: live holds, the availability bitmap, counters, and the
versioned deltas published on the event's channel.

Redis is a cache the inventory actor can always rebuild: the actor writes each batch's changes here in one
MULTI/EXEC pipeline before it answers, and reads the live holds back when it recovers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from engine.inventory.commands import HoldView
from engine.inventory.machine import SEAT_AVAILABLE, SEAT_SOLD, SEAT_STATE_NAMES, Changes, Inventory
from persistence.inventory import redis_keys


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
    # bit i (MSB first) is 1 when seat i is sold: with ``bitmap``, tells held from sold (the seat map)
    sold_bitmap: bytes = b""

    def apply(self, delta: Delta) -> AvailabilityView | None:
        """The view after ``delta``, or None when the delta does not follow on (a gap, or a full rewrite)."""
        if delta.full or delta.version != self.version + 1:
            return None
        bitmap = bytearray(self.bitmap)
        sold = bytearray(self.sold_bitmap.ljust(len(self.bitmap), b"\0"))
        for index, state in delta.seats.items():
            mask = 0x80 >> (index % 8)
            if state == SEAT_AVAILABLE:
                bitmap[index // 8] |= mask
            else:
                bitmap[index // 8] &= ~mask & 0xFF
            if state == SEAT_SOLD:
                sold[index // 8] |= mask
            else:
                sold[index // 8] &= ~mask & 0xFF
        return AvailabilityView(
            delta.version, self.seats_total, delta.seats_available, bytes(bitmap), delta.ticket_types, bytes(sold)
        )


def _ticket_type_counts(inventory: Inventory) -> tuple[TicketTypeCounts, ...]:
    seated = [TicketTypeCounts(code, *numbers) for code, numbers in inventory.seated_counts().items()]
    return (*seated, *(TicketTypeCounts(code, *numbers) for code, numbers in inventory.ga_counts().items()))


def _encode_hold(view: HoldView) -> bytes:
    return msgpack.packb(
        [view.buyer_id, list(view.seats), view.ticket_type, view.quantity, list(view.units), view.expires_at]
    )


def _decode_hold(hold_id: str, blob: bytes) -> HoldView:
    buyer_id, seats, ticket_type, quantity, units, expires_at = msgpack.unpackb(blob)
    return HoldView(hold_id, buyer_id, tuple(seats), ticket_type, quantity, tuple(units), expires_at, "held")


def _type_rows(inventory: Inventory) -> list[list[Any]]:
    return [[c.code, c.capacity, c.available, c.held, c.sold] for c in _ticket_type_counts(inventory)]


def _encode_delta(inventory: Inventory, changes: Changes, type_rows: list[list[Any]]) -> bytes:
    seat_ids = inventory.spec.seat_ids
    seats = [] if changes.full else [[i, s] for i, s in changes.seats.items()]
    return msgpack.packb(
        {
            "v": changes.version,
            "s": seats,
            "n": {seat_ids[i]: SEAT_STATE_NAMES[s] for i, s in seats},
            "sa": inventory.seat_counts()[0],
            "t": type_rows,
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


class LiveStateRefused(Exception):
    """Redis refused a write: a newer incarnation owns the event (epoch) or Redis lost a batch (version gap)."""


# Fencing and continuity live in the scripts: every write names its incarnation's epoch and the version it
# follows, so a zombie incarnation cannot write, and a Redis that lost data is noticed rather than patched.
_FENCE_AND_LOAD_LUA = """
local stored = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0')
local epoch = tonumber(ARGV[1])
if stored > epoch then
  return redis.error_reply('VG_REFUSED epoch ' .. stored .. ' is newer than ' .. epoch)
end
redis.call('HSET', KEYS[2], 'epoch', epoch)
return {redis.call('HGET', KEYS[2], 'version') or '0', redis.call('HGETALL', KEYS[1])}
"""

# One script per batch: the batch travels as a single msgpack argument and Redis unpacks it, so the actor-side
# cost stays flat however many holds a batch has (redis-py packs each command argument in Python). A script is
# atomic like MULTI/EXEC; all keys share the event's hash tag, so it runs on one Redis Cluster slot.
_WRITE_BATCH_LUA = """
local batch = cmsgpack.unpack(ARGV[1])
local epoch = tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0')
if epoch ~= batch.epoch then
  return redis.error_reply('VG_REFUSED epoch ' .. epoch .. ' is not ' .. batch.epoch)
end
if not batch.bitmap then
  local version = tonumber(redis.call('HGET', KEYS[3], 'version') or '-1')
  if version ~= batch.version - 1 then
    return redis.error_reply('VG_REFUSED version ' .. version .. ' does not precede ' .. batch.version)
  end
end
for i = 1, #batch.put, 2 do
  redis.call('HSET', KEYS[1], batch.put[i], batch.put[i + 1])
end
for _, hold_id in ipairs(batch.del) do
  redis.call('HDEL', KEYS[1], hold_id)
end
if batch.bitmap then
  redis.call('SET', KEYS[2], batch.bitmap)
  redis.call('SET', KEYS[4], batch.seat_ids)
  redis.call('SET', KEYS[6], batch.sold)
else
  for i = 1, #batch.bits, 2 do
    redis.call('SETBIT', KEYS[2], batch.bits[i], batch.bits[i + 1])
  end
  for i = 1, #batch.sold_bits, 2 do
    redis.call('SETBIT', KEYS[6], batch.sold_bits[i], batch.sold_bits[i + 1])
  end
end
redis.call('HSET', KEYS[3], unpack(batch.counts))
redis.call('PUBLISH', KEYS[5], batch.delta)
return batch.version
"""


async def write_changes(redis: Redis, org_id: str, epoch: int, inventory: Inventory, changes: Changes) -> None:
    """Write one batch's changes and publish its delta, atomically, in one round trip.

    Raises LiveStateRefused when ``epoch`` is no longer the event's, or the stored version is not the one
    before ``changes.version`` (a full rewrite, after a restore, needs only the epoch).
    """
    event_id = inventory.spec.event_id
    type_rows = _type_rows(inventory)
    batch: dict[str, Any] = {
        "epoch": epoch,
        "version": changes.version,
        "put": [x for h, v in changes.holds_put.items() for x in (h, _encode_hold(v))],
        "del": list(changes.holds_removed),
        "counts": [x for pair in _counts(inventory, changes.version, type_rows).items() for x in pair],
        "delta": _encode_delta(inventory, changes, type_rows),
    }
    if changes.full:
        batch["bitmap"] = inventory.availability_bitmap()
        batch["seat_ids"] = msgpack.packb(list(inventory.spec.seat_ids))
        batch["sold"] = inventory.sold_bitmap()
    else:
        batch["bits"] = [x for i, state in changes.seats.items() for x in (i, int(state == SEAT_AVAILABLE))]
        batch["sold_bits"] = [x for i, state in changes.seats.items() for x in (i, int(state == SEAT_SOLD))]
    keys = [
        redis_keys.holds(org_id, event_id),
        redis_keys.availability_bitmap(org_id, event_id),
        redis_keys.counts(org_id, event_id),
        redis_keys.seat_ids(org_id, event_id),
        redis_keys.live_channel(org_id, event_id),
        redis_keys.sold_bitmap(org_id, event_id),
    ]
    # use_bin_type=False: the cmsgpack inside Redis predates the bin types
    await _run(redis, _WRITE_BATCH_LUA, keys, msgpack.packb(batch, use_bin_type=False))


_SCRIPT_SHAS = {script: hashlib.sha1(script.encode()).hexdigest() for script in (_FENCE_AND_LOAD_LUA, _WRITE_BATCH_LUA)}


async def _run(redis: Redis, script: str, keys: list[str], *args: Any) -> Any:
    try:
        try:
            return await redis.evalsha(_SCRIPT_SHAS[script], len(keys), *keys, *args)
        except NoScriptError:  # a new or restarted Redis: load it once, then as before
            await redis.script_load(script)
            return await redis.evalsha(_SCRIPT_SHAS[script], len(keys), *keys, *args)
    except ResponseError as error:
        if "VG_REFUSED" in str(error):
            raise LiveStateRefused(str(error)) from error
        raise


def _counts(inventory: Inventory, version: int, type_rows: list[list[Any]]) -> dict[str, Any]:
    available, held, sold = inventory.seat_counts()
    return {
        "version": version,
        "seats_total": len(inventory.spec.seat_ids),
        "seats_available": available,
        "seats_held": held,
        "seats_sold": sold,
        "ticket_types": msgpack.packb(type_rows),
    }


async def fence_and_load_holds(
    redis: Redis, org_id: str, event_id: str, epoch: int
) -> tuple[int, list[HoldView]]:
    """Claim the event's Redis state for ``epoch`` (refusing if a newer epoch holds it), then read the last
    written version and every hold Redis still has (expired ones included: the core drops them).

    After this returns, writes of older incarnations are refused, so none can slip in before the rebuild.
    """
    keys = [redis_keys.holds(org_id, event_id), redis_keys.counts(org_id, event_id)]
    version, flat = await _run(redis, _FENCE_AND_LOAD_LUA, keys, epoch)
    holds = [_decode_hold(_text(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)]
    return int(version), holds


async def read_marks(redis: Redis, events: Sequence[tuple[str, str]]) -> list[tuple[int, int] | None]:
    """Per (org, event): the (version, epoch) its counts carry, None when Redis has none; one round trip for all.
    An incarnation compares them with what it last wrote: a Redis that lost data (a restart from an older file,
    a wipe, a flush) shows another mark, even for an event no write has touched since."""
    pipe = redis.pipeline(transaction=False)
    for org_id, event_id in events:
        pipe.hmget(redis_keys.counts(org_id, event_id), ["version", "epoch"])
    marks: list[tuple[int, int] | None] = []
    for version, epoch in await pipe.execute():
        marks.append(None if version is None or epoch is None else (int(version), int(epoch)))
    return marks


async def read_availability(redis: Redis, org_id: str, event_id: str) -> AvailabilityView | None:
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(redis_keys.counts(org_id, event_id))
    pipe.get(redis_keys.availability_bitmap(org_id, event_id))
    pipe.get(redis_keys.sold_bitmap(org_id, event_id))
    counts, bitmap, sold = await pipe.execute()
    fields = {_text(k): v for k, v in counts.items()}
    if "version" not in fields:
        return None  # never written, or fenced by a recovery that has not written yet
    return AvailabilityView(
        version=int(fields["version"]),
        seats_total=int(fields["seats_total"]),
        seats_available=int(fields["seats_available"]),
        bitmap=bitmap or b"",
        ticket_types=tuple(TicketTypeCounts(*t) for t in msgpack.unpackb(fields["ticket_types"])),
        sold_bitmap=sold or b"",
    )


async def read_seat_ids(redis: Redis, org_id: str, event_id: str) -> Sequence[str] | None:
    blob = await redis.get(redis_keys.seat_ids(org_id, event_id))
    return None if blob is None else msgpack.unpackb(blob)


async def read_hold(redis: Redis, org_id: str, event_id: str, hold_id: str) -> HoldView | None:
    """A live hold as the last write-through left it (quotes price it from here); None when Redis has none. It may
    be past its ``expires_at`` until the actor's sweeper removes it: the caller compares."""
    blob: bytes | None = await redis.hget(redis_keys.holds(org_id, event_id), hold_id)  # type: ignore[assignment]
    return None if blob is None else _decode_hold(hold_id, blob)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
