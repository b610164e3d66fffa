"""The inventory's Redis keys: an event's live holds, availability bitmap, counts, seat ids and delta channel
(all under the event's hash tag), and the set of events each inventory actor serves."""

from __future__ import annotations

from persistence.redis_keys import EVENT_PREFIX_PATTERN, NAMESPACE, event_prefix


def holds(org_id: str, event_id: str) -> str:
    """HASH hold_id -> msgpack hold (the live holds; each carries its expires_at, and the actor expires them)."""
    return event_prefix(org_id, event_id) + ":holds"


def availability_bitmap(org_id: str, event_id: str) -> str:
    """STRING bitmap: bit i (MSB first) is 1 when seat i is available."""
    return event_prefix(org_id, event_id) + ":avail"


def sold_bitmap(org_id: str, event_id: str) -> str:
    """STRING bitmap: bit i (MSB first) is 1 when seat i is sold (with the availability bitmap: held or sold)."""
    return event_prefix(org_id, event_id) + ":sold"


def counts(org_id: str, event_id: str) -> str:
    """HASH: epoch (the owning incarnation), version, seats_total, seats_available, seats_held, seats_sold, and
    ticket_types -> msgpack [[code, capacity, available, held, sold], ...]."""
    return event_prefix(org_id, event_id) + ":counts"


def seat_ids(org_id: str, event_id: str) -> str:
    """STRING msgpack list of seat ids in index order."""
    return event_prefix(org_id, event_id) + ":seat_ids"


def live_channel(org_id: str, event_id: str) -> str:
    """Pub/sub channel of the event's versioned availability deltas."""
    return event_prefix(org_id, event_id) + ":live"


LIVE_CHANNEL_PATTERN = f"{NAMESPACE}:*:live"


def served_events(actor_name: str) -> str:
    """SET of the events an inventory actor serves ("<org_id>:<event_id>", see served_event_member), so a
    restarted actor reopens them at once, each bound to its org."""
    return f"{NAMESPACE}:inventory:{actor_name}:events"


def served_event_member(org_id: str, event_id: str) -> str:
    return f"{org_id}:{event_id}"


def parse_served_event_member(member: str) -> tuple[str, str] | None:
    """(org_id, event_id), or None for a member without an org (written by an older version)."""
    org_id, sep, event_id = member.partition(":")
    return (org_id, event_id) if sep and org_id and event_id else None


KEYS = (holds, availability_bitmap, sold_bitmap, counts, seat_ids, live_channel, served_events)
KEY_PATTERNS = (
    rf"{EVENT_PREFIX_PATTERN}:(holds|avail|sold|counts|seat_ids|live)",
    rf"{NAMESPACE}:inventory:[^:]+:events",
)
