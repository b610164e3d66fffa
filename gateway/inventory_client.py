"""The gateway's way to an event's inventory actor: coalescing many requests into one actor call, and the
gateway's metrics, over actors/inventory_calls.py (placement, cached handles, bounded retries: a replayed batch is
answered from the recovered state, never applied twice)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from actors.inventory_calls import InventoryCalls, InventoryPlace, InventoryUnreachable, ensure_ray, results
from engine.inventory.commands import Command, Result
from gateway.coalescer import Coalescer, forget_idle
from gateway.inventory_errors import InventoryUnavailable
from gateway.metrics import ACTOR_CALL_SECONDS, ACTOR_RETRIES, COMMIT_SECONDS
from voelgoed.settings import Settings

events_cached_max = 10_000


class InventoryClient(Protocol):
    """What routes need from the inventory: the real client below, or tests/fakes' in-process one.

    ``dedicated`` is the event's placement, from the meta the caller has already read (gateway/event_cache.py): a
    hot event has an actor of its own, the others share the hosts. It is fixed when the event is created.
    """

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result: ...

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None: ...

    async def close(self) -> None: ...


class RayInventoryClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        place = InventoryPlace(
            settings.ray_namespace, settings.database_url, settings.redis_url, settings.inventory_hosts
        )
        self._calls = InventoryCalls(place, on_retry=ACTOR_RETRIES.inc)
        self._coalescers: dict[tuple[str, str], Coalescer[Command, Result]] = {}

    async def start(self) -> None:
        await asyncio.to_thread(ensure_ray, self._settings.ray_address, self._settings.ray_namespace)

    async def close(self) -> None:
        pass  # the Ray connection is the process's: it ends with it

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        key = (org_id, event_id)
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            forget_idle(self._coalescers, events_cached_max)
            # Named once per coalescer: an event's placement never changes, so its batches all go to one actor.
            name = self._calls.actor_name(org_id, event_id, dedicated)
            coalescer = Coalescer(lambda commands: self._send(name, org_id, event_id, commands))
            self._coalescers[key] = coalescer
        return await coalescer.submit(command)

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        name = self._calls.actor_name(org_id, event_id, dedicated)
        try:
            await self._calls.call(name, "activate", org_id, event_id)
        except InventoryUnreachable as error:
            raise InventoryUnavailable() from error

    async def ready(self) -> bool:
        return await self._calls.ping_first_host()

    async def _send(self, name: str, org_id: str, event_id: str, commands: Sequence[Command]) -> list[Result]:
        started = time.perf_counter()
        try:
            reply = await self._calls.apply(name, org_id, event_id, commands)
        except InventoryUnreachable as error:
            raise InventoryUnavailable() from error
        ACTOR_CALL_SECONDS.observe(time.perf_counter() - started)
        if reply.commit_s:
            COMMIT_SECONDS.observe(reply.commit_s)
        return results(reply)
