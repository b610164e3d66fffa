"""The fulfilment actor: checkout's orders worker (services/orders/worker.py: the outbox drain with bounded
retries, the expiry of unpaid orders, the payment reconciler) as a supporting Ray actor, instead of in every
gateway process. One, detached, named ``FULFILMENT_ACTOR_NAME``, restarted by Ray for ever.

It builds its own checkout ports (services/orders/ports.py ``Checkout``) from plain settings
(``FulfilmentConfig``): its own Postgres pool and Redis client, the payment provider's client, the ticket master
key, and the events' inventory actors called from this process (actors/inventory_calls.py).

Recovery: nothing to rebuild. What is owed is the outbox's rows and the pending orders in Postgres, written in the
same transaction as the payment's state change; a new incarnation simply starts draining again. A row claimed by
an incarnation that died stays leased (``DrainPolicy.lease_s``) and is claimed again when its lease ends.

Fencing: unlike the catalog timer (an epoch lease checked in every timed move), these writes need no epoch. The
drain's claim leases each row (``FOR UPDATE SKIP LOCKED``), so two incarnations (or this actor and a gateway
still running its own worker) never work a row at once; every handler is idempotent by its row's key (the
provider's idempotency keys, the inventory's command ids, the ledger's sources, the codes' primary keys), so a
row worked again after its lease ended, by whichever incarnation, repeats only harmless work; and every order
move takes the order's row lock. An older incarnation still running does no harm: it is one more drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from cachetools import LRUCache
from redis.asyncio import Redis

from actors.inventory_calls import InventoryCalls, InventoryPlace, InventoryUnreachable, results
from engine.catalog import pricing
from engine.inventory.commands import Command, Result
from engine.payments.reconcile import ReconcilePolicy
from engine.refusals import Refusal, Refused
from engine.tickets.sealing import MasterKey
from persistence.catalog import events as pg_events
from persistence.db import create_pool
from persistence.payments.simulator import SimulatorProvider
from persistence.tenancy import TenantPool
from services.inventory.holds import WrittenThroughHolds
from services.orders.ports import Checkout
from services.orders.worker import OrdersWorker
from services.outbox import DrainPolicy
from services.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

FULFILMENT_ACTOR_NAME = "orders-fulfilment"
FULFILMENT_ACTOR_OPTIONS: dict[str, Any] = {
    "lifetime": "detached",  # outlives the gateway process that created it, like the catalog timer
    "max_restarts": -1,
    # a call that dies with an incarnation is the caller's to retry: every method is a read or waits for readiness
    "max_task_retries": 0,
    "num_cpus": 0,
    "max_concurrency": 100,
}
pool_connections_max = 6  # the drain runs at most DrainPolicy.concurrency_max handlers; they wait for a connection
redis_socket_s_max = 5.0
restart_backoff_s = 1.0  # the worker's setup failed (Postgres or Redis away): tried again after this long
ready_s_max = 30.0  # ``start`` waits this long for the worker to be running
placements_cached_max = 10_000


@dataclass(frozen=True)
class FulfilmentConfig:
    """Everything the actor is created with: plain values, so Ray can ship them and a restart reuses them."""

    database_url: str = field(repr=False)
    redis_url: str = field(repr=False)
    hosts_count: int
    provider_url: str
    webhook_secret: bytes = field(repr=False)
    master_secret: bytes = field(repr=False)  # the ticket master key's secret (voelgoed/ticket_master_key.py)
    api_key: str | None = field(default=None, repr=False)
    drain: DrainPolicy = field(default_factory=DrainPolicy)
    reconcile: ReconcilePolicy = field(default_factory=ReconcilePolicy)


class CalledInventory:
    """Checkout's ``Inventory`` from this process: each command one batch to the event's actor, retried within
    actors/inventory_calls.py's bounds (a replay is answered from the recovered state, never applied twice)."""

    def __init__(self, calls: InventoryCalls) -> None:
        self._calls = calls

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        name = self._calls.actor_name(org_id, event_id, dedicated)
        try:
            reply = await self._calls.apply(name, org_id, event_id, [command])
        except InventoryUnreachable as error:
            # the handlers' infrastructure refusal: retried by the drain, never taken for a hold lost
            raise Refused(Refusal.INVENTORY_UNAVAILABLE, "the event's inventory is unreachable") from error
        (result,) = results(reply)
        return result


class StoredPlacements:
    """Checkout's ``Placements`` from Postgres: an event's placement is fixed when it is created, so each is read
    once and kept (bounded)."""

    def __init__(self, tenants: TenantPool) -> None:
        self._tenants = tenants
        self._dedicated: LRUCache[tuple[str, str], bool] = LRUCache(placements_cached_max)

    async def dedicated(self, org_id: str, event_id: str) -> bool:
        known = self._dedicated.get((org_id, event_id))
        if known is not None:
            return known
        async with self._tenants.tenant(org_id) as db:
            record = await pg_events.get_event(db, event_id)
        if record is None:
            raise Refused(Refusal.EVENT_NOT_FOUND, "no such event", {"event_id": event_id})
        self._dedicated[(org_id, event_id)] = record.dedicated
        return record.dedicated


