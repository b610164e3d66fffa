"""The Ray actor that owns event inventories: many quiet events on a shared host, or one hot event alone.

An async actor: different events on one host never wait for each other's I/O, while each event's batches are
serialized by its own lock (actors/event_inventory.py). The actor restarts on failure (max_restarts=-1) and
rebuilds each event lazily on its first call, taking a new fencing epoch.

Tenancy: a shared host serves events of many orgs, so it keys every event by (org, event): a call naming the
wrong org finds no inventory, and its recovery, bound to that org (row-level security), finds no event and
fences nothing. The Redis set of served events stores "org:event", so a restarted host knows each event's org.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import time
from typing import Any

import asyncpg
import ray
from redis.asyncio import Redis

from actors.clock import Clock, wall_clock
from actors.event_inventory import (
    INVENTORY_UNAVAILABLE,
    NOT_ON_SALE,
    BatchReply,
    EventInventory,
    InventoryLost,
)
from actors.wire import decode_commands, encode_results
from engine.inventory.commands import Result
from engine.inventory.machine import InvariantViolation
from persistence.db import create_pool
from persistence.inventory import live_state, redis_keys

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
# how often a host checks that Redis still has what it last wrote for each event: a Redis that lost data is
# otherwise noticed only at the event's next write, which an idle (or sold-out) event may never have
live_state_check_s = 2.0
expire_holds_per_event_max = 1_024
events_per_host_max = 10_000
host_pool_connections_max = 4
invariant_exit_code = 70
EventKey = tuple[str, str]  # (org_id, event_id)
recover_s_max = 30.0
gc_thresholds = (50_000, 20, 20)
redis_socket_s_max = 5.0


@ray.remote
class InventoryHost:
    def __init__(self, database_url: str, redis_url: str, *, clock: Clock = wall_clock) -> None:
        # Batches allocate many short-lived objects; the default gen-0 threshold (700) makes the cyclic collector
        # run hundreds of times per batch. Inventories hold no reference cycles worth collecting promptly.
        gc.freeze()
        gc.set_threshold(*gc_thresholds)
        self._database_url = database_url
        self._redis_url = redis_url
        self._clock = clock
        self._events: dict[EventKey, EventInventory] = {}
        self._loading: dict[EventKey, asyncio.Task[EventInventory | None]] = {}
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._connect_lock = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._rebuilds: set[asyncio.Task[None]] = set()  # events given up for a Redis that lost them, rebuilding
        self._started_at = self._clock()
        # The event loop already runs here: bring back, now, the events this actor served before a restart, so
        # their holds expire and their availability is rewritten without waiting for a buyer's call.
        context = ray.get_runtime_context()
        self._name = f"{context.namespace}/{context.get_actor_name() or f'unnamed-{os.getpid()}'}"
        self._reopening = asyncio.get_event_loop().create_task(self._reopen_served_events())

    async def apply(self, org_id: str, event_id: str, rows: bytes) -> BatchReply:
        """Apply one batch (commands encoded by actors.wire) and answer encoded results, in order."""
        commands = decode_commands(rows)
        key = (org_id, event_id)
        owner = None
        try:
            owner = await asyncio.wait_for(self._event(key), recover_s_max)
            if owner is None or owner.org_id != org_id:  # keyed by org already; checked again all the same
                return _reply([NOT_ON_SALE] * len(commands))
            return await owner.apply(commands)
        except InvariantViolation:
            self._stop_loudly(event_id)
            raise
        except Exception as error:  # InventoryLost, or a recovery that could not reach Postgres or Redis
            self._drop(key, owner, error)
            return _reply([INVENTORY_UNAVAILABLE] * len(commands))

    async def activate(self, org_id: str, event_id: str) -> bool:
        """Load the event now (after publish) so its availability is in Redis before the first hold; and, loaded
        already, read its status and limits again (after a transition or an edit: the sale gate)."""
        try:
            owner = await asyncio.wait_for(self._event((org_id, event_id)), recover_s_max)
            if owner is not None and owner.org_id == org_id:
                await asyncio.wait_for(owner.refresh(), recover_s_max)
        except InvariantViolation:
            self._stop_loudly(event_id)
            raise
        return owner is not None and owner.org_id == org_id

    async def ping(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "events": len(self._events), "started_at": self._started_at}

    async def _event(self, key: EventKey) -> EventInventory | None:
        owner = self._events.get(key)
        if owner is not None:
            return owner
        # One recovery per event even when many batches arrive at once after a restart.
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._recover(key))
            self._loading[key] = task
            # Forget the recovery when it ends, even if every caller stopped waiting for it.
            task.add_done_callback(functools.partial(self._forget_recovery, key))
        return await asyncio.shield(task)

    def _forget_recovery(self, key: EventKey, task: asyncio.Task[EventInventory | None]) -> None:
        if self._loading.get(key) is task:
            del self._loading[key]

    async def _recover(self, key: EventKey) -> EventInventory | None:
        org_id, event_id = key
        pool, redis = await self._connections()
        if len(self._events) >= events_per_host_max:
            raise InventoryLost(f"host is full ({events_per_host_max} events)")
        owner = await EventInventory.recover(org_id, event_id, pool, redis, clock=self._clock)
        served = redis_keys.served_events(self._name)
        member = redis_keys.served_event_member(org_id, event_id)
        if owner is None:
            await redis.srem(served, member)
        else:
            self._events[key] = owner
            await redis.sadd(served, member)
        return owner

    async def _reopen_served_events(self) -> None:
        served = redis_keys.served_events(self._name)
        try:
            _, redis = await self._connections()
            members = [m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(served)]
        except Exception:
            log.exception("could not list the events %s served before; they reopen on their next call", self._name)
            return
        keys = []
        for member in members:
            key = redis_keys.parse_served_event_member(member)
            if key is None:  # written before members carried their org: it reopens on its next call instead
                await _forget_member(redis, served, member)
            else:
                keys.append(key)
        for key in sorted(keys)[:events_per_host_max]:
            await self._open_now(key)
        log.info("%s reopened %d events", self._name, len(self._events))

    async def _connections(self) -> tuple[asyncpg.Pool, Redis]:
        async with self._connect_lock:
            if self._pool is None or self._redis is None:
                self._pool = await create_pool(self._database_url, min_size=1, max_size=host_pool_connections_max)
                self._redis = Redis.from_url(
                    self._redis_url, socket_timeout=redis_socket_s_max, socket_connect_timeout=redis_socket_s_max
                )
                self._sweeper = asyncio.ensure_future(self._sweep_forever())
            return self._pool, self._redis

    async def _sweep_forever(self) -> None:
        """Expire holds on the actor's own clock, a bounded number per event per tick; every
        ``live_state_check_s``, check Redis kept every event's state."""
        checked_at = time.monotonic()
        while True:
            await asyncio.sleep(expire_interval_s)
            if time.monotonic() - checked_at >= live_state_check_s:
                checked_at = time.monotonic()
                await self._check_live_states()
            for key, owner in list(self._events.items()):
                try:
                    await owner.expire(expire_holds_per_event_max)
                    await owner.sync_sold_out()
                except InvariantViolation:
                    self._stop_loudly(key[1])
                except Exception as error:
                    self._drop(key, owner, error)

    async def _check_live_states(self) -> None:
        """Every event's (version, epoch) in Redis against what its incarnation last wrote, in one round trip; an
        event that differs is checked again under its lock (a write may have been in flight) and, if Redis lost
        its state, dropped and rebuilt at once, which rewrites Redis (nothing waits for a buyer's call)."""
        owners = list(self._events.items())
        if not owners or self._redis is None:
            return
        try:
            marks = await asyncio.wait_for(live_state.read_marks(self._redis, [k for k, _ in owners]), recover_s_max)
        except Exception as error:  # Redis away: every write fails and drops its event meanwhile; next check
            log.warning("could not check the events' state in Redis: %r", error)
            return
        for (key, owner), mark in zip(owners, marks, strict=True):
            if mark == owner.live_mark():
                continue
            try:
                if await owner.live_state_kept():
                    continue
            except Exception as error:
                self._drop(key, owner, error)
                continue
            self._drop(key, owner, InventoryLost(f"{key[1]}: Redis lost its state (it has {mark})"))
            rebuild = asyncio.ensure_future(self._open_now(key))
            self._rebuilds.add(rebuild)
            rebuild.add_done_callback(self._rebuilds.discard)

    async def _open_now(self, key: EventKey) -> None:
        """The event loaded (rebuilt) now rather than at its next call; a failure leaves it to that call."""
        try:
            await asyncio.wait_for(self._event(key), recover_s_max)
        except InvariantViolation:
            self._stop_loudly(key[1])
        except Exception as error:
            log.warning("could not open %s: %r (it opens on its next call)", key, error)

    def _drop(self, key: EventKey, owner: EventInventory | None, error: BaseException) -> None:
        """Forget this incarnation of the event (never a newer one); the next call rebuilds it."""
        log.warning("dropping %s: %r", key, error, exc_info=not isinstance(error, InventoryLost))
        if owner is not None and self._events.get(key) is owner:
            del self._events[key]

    def _stop_loudly(self, event_id: str) -> None:
        # A broken invariant is never repaired in place: exit, let Ray restart the process, and rebuild every
        # event from the truth, where the invariants are checked again before serving.
        log.critical("invariant broken in %s; exiting", event_id, exc_info=True)
        os._exit(invariant_exit_code)


async def _forget_member(redis: Redis, served: str, member: str) -> None:
    try:
        await redis.srem(served, member)
    except Exception:
        log.warning("could not remove %r from %s", member, served, exc_info=True)


def _reply(results: list[Result]) -> BatchReply:
    return BatchReply(encode_results(results), 0.0)
