"""The catalog timer: timed transitions (published -> on_sale at sale_opens_at, -> closed at sale_closes_at) and
presale openings (the inventory brought live), with no cron outside the platform.

``TimerCore`` is the timer without Ray: a bounded heap of (due time, org, event) planned from Postgres, fired on
its own clock. ``CatalogTimer`` is the Ray actor around it: one, detached, named ``TIMER_ACTOR_NAME``, restarted
by Ray for ever.

Recovery: the plan lives only in memory; Postgres (each event's status and schedule) is the truth. A new
incarnation takes the next epoch of the timer's lease (fencing out every older one: each timed move checks the
lease in its own transaction), scans every org's events with a timed move pending (the soonest ``timers_max``),
and plans each at its next time; a time already past is due at once, so a move missed while the timer was down
fires as soon as it is back. A rescan every ``rescan_interval_s`` catches what a lost ``changed`` call missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from typing import Any

import ray
from redis.asyncio import Redis

from actors.clock import Clock, wall_clock
from actors.inventory_host import INVENTORY_ACTOR_OPTIONS, InventoryHost
from actors.placement import actor_name
from engine.catalog.presales import SaleSchedule
from engine.catalog.timed import next_wake
from persistence.catalog import event_metas
from persistence.catalog import events as pg_events
from persistence.catalog import lifecycle as pg_lifecycle
from persistence.db import create_pool
from persistence.tenancy import TenantPool
from services.catalog.events import Activations
from services.catalog.lifecycle import fire_timed
from services.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

TIMER_ACTOR_NAME = "catalog-timer"
TIMER_ACTOR_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",
    "max_restarts": -1,
    "max_task_retries": 0,
    "num_cpus": 0,
    "max_concurrency": 100,
}
timer_tick_s_max = 0.2  # the loop looks at its plan at least this often: a due time fires within it
rescan_interval_s = 30.0
timers_max = 10_000  # events planned at once (the soonest); the rest are planned by a later scan
fire_s_max = 10.0  # one timed move, its transaction and after-commit steps together
fire_retry_s = 1.0  # a move that failed is tried again after this long (until it succeeds or is no longer due)
fires_per_pass_max = 1_000  # timed moves per pass of the loop: the rest go in the next pass, a tick later
pool_connections_max = 2
redis_socket_s_max = 5.0
activate_attempts_max = 5
activate_s_max = 10.0
activate_backoff_s = 0.2

EventKey = tuple[str, str]  # (org id, event id)


class TimerFenced(Exception):
    """A newer incarnation of the timer took the lease: this one must stop firing."""


class RedisMetas:
    """The timer's ``SharedEvents``: every gateway process learns a timed move's meta through Redis."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def share_record(self, record: pg_events.EventRecord) -> None:
        await event_metas.share_record(self._redis, record)


