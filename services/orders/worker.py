"""The orders worker: the loop that drains checkout's outbox topics (services/orders/fulfilment.py) and expires
unpaid orders (services/orders/expiry.py), a pass every ``poll_s`` (at once again while a pass found work), and
beside it the reconcile sweep (services/orders/reconciler.py) every ``ReconcilePolicy.every_s``: a loop of its
own, since its provider calls may take their full bounds and the drain must not wait for them.

It runs in every gateway process beside the routes (gateway/app.py), or in the one supporting actor
(actors/fulfilment.py, VOELGOED_ORDERS_WORKER=actor, as under `voelgoed up`); several at once are safe, since a claim
leases its rows (SKIP LOCKED) and every handler is idempotent by its row's key. Each pass is bounded
(services/outbox.py ``DrainPolicy``), and a pass that fails (Postgres away) is logged and tried again after
``poll_s``: nothing it owed is lost, since the rows stay in the outbox. A reconcile sweep that fails likewise is
logged and tried again a period later (its attempts are still pending, so still found).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass

from persistence.outbox import Claimed
from services import outbox as drain
from services.catalog.lifecycle import EVENT_CANCELLED_TOPIC
from services.orders.cancellation import end_orders_of_cancelled_event
from services.orders.expiry import expire_due
from services.orders.fulfilment import HANDLERS, Handler
from services.orders.ports import Checkout
from services.orders.reconciler import reconcile_due

log = logging.getLogger(__name__)
poll_s = 0.2


@dataclass(slots=True)
class WorkerStats:
    """What the worker has done since it started: for operators and tests (the fulfilment actor's ``stats``)."""

    passes: int = 0
    passes_failed: int = 0
    claimed: int = 0
    done: int = 0
    retried: int = 0
    stuck: int = 0
    sweeps: int = 0
    sweeps_failed: int = 0
    reconciled: int = 0

    def count(self, done: drain.Pass) -> None:
        self.passes += 1
        self.claimed += done.claimed
        self.done += done.done
        self.retried += done.retried
        self.stuck += done.stuck


class OrdersWorker:
    def __init__(self, deps: Checkout, stores: drain.Stores, policy: drain.DrainPolicy | None = None) -> None:
        self._deps = deps
        self._stores = stores
        self._policy = policy or drain.DrainPolicy()
        self.stats = WorkerStats()
        self._handlers: dict[str, drain.RowHandler] = {
            topic: functools.partial(_bound, handler, deps)
            for topic, handler in {**HANDLERS, EVENT_CANCELLED_TOPIC: end_orders_of_cancelled_event}.items()
        }

    async def pass_once(self) -> drain.Pass:
        await expire_due(self._deps, self._stores)
        return await drain.drain_once(self._stores, self._handlers, self._policy, self._deps.clock)

    async def run_forever(self) -> None:
        reconciling = asyncio.ensure_future(self._reconcile_forever())
        try:
            await self._drain_forever()
        finally:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling

    async def _drain_forever(self) -> None:
        while True:
            try:
                done = await self.pass_once()
            except Exception:
                log.exception("orders worker pass failed; again in %s s", poll_s)
                self.stats.passes_failed += 1
                done = drain.Pass(0, 0, 0, 0)
            self.stats.count(done)
            if done.claimed < self._policy.rows_per_pass_max:
                await asyncio.sleep(poll_s)

    async def _reconcile_forever(self) -> None:
        every_s = self._deps.reconcile.every_s
        while True:
            try:
                self.stats.reconciled += await reconcile_due(self._deps, self._stores)
            except Exception:
                log.exception("reconcile sweep failed; again in %s s", every_s)
                self.stats.sweeps_failed += 1
            self.stats.sweeps += 1
            await asyncio.sleep(every_s)


async def _bound(handler: Handler, deps: Checkout, row: Claimed) -> None:
    await handler(deps, row)
