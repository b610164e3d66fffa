"""Reading a live hold without asking its inventory: checkout and hold quotes price what a hold holds from the
copy the inventory's store keeps (never Postgres on the hot path, never a round trip to the actor).

``HoldCopies`` is the port; ``WrittenThroughHolds`` reads the engine's copy, the hold records its inventory actors
write through to Redis (persistence/inventory/live_state.py). Another inventory plugged into the gateway (the
load-test baselines) brings the reader of its own store.
"""

from __future__ import annotations

from redis.asyncio import Redis

from engine.inventory.commands import HoldView
from persistence.inventory import live_state


class HoldCopies:
    """A base class, not a Protocol: the gateway registers the process's reader under this type
    (Services.domains), and a lookup by type wants a concrete class."""

    async def read(self, org_id: str, event_id: str, hold_id: str) -> HoldView | None:
        """The hold as its store last had it, or None when it has none. It may be past its ``expires_at`` until
        the inventory removes it: the caller compares."""
        raise NotImplementedError


class WrittenThroughHolds(HoldCopies):
    """The engine's: the inventory actors' write-through of each hold to Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def read(self, org_id: str, event_id: str, hold_id: str) -> HoldView | None:
        return await live_state.read_hold(self._redis, org_id, event_id, hold_id)