class TimerCore:
    def __init__(
        self, tenants: TenantPool, redis: Redis, activations: Activations, *, clock: Clock = wall_clock,
        lease: str = pg_lifecycle.TIMER_LEASE,
    ) -> None:
        self._tenants = tenants
        self._units = UnitsOfWork(tenants)
        self._shared = RedisMetas(redis)
        self._activations = activations
        self._clock = clock
        self._lease = lease
        self.epoch: int | None = None
        self._heap: list[tuple[float, str, str]] = []
        self._planned: dict[EventKey, float] = {}
        self._wake = asyncio.Event()
        self.fired: list[tuple[str, str, str]] = []  # (org, event, status after), newest last: for tests and logs

    async def start(self) -> None:
        """Take the lease (fencing out older incarnations), then plan every pending timed move from Postgres."""
        async with self._tenants.unscoped("the catalog timer's lease is the platform's, not an org's") as conn:
            self.epoch = await pg_lifecycle.take_timer_lease(conn, self._lease)
        await self.rescan()
        log.info("catalog timer started at epoch %d with %d events planned", self.epoch, len(self._planned))

    async def rescan(self) -> None:
        async with self._tenants.unscoped("the catalog timer plans the timed moves of every org's events") as conn:
            timed = await pg_lifecycle.timed_events(conn, timers_max)
        for event in timed:  # one scan, no read per event
            self._plan(event.org_id, event.event_id, event.status, event.schedule)

    async def changed(self, org_id: str, event_id: str) -> None:
        """Plan the event again from what Postgres has (its schedule or status changed)."""
        async with self._tenants.tenant(org_id) as db:
            record = await pg_events.get_event(db, event_id)
        self._plan_record(org_id, event_id, record)

    def _plan_record(self, org_id: str, event_id: str, record: pg_events.EventRecord | None) -> None:
        if record is None:
            self._plan(org_id, event_id, None, None)
        else:
            self._plan(org_id, event_id, record.status, record.schedule())

    def _plan(self, org_id: str, event_id: str, status: str | None, schedule: SaleSchedule | None) -> None:
        key = (org_id, event_id)
        at = None if status is None or schedule is None else next_wake(status, schedule, self._clock())
        if at is None:
            self._planned.pop(key, None)
            return
        if key not in self._planned and len(self._planned) >= timers_max:
            return  # bounded: a later rescan plans it once sooner ones have fired
        if self._planned.get(key) == at:
            return
        self._planned[key] = at
        heapq.heappush(self._heap, (at, org_id, event_id))
        self._wake.set()

    def planned_at(self, org_id: str, event_id: str) -> float | None:
        return self._planned.get((org_id, event_id))

    def next_due_at(self) -> float | None:
        while self._heap and self._planned.get((self._heap[0][1], self._heap[0][2])) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded by a later plan of the same event
        return self._heap[0][0] if self._heap else None

    async def fire_due(self) -> int:
        """Fire every planned time that has come; the number fired. Raises TimerFenced once a newer timer runs."""
        assert self.epoch is not None, "start() first"
        count = 0
        while count < fires_per_pass_max and (at := self.next_due_at()) is not None and at <= self._clock():
            _, org_id, event_id = heapq.heappop(self._heap)
            del self._planned[(org_id, event_id)]
            count += 1
            try:
                record = await asyncio.wait_for(
                    fire_timed(
                        self._units, self._shared, self._activations, org_id, event_id, self._clock(), self.epoch
                    ),
                    fire_s_max,
                )
            except pg_lifecycle.Fenced as error:
                raise TimerFenced(str(error)) from error
            except Exception as error:
                log.warning("timed move of %s failed: %r; trying again in %s s", event_id, error, fire_retry_s)
                self._planned[(org_id, event_id)] = self._clock() + fire_retry_s
                heapq.heappush(self._heap, (self._clock() + fire_retry_s, org_id, event_id))
                continue
            if record is not None:
                self.fired.append((org_id, event_id, record.status))
                del self.fired[:-1_000]
            self._plan_record(org_id, event_id, record)
        return count

    async def run_forever(self) -> None:
        """Fire due times as they come, rescan now and then; until cancelled or fenced out."""
        next_scan = self._clock() + rescan_interval_s
        while True:
            if self._clock() >= next_scan:
                try:
                    await self.rescan()
                except Exception:
                    log.exception("catalog timer rescan failed; next one in %s s", rescan_interval_s)
                next_scan = self._clock() + rescan_interval_s
            try:
                await self.fire_due()
            except TimerFenced:
                log.warning("catalog timer epoch %s fenced out by a newer incarnation; stopping", self.epoch)
                return
            at = self.next_due_at()
            wait_s = timer_tick_s_max if at is None else min(timer_tick_s_max, max(0.0, at - self._clock()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)


class RayActivations:
    """The timer's ``Activations``: the event's inventory actor (found by placement), bounded retries."""

    def __init__(self, namespace: str, hosts_count: int, database_url: str, redis_url: str) -> None:
        self._namespace = namespace
        self._hosts_count = hosts_count
        self._urls = (database_url, redis_url)

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        name = actor_name(org_id, event_id, dedicated=dedicated, hosts_count=self._hosts_count)
        for attempt in range(activate_attempts_max):
            try:
                handle = await asyncio.wait_for(asyncio.to_thread(self._handle, name), activate_s_max)
                ref = handle.activate.remote(org_id, event_id)
                await asyncio.wait_for(asyncio.wrap_future(ref.future()), activate_s_max)
                return
            except Exception as error:
                log.info("activating %s on %s failed (attempt %d): %r", event_id, name, attempt + 1, error)
                await asyncio.sleep(activate_backoff_s * (attempt + 1))
        raise RuntimeError(f"could not activate {event_id} on {name}")

    def _handle(self, name: str) -> Any:
        return InventoryHost.options(  # type: ignore[attr-defined]
            name=name, namespace=self._namespace, get_if_exists=True, **INVENTORY_ACTOR_OPTIONS
        ).remote(*self._urls)


@ray.remote
class CatalogTimer:
    def __init__(self, database_url: str, redis_url: str, hosts_count: int) -> None:
        namespace = ray.get_runtime_context().namespace
        self._urls = (database_url, redis_url)
        self._activations = RayActivations(namespace, hosts_count, database_url, redis_url)
        self._core: TimerCore | None = None
        self._ready = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        database_url, redis_url = self._urls
        pool = await create_pool(database_url, min_size=1, max_size=pool_connections_max)
        redis = Redis.from_url(redis_url, socket_timeout=redis_socket_s_max, socket_connect_timeout=redis_socket_s_max)
        while True:
            try:
                core = TimerCore(TenantPool(pool), redis, self._activations)
                await core.start()
                self._core = core
                self._ready.set()
                await core.run_forever()
                return  # fenced out: a newer timer runs
            except Exception:
                log.exception("catalog timer failed; starting again in %s s", fire_retry_s)
                await asyncio.sleep(fire_retry_s)

    async def changed(self, org_id: str, event_id: str) -> None:
        await asyncio.wait_for(self._ready.wait(), fire_s_max)
        assert self._core is not None
        await self._core.changed(org_id, event_id)

    async def ping(self) -> dict[str, Any]:
        return {"ready": self._ready.is_set(), "epoch": None if self._core is None else self._core.epoch}
