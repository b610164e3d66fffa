"""The Ray actor that owns event inventories: many quiet events on a shared host, or one hot event alone.

An async actor: different events on one host never wait for each other's I/O, while each event's batches are
serialized by its own lock (actors/event_inventory.py). The actor restarts on failure (max_restarts=-1) and
rebuilds each event lazily on its first call, taking a new fencing epoch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import ray
from redis.asyncio import Redis

from actors.event_inventory import (
    INVENTORY_UNAVAILABLE,
    NOT_ON_SALE,
    BatchReply,
    EventInventory,
    InventoryLost,
)
from actors.wire import Row, decode_commands, encode_results
from engine.inventory import InvariantViolation
from persistence.db import create_pool

log = logging.getLogger(__name__)

# Options of every inventory actor. Ray delivers a call at most once (max_task_retries=0): the gateway retries
# batches itself, idempotently, because a failed call may have run.
INVENTORY_ACTOR_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,
    "num_cpus": 0,
    "max_concurrency": 1_000,
}
expire_interval_s = 0.25
expire_holds_per_event_max = 1_024
events_per_host_max = 10_000
host_pool_connections_max = 4
invariant_exit_code = 70


@ray.remote
class InventoryHost:
    def __init__(self, database_url: str, redis_url: str) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._events: dict[str, EventInventory] = {}
        self._loading: dict[str, asyncio.Task[EventInventory | None]] = {}
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._connect_lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._started_at = time.time()

    async def apply(self, org_id: str, event_id: str, rows: Sequence[Row]) -> BatchReply:
        """Apply one batch (commands encoded by actors.wire) and answer encoded results, in order."""
        commands = decode_commands(rows)
        try:
            owner = await self._event(event_id)
            if owner is None or owner.org_id != org_id:
                return BatchReply(encode_results([NOT_ON_SALE] * len(commands)), 0.0, 0.0, 0.0, 0)
            return await owner.apply(commands)
        except InventoryLost as error:
            log.warning("dropping %s: %s", event_id, error)
            self._events.pop(event_id, None)
            return BatchReply(encode_results([INVENTORY_UNAVAILABLE] * len(commands)), 0.0, 0.0, 0.0, 0)
        except InvariantViolation:
            # Stop loudly; Ray restarts the process and the inventory is rebuilt from the truth and re-checked.
            log.critical("invariant broken in %s; exiting", event_id, exc_info=True)
            os._exit(invariant_exit_code)

    async def activate(self, org_id: str, event_id: str) -> bool:
        """Load the event now (after publish) so its availability is in Redis before the first hold."""
        owner = await self._event(event_id)
        return owner is not None and owner.org_id == org_id

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "events": len(self._events), "started_at": self._started_at}

    async def _event(self, event_id: str) -> EventInventory | None:
        owner = self._events.get(event_id)
        if owner is not None:
            return owner
        # One recovery per event even when many batches arrive at once after a restart.
        task = self._loading.get(event_id)
        if task is None:
            task = asyncio.ensure_future(self._recover(event_id))
            self._loading[event_id] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(event_id, None)

    async def _recover(self, event_id: str) -> EventInventory | None:
        pool, redis = await self._connections()
        if len(self._events) >= events_per_host_max:
            raise InventoryLost(f"host is full ({events_per_host_max} events)")
        owner = await EventInventory.recover(event_id, pool, redis)
        if owner is not None:
            self._events[event_id] = owner
        return owner

    async def _connections(self) -> tuple[asyncpg.Pool, Redis]:
        async with self._connect_lock:
            if self._pool is None or self._redis is None:
                self._pool = await create_pool(self._database_url, min_size=1, max_size=host_pool_connections_max)
                self._redis = Redis.from_url(self._redis_url)
                self._sweeper = asyncio.ensure_future(self._sweep_forever())
            return self._pool, self._redis

    async def _sweep_forever(self) -> None:
        """Expire holds on the actor's own clock, a bounded number per event per tick."""
        while True:
            await asyncio.sleep(expire_interval_s)
            for event_id, owner in list(self._events.items()):
                try:
                    await owner.expire(expire_holds_per_event_max)
                except InventoryLost as error:
                    log.warning("dropping %s during expiry: %s", event_id, error)
                    self._events.pop(event_id, None)
                except Exception:
                    log.exception("expiry failed for %s", event_id)
