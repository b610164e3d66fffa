"""An in-process InventoryClient: the real per-event shell (actors.event_inventory), without Ray.

A fake, not a mock: each event is recovered and served exactly as an inventory actor serves it (fenced epoch,
group commit to Postgres, Redis write-through with published deltas); only the actor boundary is gone, and
commands and results still cross actors.wire's codec.
"""

from __future__ import annotations

import asyncio

import asyncpg
from redis.asyncio import Redis

from actors.clock import Clock, wall_clock
from actors.event_inventory import NOT_ON_SALE, EventInventory
from actors.wire import decode_commands, decode_results, encode_commands
from engine.inventory.commands import Command, Result
from engine.inventory.machine import Inventory
from persistence.db import create_pool


class FakeInventoryClient:
    def __init__(self, database_url: str, redis_url: str, *, clock: Clock = wall_clock) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._events: dict[tuple[str, str], EventInventory] = {}  # by (org, event), as an inventory host keys them
        self._loading = asyncio.Lock()
        self.submitted: list[Command] = []
        self.placements: dict[str, bool] = {}  # event id -> the ``dedicated`` it was last called with

    async def start(self) -> None:
        if self._pool is not None:  # shared by several gateways (tests of many processes): started once
            return
        self._pool = await create_pool(self._database_url, min_size=1, max_size=4)
        self._redis = Redis.from_url(self._redis_url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._events.clear()

    async def ready(self) -> bool:
        return self._pool is not None and self._redis is not None

    # One process serves every event here, so the placement (``dedicated``) picks nothing; it is recorded so that a
    # test can see what the gateway passed.
    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        self.placements[event_id] = dedicated
        owner = await self._owner(org_id, event_id)
        if owner is not None:
            await owner.refresh()  # as an inventory host's activate: the status and limits read again

    async def sweep(self) -> None:
        """One tick of an inventory host's sweeper over every loaded event: expiry, then sold_out in and out."""
        for owner in list(self._events.values()):
            await owner.expire(1_024)
            await owner.sync_sold_out()

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        self.placements[event_id] = dedicated
        self.submitted.append(command)
        owner = await self._owner(org_id, event_id)
        if owner is None:
            return NOT_ON_SALE
        # Through the wire both ways, as an actor gets it: a field the codec drops (who confirmed) shows here.
        [received] = decode_commands(encode_commands([command]))
        [result] = decode_results((await owner.apply([received])).results)
        return result

    def inventory_of(self, event_id: str) -> Inventory:
        """The core serving ``event_id``, for a test to observe what was applied instead of waiting for it to show."""
        [owner] = [owner for (_, served), owner in self._events.items() if served == event_id]
        return owner.inventory

    async def _owner(self, org_id: str, event_id: str) -> EventInventory | None:
        async with self._loading:
            owner = self._events.get((org_id, event_id))
            if owner is None:
                assert self._pool is not None and self._redis is not None, "start() first"
                owner = await EventInventory.recover(org_id, event_id, self._pool, self._redis, clock=self._clock)
                if owner is None:
                    return None
                self._events[(org_id, event_id)] = owner
        return owner if owner.org_id == org_id else None
