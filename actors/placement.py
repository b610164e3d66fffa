"""Where an event's inventory lives: deterministic, so every gateway finds the owner without a lookup.

Quiet events are spread over a fixed set of host actors by rendezvous hashing (adding a host moves only the
events that now rank it first); a hot event marked ``dedicated`` gets an actor of its own.
"""

from __future__ import annotations

import hashlib

HOST_NAME_PREFIX = "inv-host-"
DEDICATED_NAME_PREFIX = "inv-evt-"
inventory_hosts_max = 256


def host_name(event_id: str, hosts_count: int) -> str:
    if not 1 <= hosts_count <= inventory_hosts_max:
        raise ValueError(f"hosts_count must be 1..{inventory_hosts_max}")
    best = max(range(hosts_count), key=lambda i: _score(event_id, i))
    return f"{HOST_NAME_PREFIX}{best}"


def dedicated_name(org_id: str, event_id: str) -> str:
    return f"{DEDICATED_NAME_PREFIX}{org_id}-{event_id}"


def actor_name(org_id: str, event_id: str, *, dedicated: bool, hosts_count: int) -> str:
    return dedicated_name(org_id, event_id) if dedicated else host_name(event_id, hosts_count)


def _score(event_id: str, host: int) -> int:
    digest = hashlib.blake2b(f"{event_id}|{host}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")