class NoQuotes:
    """Checkout's ``PriceLists``: the worker's handlers quote nothing (only a checkout request does)."""

    async def price_list(self, org_id: str, event_id: str) -> pricing.PriceList | None:
        raise RuntimeError("the fulfilment actor quotes no prices")

    async def promo_usage(
        self, org_id: str, event_id: str, code: str, buyer_id: str, *, per_buyer: bool
    ) -> pricing.Usage | None:
        raise RuntimeError("the fulfilment actor quotes no prices")


@contextlib.asynccontextmanager
async def checkout_ports(config: FulfilmentConfig, namespace: str) -> AsyncIterator[tuple[Checkout, TenantPool]]:
    """The worker's ports and stores over connections of this process's own, closed on the way out."""
    pool = await create_pool(config.database_url, min_size=1, max_size=pool_connections_max)
    redis = Redis.from_url(
        config.redis_url, socket_timeout=redis_socket_s_max, socket_connect_timeout=redis_socket_s_max
    )
    provider = SimulatorProvider(config.provider_url, config.webhook_secret, api_key=config.api_key)
    try:
        tenants = TenantPool(pool)
        place = InventoryPlace(namespace, config.database_url, config.redis_url, config.hosts_count)
        inventory = CalledInventory(InventoryCalls(place))
        deps = Checkout(
            units=UnitsOfWork(tenants), redis=redis, prices=NoQuotes(), inventory=inventory,
            holds=WrittenThroughHolds(redis), placements=StoredPlacements(tenants), providers={provider.name: provider},
            master=MasterKey(config.master_secret), provider_name=provider.name, reconcile=config.reconcile,
        )  # fmt: skip
        yield deps, tenants
    finally:
        with contextlib.suppress(Exception):
            await provider.close()
        with contextlib.suppress(Exception):
            await redis.aclose()
        with contextlib.suppress(Exception):
            await pool.close()


@ray.remote
class OrdersActor:
    """The worker starts with the actor (so a restart by Ray resumes it with no call from outside); ``start``
    waits until it runs, ``ready`` and ``stats`` say how it is doing."""

    def __init__(self, config: FulfilmentConfig) -> None:
        self._config = config
        self._namespace = ray.get_runtime_context().namespace
        self._started_at = time.time()
        self._worker: OrdersWorker | None = None
        self._setups_failed = 0
        self._running = asyncio.Event()
        self._task = asyncio.get_event_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with checkout_ports(self._config, self._namespace) as (deps, stores):
                    worker = OrdersWorker(deps, stores, self._config.drain)
                    self._worker = worker
                    self._running.set()
                    log.info("orders worker running in the fulfilment actor (pid %d)", os.getpid())
                    await worker.run_forever()
            except Exception:
                self._running.clear()
                self._setups_failed += 1
                log.exception("the fulfilment actor's worker failed; starting again in %s s", restart_backoff_s)
                await asyncio.sleep(restart_backoff_s)

    async def start(self) -> bool:
        """Whether the worker runs, waiting up to ``ready_s_max`` for it (it started with the actor)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._running.wait(), ready_s_max)
        return self._running.is_set()

    async def ready(self) -> bool:
        return self._running.is_set()

    async def stats(self) -> dict[str, Any]:
        context = ray.get_runtime_context()
        worker = None if self._worker is None else asdict(self._worker.stats)
        return {
            "ready": self._running.is_set(), "pid": os.getpid(), "started_at": self._started_at,
            "restarted": context.was_current_actor_reconstructed, "setups_failed": self._setups_failed,
            "worker": worker,
        }  # fmt: skip


def get_or_create(config: FulfilmentConfig, namespace: str) -> Any:
    """The one fulfilment actor's handle (created with ``config`` if no process has yet). Blocking: call it in a
    thread. An actor already there keeps the config it was created with."""
    return OrdersActor.options(  # type: ignore[attr-defined]
        name=FULFILMENT_ACTOR_NAME, namespace=namespace, get_if_exists=True, **FULFILMENT_ACTOR_OPTIONS
    ).remote(config)


def stop_for_good(namespace: str) -> bool:
    """Kill the fulfilment actor without a restart (this process has joined the cluster); False if none runs.
    ``voelgoed up`` does it at its stop when Ray is not its own: a detached actor would outlive it and go on
    draining with the settings (the simulator, its secrets) of an `up` that is gone."""
    try:
        handle = ray.get_actor(FULFILMENT_ACTOR_NAME, namespace=namespace)
    except ValueError:
        return False
    ray.kill(handle, no_restart=True)
    return True


def main(argv: list[str] | None = None) -> int:
    """`python -m actors.fulfilment --stop ADDRESS NAMESPACE`: stop_for_good from a short-lived driver."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--stop", nargs=2, metavar=("ADDRESS", "NAMESPACE"), required=True)
    address, namespace = parser.parse_args(argv).stop
    ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level=logging.WARNING)
    try:
        print("stopped" if stop_for_good(namespace) else "none running", flush=True)
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
