"""The Redis key schema. Every event key carries its org and the `{event_id}` hash tag, so one event's keys
live in one Redis Cluster slot and one pipeline (or Lua script) can touch them all."""

from __future__ import annotations

import hashlib


def event_prefix(org_id: str, event_id: str) -> str:
    return f"vg:{org_id}:{{{event_id}}}"


def holds(org_id: str, event_id: str) -> str:
    """HASH hold_id -> msgpack hold (the live holds; each carries its expires_at, and the actor expires them)."""
    return event_prefix(org_id, event_id) + ":holds"


def availability_bitmap(org_id: str, event_id: str) -> str:
    """STRING bitmap: bit i (MSB first) is 1 when seat i is available."""
    return event_prefix(org_id, event_id) + ":avail"


def counts(org_id: str, event_id: str) -> str:
    """HASH: epoch (the owning incarnation), version, seats_total, seats_available, seats_held, seats_sold, and
    ticket_types -> msgpack [[code, capacity, available, held, sold], ...]."""
    return event_prefix(org_id, event_id) + ":counts"


def event_meta(org_id: str, event_id: str) -> str:
    """STRING msgpack of the event's hot-path metadata (status, ticket types, ttl, placement)."""
    return event_prefix(org_id, event_id) + ":meta"


def seat_ids(org_id: str, event_id: str) -> str:
    """STRING msgpack list of seat ids in index order."""
    return event_prefix(org_id, event_id) + ":seat_ids"


def live_channel(org_id: str, event_id: str) -> str:
    """Pub/sub channel of the event's versioned availability deltas."""
    return event_prefix(org_id, event_id) + ":live"


LIVE_CHANNEL_PATTERN = "vg:*:live"


def idempotency(org_id: str, key_holder_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"vg:{org_id}:idem:{key_holder_id}:{digest}"


def api_key(prefix: str) -> str:
    """STRING msgpack mirror of one API key row, looked up by its public prefix."""
    return f"vg:apikey:{prefix}"


API_KEYS_REVOKED_CHANNEL = "vg:apikeys:revoked"


def served_events(actor_name: str) -> str:
    """SET of the event ids an inventory actor serves, so a restarted actor reopens them at once."""
    return f"vg:inventory:{actor_name}:events"
