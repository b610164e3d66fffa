"""The catalog's Redis keys: each event's hot-path meta, under the event's hash tag."""

from __future__ import annotations

from persistence.redis_keys import EVENT_PREFIX_PATTERN, event_prefix


def event_meta(org_id: str, event_id: str) -> str:
    """STRING msgpack of the event's hot-path metadata (status, ticket types, ttl, placement)."""
    return event_prefix(org_id, event_id) + ":meta"


KEYS = (event_meta,)
KEY_PATTERNS = (rf"{EVENT_PREFIX_PATTERN}:meta",)
