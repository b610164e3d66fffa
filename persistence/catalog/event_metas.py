"""Each event's hot-path meta in Redis (status, ticket types, ttl, placement, sale schedule), shared by every
gateway process (gateway/event_cache.py reads it on a miss of its own cache).

Writers: the gateway (creation, publish, transitions, edits), the catalog timer (timed moves) and the inventory
(sold_out in and out, capacity). Each writes the meta of the Postgres row it just committed, carrying the row's
revision; the script keeps the newest revision, so writers racing each other converge on the latest, and then
announces the change on ``EVENT_METAS_CHANGED_CHANNEL`` so every process drops its copy.
"""

from __future__ import annotations

from typing import Any

import msgpack
from redis.asyncio import Redis

from persistence.catalog import redis_keys
from persistence.catalog.events import EventRecord

# KEYS[1] the meta; ARGV[1] the msgpack meta, ARGV[2] its revision, ARGV[3] the channel, ARGV[4] "org:event".
# The stored revision is kept in the msgpack itself; Lua's cmsgpack reads it back.
_SHARE_SCRIPT = """
local old = redis.call('GET', KEYS[1])
if old then
    local ok, meta = pcall(cmsgpack.unpack, old)
    if ok and type(meta) == 'table' and tonumber(meta['revision'] or -1) > tonumber(ARGV[2]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""


def _iso_seconds(moment: Any) -> float | None:
    return None if moment is None else float(moment.timestamp())


def record_meta(record: EventRecord) -> dict[str, Any]:
    """The msgpack-able meta of an event as stored (gateway/event_cache.py reads it back as an EventMeta)."""
    return {
        "org_id": record.org_id,
        "status": record.status,
        "hold_ttl_s": record.hold_ttl_s,
        "max_tickets_per_buyer": record.max_tickets_per_buyer,
        "dedicated": record.dedicated,
        "ticket_types": [{"code": t.code, "kind": t.kind, "capacity": t.capacity} for t in record.ticket_types],
        "sale_opens_at": _iso_seconds(record.sale_opens_at),
        "sale_closes_at": _iso_seconds(record.sale_closes_at),
        "presales": [
            {
                "code": p.code,
                "opens_at": p.opens_at.timestamp(),
                "closes_at": p.closes_at.timestamp(),
                "buyer_ids": None if p.buyer_ids is None else list(p.buyer_ids),
            }
            for p in record.presales
        ],
        "revision": record.revision,
    }


async def put_event_meta(redis: Redis, org_id: str, event_id: str, meta: dict[str, Any]) -> None:
    await redis.set(redis_keys.event_meta(org_id, event_id), msgpack.packb(meta))


async def share_event_meta(redis: Redis, org_id: str, event_id: str, meta: dict[str, Any]) -> bool:
    """Store ``meta`` unless Redis has a newer revision, and announce the change; whether it was stored."""
    stored = await redis.eval(
        _SHARE_SCRIPT,
        1,
        redis_keys.event_meta(org_id, event_id),
        msgpack.packb(meta),
        int(meta.get("revision", 0)),
        redis_keys.EVENT_METAS_CHANGED_CHANNEL,
        f"{org_id}:{event_id}",
    )
    return bool(stored)


async def share_record(redis: Redis, record: EventRecord) -> bool:
    """``share_event_meta`` for a row just committed."""
    return await share_event_meta(redis, record.org_id, record.id, record_meta(record))


async def get_event_meta(redis: Redis, org_id: str, event_id: str) -> dict[str, Any] | None:
    blob = await redis.get(redis_keys.event_meta(org_id, event_id))
    return None if blob is None else msgpack.unpackb(blob)


def parse_changed(data: bytes | str) -> tuple[str, str] | None:
    """(org, event) of a message on the changed channel, or None for a malformed one."""
    text = data.decode() if isinstance(data, bytes) else data
    org_id, sep, event_id = text.partition(":")
    return (org_id, event_id) if sep and org_id and event_id else None

