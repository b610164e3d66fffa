"""Each event's hot-path meta in Redis (status, ticket types, ttl, placement), shared by every gateway process
(gateway/event_cache.py writes it at creation and at publish, and reads it on a miss of its own cache)."""

from __future__ import annotations

from typing import Any

import msgpack
from redis.asyncio import Redis

from persistence.catalog import redis_keys


async def put_event_meta(redis: Redis, org_id: str, event_id: str, meta: dict[str, Any]) -> None:
    await redis.set(redis_keys.event_meta(org_id, event_id), msgpack.packb(meta))


async def get_event_meta(redis: Redis, org_id: str, event_id: str) -> dict[str, Any] | None:
    blob = await redis.get(redis_keys.event_meta(org_id, event_id))
    return None if blob is None else msgpack.unpackb(blob)
