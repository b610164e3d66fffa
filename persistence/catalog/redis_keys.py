"""The catalog's Redis keys: each event's hot-path meta, under the event's hash tag, and the channel announcing
that an event's meta changed (every gateway process drops its copy: gateway/event_cache.py)."""

from __future__ import annotations

from persistence.redis_keys import EVENT_PREFIX_PATTERN, NAMESPACE, event_prefix


def event_meta(org_id: str, event_id: str) -> str:
    """STRING msgpack of the event's hot-path metadata (status, ticket types, ttl, placement, schedule, revision)."""
    return event_prefix(org_id, event_id) + ":meta"


# Published after every meta write: "<org_id>:<event_id>".
EVENT_METAS_CHANGED_CHANNEL = f"{NAMESPACE}:catalog:metas_changed"

KEYS = (event_meta, lambda: EVENT_METAS_CHANGED_CHANNEL)
KEY_PATTERNS = (rf"{EVENT_PREFIX_PATTERN}:meta", rf"{NAMESPACE}:catalog:metas_changed")
