"""The reconciler: payment attempts stuck pending are settled by asking the provider.

An outcome reaches the platform by webhook only; when one is lost, the order would stay pending until its window
ends (and a buyer who paid would get a refund instead of tickets). So every ``ReconcilePolicy.every_s`` the
orders worker (services/orders/worker.py) runs ``reconcile_due``: the attempts of pending orders with an intent
and no recorded outcome, quiet for ``after_s``, at most ``per_sweep_max`` of them, least recently asked first,
across every org. Each is asked with ``get_intent`` (the provider client bounds each call), a few at a time, and
what the answer means (engine/payments/reconcile.py) is applied through the webhook's own path
(services/orders/payments.py ``apply_fact``), recorded as ``reconcile:<intent>:<status>``: one application, and a
real webhook arriving afterwards is a replay for the order. An attempt with nothing to settle (still processing,
the provider away or refusing) is touched, so it is asked again only after another ``after_s``: the asking stays
bounded whatever the provider does, and one failure never stops the sweep.
"""

from __future__ import annotations

import asyncio
import logging

from engine.payments import reconcile
from engine.payments.provider import ProviderError
from persistence import orders as pg_orders
from services.orders.payments import ProviderFact, apply_fact
from services.orders.ports import RECONCILER_ACTOR, Checkout
from services.unit_of_work import Platform

log = logging.getLogger(__name__)


async def reconcile_due(deps: Checkout, platform: Platform) -> int:
    """One sweep; how many attempts it settled."""
    policy = deps.reconcile
    async with platform.unscoped("the reconciler finds every org's payment attempts stuck pending") as conn:
        due = await pg_orders.unsettled_attempts(conn, reconcile.UNSETTLED, policy.after_s, policy.per_sweep_max)
    slots = asyncio.Semaphore(policy.asks_in_flight_max)

    async def bounded(attempt: pg_orders.Unsettled) -> bool:
        async with slots:
            return await _reconcile_one(deps, attempt)

    settled = await asyncio.gather(*(bounded(attempt) for attempt in due))
    return sum(settled)


async def _reconcile_one(deps: Checkout, attempt: pg_orders.Unsettled) -> bool:
    try:
        settled = await _settle(deps, attempt)
    except ProviderError as error:
        log.warning("reconciler: the provider did not answer for %s (%s); asked again later", attempt.intent_id, error)
        settled = False
    except Exception:
        log.exception("reconciler: settling attempt %s failed; asked again later", attempt.attempt_id)
        settled = False
    if not settled:
        await _touch(deps, attempt)
    return settled


async def _settle(deps: Checkout, attempt: pg_orders.Unsettled) -> bool:
    intent = await deps.provider(attempt.provider).get_intent(attempt.intent_id)
    order_event = reconcile.settling_event(attempt.status, intent)
    if order_event is None:
        return False
    fact = ProviderFact(reconcile.reconcile_event_id(intent), reconcile.reconcile_event_type(intent), intent,
                        order_event)  # fmt: skip
    received = await apply_fact(deps, RECONCILER_ACTOR, attempt.provider, attempt.org_id, attempt.order_id, fact)
    if received.applied:
        log.info("reconciler: %s settled as %s (%s)", attempt.order_id, intent.status.value, received.change)
    return received.applied


async def _touch(deps: Checkout, attempt: pg_orders.Unsettled) -> None:
    try:
        async with deps.units.begin(attempt.org_id, RECONCILER_ACTOR) as uow:
            await pg_orders.touch_attempt(uow.db, attempt.attempt_id)
    except Exception:  # Postgres away: the attempt is simply asked about at the next sweep
        log.exception("reconciler: could not mark attempt %s asked", attempt.attempt_id)
