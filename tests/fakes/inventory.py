"""An in-process InventoryClient over real engine.inventory.Inventory objects: a fake, not a mock.

Each activated event gets one Inventory built like the real actor builds it (a fresh epoch from Postgres, sales
from Postgres, live holds from Redis), and every submitted command is applied, then written through exactly as
the actor does: sales to Postgres (fenced by the epoch) before the answer, then the Redis write-through with its
published delta (persistence.live_state). Commands for one event are applied one at a time, in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from engine.commands import Command, Rejected, Result
from engine.inventory import Inventory, InventorySnapshot
from persistence import events as pg_events
from persistence import live_state, sales
from persistence.db import create_pool


@dataclass
class _Loaded:
    org_id: str
    epoch: int
    inventory: Inventory


class FakeInventoryClient:
    def __init__(self, database_url: str, redis_url: str, *, clock: Callable[[], float] = time.time) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._loaded: dict[str, _Loaded] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.submitted: list[Command] = []

    async def start(self) -> None:
        self._pool = await create_pool(self._database_url, min_size=1, max_size=4)
        self._redis = Redis.from_url(self._redis_url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self._loaded.clear()

    async def ready(self) -> bool:
        return self._pool is not None and self._redis is not None

    async def activate(self, org_id: str, event_id: str) -> None:
        async with self._lock(event_id):
            await self._load(org_id, event_id)

    async def submit(self, org_id: str, event_id: str, command: Command) -> Result:
        self.submitted.append(command)
        async with self._lock(event_id):
            loaded = await self._load(org_id, event_id)
            if loaded is None:
                return Rejected("not_on_sale", "the event is not on sale", {"event_id": event_id})
            [result] = loaded.inventory.apply([command], self._clock())
            await self._write_through(loaded)
            return result

    def inventory(self, event_id: str) -> Inventory | None:
        loaded = self._loaded.get(event_id)
        return None if loaded is None else loaded.inventory

    def _lock(self, event_id: str) -> asyncio.Lock:
        return self._locks.setdefault(event_id, asyncio.Lock())

    async def _load(self, org_id: str, event_id: str) -> _Loaded | None:
        loaded = self._loaded.get(event_id)
        if loaded is not None:
            return loaded if loaded.org_id == org_id else None
        assert self._pool is not None and self._redis is not None, "start() first"
        async with self._pool.acquire() as conn:
            taken = await pg_events.take_inventory_epoch(conn, event_id)
            if taken is None:
                return None
            epoch, event, seat_ids = taken
            if event.org_id != org_id:
                return None
            sold = await sales.load_sales(conn, event_id)
        version, holds = await live_state.load_holds(self._redis, org_id, event_id)
        spec = pg_events.inventory_spec(event, seat_ids)
        inventory = Inventory.restore(spec, InventorySnapshot(version, tuple(holds), tuple(sold)), self._clock())
        loaded = _Loaded(org_id, epoch, inventory)
        await self._write_through(loaded)
        self._loaded[event_id] = loaded
        return loaded

    async def _write_through(self, loaded: _Loaded) -> None:
        changes = loaded.inventory.drain_changes()
        if changes is None:
            return
        assert self._pool is not None and self._redis is not None
        if changes.sales or changes.sales_cancelled:
            async with self._pool.acquire() as conn:
                await sales.write_sales(
                    conn,
                    loaded.org_id,
                    loaded.inventory.spec.event_id,
                    loaded.epoch,
                    list(changes.sales.values()),
                    list(changes.sales_cancelled.values()),
                )
        await live_state.write_changes(self._redis, loaded.org_id, loaded.inventory, changes)
