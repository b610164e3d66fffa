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
    """SET of the events an inventory actor serves ("<org_id>:<event_id>", see served_event_member), so a
    restarted actor reopens them at once, each bound to its org."""
    return f"vg:inventory:{actor_name}:events"


def served_event_member(org_id: str, event_id: str) -> str:
    return f"{org_id}:{event_id}"


def parse_served_event_member(member: str) -> tuple[str, str] | None:
    """(org_id, event_id), or None for a member without an org (written by an older version)."""
    org_id, sep, event_id = member.partition(":")
    return (org_id, event_id) if sep and org_id and event_id else None


# Rate limits (persistence/rate_limit.lua). An org's buckets share the hash tag {org_id}, so one script call may
# check a request's key, address and buyer buckets together on Redis Cluster; the platform-wide login buckets share
# {login} for the same reason. Keys never hold an e-mail address in clear.
def rate_bucket(org_id: str, route_class: str, subject: str, *parts: str) -> str:
    """STRING: one GCRA bucket's TAT (us), e.g. rate_bucket(org, "holds", "buyer", event_id, buyer_id)."""
    return f"vg:{{{org_id}}}:rl:{route_class}:{subject}:" + ":".join(parts)


def rate_quota(org_id: str, key_holder_id: str) -> str:
    """HASH {d: UTC day number, n: requests that day}: the key's daily quota."""
    return f"vg:{{{org_id}}}:rl:quota:{key_holder_id}"


def login_bucket(subject: str, value: str) -> str:
    """STRING: a platform-wide login failure bucket, per account (hashed e-mail) or per address."""
    if subject == "account":
        value = hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"vg:rl:{{login}}:{subject}:{value}"


def public_rate_bucket(route_class: str, ip: str) -> str:
    """STRING: a platform-wide bucket of an address's requests to routes without a key (login, refresh, accept)."""
    return f"vg:rl:public:{route_class}:ip:{ip}"


def auth_failure_bucket(ip: str) -> str:
    """STRING: the platform-wide bucket of an address's failed authentications."""
    return f"vg:rl:authfail:{ip}"
