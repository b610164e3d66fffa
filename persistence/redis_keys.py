"""The Redis key schema every domain's keys follow; each domain keeps its own keys beside its store
(persistence/<domain>/redis_keys.py), and tests/unit/test_redis_keys.py proves no two domains' keys collide.

Every key starts with ``vg:``. A key of one event carries its org and the ``{event_id}`` hash tag (``event_prefix``),
so one event's keys live in one Redis Cluster slot and one pipeline or Lua script can touch them all, whichever
domain owns them. An org's keys that one script call must touch together share the ``{org_id}`` hash tag instead.
"""

from __future__ import annotations

NAMESPACE = "vg"


def event_prefix(org_id: str, event_id: str) -> str:
    return f"{NAMESPACE}:{org_id}:{{{event_id}}}"


# The shapes of the ids keys carry, for the domains' KEY_PATTERNS (the collision test matches keys against them).
ORG_ID_PATTERN = r"org_[0-9a-f]{32}"
EVENT_ID_PATTERN = r"evt_[0-9a-f]{32}"
EVENT_PREFIX_PATTERN = rf"{NAMESPACE}:{ORG_ID_PATTERN}:\{{{EVENT_ID_PATTERN}\}}"
