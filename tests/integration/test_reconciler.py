"""The reconciler's sweep (services/orders/reconciler.py) on a real Postgres with a fake provider:

- across orgs, an attempt the provider says is authorized is paid (its fulfilment owed, the move audited by the
  reconciler, recorded as ``reconcile:<intent>:authorized``), a failed one fails; one whose provider call fails and
  one still processing are left pending and touched, and the sweep goes on past the failure;
- touched attempts are not asked again before ``after_s``; the same fact applied twice applies once;
- a sweep asks about at most ``per_sweep_max`` attempts, least recently touched first, at most
  ``asks_in_flight_max`` at a time.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg

from engine.catalog import pricing
from engine.ids import hold_id_for, order_id_of_hold, payment_attempt_id
from engine.orders import OrderEvent, OrderStatus
from engine.payments.provider import Intent, IntentStatus, ProviderUnavailable
from engine.payments.reconcile import ReconcilePolicy, reconcile_event_id, reconcile_event_type
from persistence import orders
from persistence.tenancy import TenantPool, org_transaction
from services.orders.moves import FULFIL_TOPIC
from services.orders.payments import ProviderFact, apply_fact
from services.orders.ports import RECONCILER_ACTOR, Checkout
from services.orders.reconciler import reconcile_due
from services.unit_of_work import UnitsOfWork
from tests.integration.seeding import org_and_event

PROVIDER = "fakepay"
PRICES = pricing.PriceList("ZAR", {"GA": pricing.TypePrice("GA", 15_000)}, (), None)
ask_s = 0.05


class FakeProvider:
    """Answers ``get_intent`` from a table; an intent it holds no answer for is unavailable."""

    name = PROVIDER

    def __init__(self, statuses: Mapping[str, IntentStatus]) -> None:
        self.statuses = dict(statuses)
        self.asked: list[str] = []
        self.in_flight = 0
        self.in_flight_max = 0

    async def get_intent(self, intent_id: str) -> Intent:
        self.asked.append(intent_id)
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        try:
            await asyncio.sleep(ask_s)
            status = self.statuses.get(intent_id)
            if status is None:
                raise ProviderUnavailable("no answer (a test's fault)")
            return _intent(intent_id, status)
        finally:
            self.in_flight -= 1


def _intent(intent_id: str, status: IntentStatus) -> Intent:
    return Intent(
        intent_id=intent_id, status=status, amount_minor=30_000, currency="ZAR", captured_minor=0, refunded_minor=0,
        confirm_url="http://fake/confirm", metadata={}, created_at_s=1,
        failure_code="card_declined" if status is IntentStatus.FAILED else None,
    )  # fmt: skip


def _deps(pool: asyncpg.Pool, provider: FakeProvider, policy: ReconcilePolicy) -> Checkout:
    # the reconciler uses the units of work, the providers and its policy; the rest is checkout's
    unused = cast(Any, None)
    return Checkout(units=UnitsOfWork(TenantPool(pool)), redis=unused, prices=unused, inventory=unused,
                    holds=unused, placements=unused, providers={PROVIDER: cast(Any, provider)},
                    reconcile=policy)  # fmt: skip


async def _org_and_event(pool: asyncpg.Pool) -> tuple[str, str]:
    return await org_and_event(pool, "reconciler test org", "reconcile")


async def _pending(pool: asyncpg.Pool, org_id: str, event_id: str, quiet: timedelta) -> tuple[str, str]:
    """(order id, intent id) of a new pending order whose attempt has an intent and was last touched ``quiet``
    ago."""
    hold_id = hold_id_for(event_id, secrets.token_hex(10))
    quote = pricing.quote(PRICES, [pricing.Item("GA", 2)], datetime.now(UTC))
    order_id = order_id_of_hold(hold_id)
    new = orders.NewOrder(order_id, event_id, hold_id, "buyer-1", "a@example.com", "A", quote,
                          datetime.now(UTC) + timedelta(seconds=600))  # fmt: skip
    intent_id = "pi_" + secrets.token_hex(12)
    attempt_id = payment_attempt_id(order_id)
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        await orders.insert_order(db, new)
        await orders.insert_attempt(db, attempt_id, order_id, PROVIDER, quote.total_minor, "ZAR")
        await orders.set_attempt(db, attempt_id, status="requires_payment", intent_id=intent_id,
                                 confirm_url="http://fake/confirm")  # fmt: skip
        await db.conn.execute("UPDATE payment_attempts SET updated_at = now() - $2::interval WHERE id = $1",
                              attempt_id, quiet)  # fmt: skip
    return order_id, intent_id


async def _state(owner: asyncpg.Connection, order_id: str) -> dict[str, Any]:
    row = await owner.fetchrow(
        "SELECT o.status, o.reason, a.status AS attempt, a.failure_code, now() - a.updated_at AS quiet"
        " FROM orders o JOIN payment_attempts a ON a.order_id = o.id WHERE o.id = $1",
        order_id,
    )
    assert row is not None
    return dict(row)


async def test_a_sweep_settles_what_the_provider_knows_and_goes_on_past_failures(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    (org_a, event_a), (org_b, event_b) = await _org_and_event(pool), await _org_and_event(pool)
    long_ago = timedelta(days=30)  # before anything else of the session: these are the sweep's first
    broken_order, broken = await _pending(pool, org_a, event_a, long_ago)
    paid_order, paid = await _pending(pool, org_a, event_a, long_ago)
    busy_order, busy = await _pending(pool, org_b, event_b, long_ago)
    failed_order, failed = await _pending(pool, org_b, event_b, long_ago)
    provider = FakeProvider({paid: IntentStatus.AUTHORIZED, busy: IntentStatus.PROCESSING,
                             failed: IntentStatus.FAILED})  # fmt: skip
    deps = _deps(pool, provider, ReconcilePolicy(after_s=60.0, per_sweep_max=4))

    assert await reconcile_due(deps, TenantPool(pool)) == 2
    assert sorted(provider.asked) == sorted([broken, paid, busy, failed])
    assert (await _state(owner, paid_order))["status"] == "paid"
    settled = await _state(owner, failed_order)
    assert (settled["status"], settled["reason"], settled["attempt"], settled["failure_code"]) == (
        "failed",
        "payment_declined",
        "failed",
        "card_declined",
    )
    for left in (broken_order, busy_order):  # pending still, and asked just now
        state = await _state(owner, left)
        assert state["status"] == "pending_payment" and state["quiet"] < timedelta(minutes=1)
    assert await owner.fetchval("SELECT count(*) FROM outbox WHERE topic = $1 AND key = $2",
                                FULFIL_TOPIC, paid_order) == 1  # fmt: skip
    assert await owner.fetchval("SELECT outcome FROM provider_events WHERE event_id = $1",
                                f"reconcile:{paid}:authorized") == "moved"  # fmt: skip
    actors = await owner.fetch("SELECT actor_type || ':' || actor_id AS actor FROM audit_log"
                               " WHERE object_id = $1 AND action = 'order.move'", paid_order)  # fmt: skip
    assert [r["actor"] for r in actors] == ["system:reconciler"]

    asked = len(provider.asked)
    await reconcile_due(deps, TenantPool(pool))  # everything of ours was just asked: not again before after_s
    assert not {broken, paid, busy, failed} & set(provider.asked[asked:])

    intent = _intent(paid, IntentStatus.AUTHORIZED)
    fact = ProviderFact(reconcile_event_id(intent), reconcile_event_type(intent), intent,
                        OrderEvent.PAYMENT_SUCCEEDED)  # fmt: skip
    again = await apply_fact(deps, RECONCILER_ACTOR, PROVIDER, org_a, paid_order, fact)
    assert (again.applied, again.order_id) == (False, paid_order)  # once
    assert (await _state(owner, paid_order))["status"] == OrderStatus.PAID


async def test_a_sweep_is_bounded_oldest_first_and_a_few_at_a_time(
    pool: asyncpg.Pool, owner: asyncpg.Connection
) -> None:
    org_id, event_id = await _org_and_event(pool)
    made = [await _pending(pool, org_id, event_id, timedelta(days=60 - n)) for n in range(5)]  # oldest first
    provider = FakeProvider({intent_id: IntentStatus.PROCESSING for _, intent_id in made})
    deps = _deps(pool, provider, ReconcilePolicy(after_s=60.0, per_sweep_max=4, asks_in_flight_max=2))

    assert await reconcile_due(deps, TenantPool(pool)) == 0  # all still processing
    assert sorted(provider.asked) == sorted(intent_id for _, intent_id in made[:4])
    assert provider.in_flight_max == 2
    assert (await _state(owner, made[4][0]))["quiet"] > timedelta(days=50)  # left for the next sweep
    await reconcile_due(deps, TenantPool(pool))
    assert provider.asked[4] == made[4][1]  # the one left is now the oldest
