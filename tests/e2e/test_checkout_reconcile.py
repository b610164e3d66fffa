"""The reconciler over HTTP with the real payment simulator (a subprocess) and the gateway's orders worker, its
bounds made small (``ReconcilePolicy``: asked after 0.3 s quiet, a sweep every 0.1 s):

- the success card's webhook lost (``drop_webhooks``): the order is paid and its tickets issued all the same, one
  capture at the simulator, the move audited by the reconciler;
- the declined card's webhook lost: the order fails and its hold is released;
- the slow card (processing for 5 s) with its webhook lost: asked while processing (nothing applied), asked again,
  then paid;
- the webhook only late (``webhook_delay_s``): the reconciler settles first, the real webhook then applies as a
  replay for the order: one capture, tickets once.

Captures are counted per intent (its ``payment.captured`` events and the ledger's capture), not by the simulator's
global counter: the session's simulator and database hold other tests' pending orders, which this gateway's
reconciler settles too (as it should).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from engine.payments.reconcile import ReconcilePolicy
from tests.e2e.checkout_steps import (
    DECLINED_CARD,
    SLOW_CARD,
    SUCCESS_CARD,
    check_out,
    checkout_gateway,
    forward,
    hold,
    hold_released,
    intent_of,
    new_owner,
    order_of,
    pay,
    publish_event,
    settled,
)
from tests.fakes import Gateway
from tests.paysim_fixtures import RunningSimulator

QUICK = ReconcilePolicy(after_s=0.3, every_s=0.1)
webhook_late_s = 4.0  # well after the reconciler has settled (0.3 s quiet + a 0.1 s sweep + the fulfilment)


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    async with checkout_gateway(database_url, redis_url, paysim, reconcile=QUICK) as gateway:
        yield gateway


async def _owner(database_url: str) -> dict[str, str]:
    return await new_owner(database_url, "reconcile org")


async def _checkout(gw: Gateway, owner: dict[str, str], event_id: str) -> dict[str, Any]:
    return await check_out(gw, owner, await hold(gw, owner, event_id))


def _events_of(paysim: RunningSimulator, intent_id: str, event_type: str) -> list[Any]:
    return [d for d in paysim.receiver.for_intent(intent_id) if d.json()["type"] == event_type]


async def _one_capture(paysim: RunningSimulator, intent_id: str, amount_minor: int) -> None:
    """The simulator captured the intent once (one payment.captured, its whole amount), and nothing more comes."""
    await paysim.receiver.wait_for(lambda _: len(_events_of(paysim, intent_id, "payment.captured")) >= 1)
    await paysim.wait_idle()
    assert len(_events_of(paysim, intent_id, "payment.captured")) == 1
    intent = await paysim.provider.get_intent(intent_id)
    assert (intent.status.value, intent.captured_minor) == ("captured", amount_minor)


async def _books(database_url: str, order_id: str, intent_id: str) -> dict[str, Any]:
    admin = await asyncpg.connect(database_url)
    try:
        return {
            "sales": await admin.fetchval("SELECT count(*) FROM sales WHERE order_ref = $1", order_id),
            "codes": await admin.fetchval("SELECT count(*) FROM ticket_codes WHERE order_id = $1", order_id),
            "captures": await admin.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'capture'", order_id),
            "events": [(r["event_id"], r["outcome"]) for r in await admin.fetch(
                "SELECT event_id, outcome FROM provider_events WHERE intent_id = $1 ORDER BY received_at, event_id",
                intent_id)],
            "moves": [r["actor"] for r in await admin.fetch(
                "SELECT actor_type || ':' || actor_id AS actor FROM audit_log WHERE object_id = $1"
                " AND action = 'order.move' ORDER BY seq", order_id)],
        }  # fmt: skip
    finally:
        await admin.close()


async def test_a_lost_success_webhook_is_reconciled_into_a_paid_order_with_its_tickets(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await publish_event(gw, owner))
    intent_id = intent_of(order)
    await paysim.set_faults(drop_webhooks=1)  # the payment.authorized never arrives
    await pay(order, SUCCESS_CARD)
    paid = await settled(gw, owner, order["order_id"], "paid", tickets=2)
    assert paid["reason"] is None
    await _one_capture(paysim, intent_id, order["total"]["amount_minor"])
    assert _events_of(paysim, intent_id, "payment.authorized") == []  # it really was lost
    assert (await paysim.stats())["webhooks"]["dropped"] >= 1
    books = await _books(database_url, order["order_id"], intent_id)
    assert (books["sales"], books["codes"], books["captures"]) == (1, 2, 1)
    assert books["events"] == [(f"reconcile:{intent_id}:authorized", "moved")]
    assert books["moves"] == ["system:reconciler"]  # the move is audited, by the reconciler


async def test_a_lost_decline_webhook_fails_the_order_and_releases_its_hold(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    event_id = await publish_event(gw, owner)
    order = await _checkout(gw, owner, event_id)
    await paysim.set_faults(drop_webhooks=1)  # the payment.failed never arrives
    await pay(order, DECLINED_CARD)
    failed = await settled(gw, owner, order["order_id"], "failed")
    assert failed["reason"] == "payment_declined"
    await hold_released(gw, owner, event_id)
    books = await _books(database_url, order["order_id"], intent_of(order))
    assert books["events"] == [(f"reconcile:{intent_of(order)}:failed", "moved")]
    assert books["captures"] == 0


async def test_a_processing_payment_is_asked_again_until_it_settles(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await publish_event(gw, owner))
    intent_id = intent_of(order)
    await paysim.set_faults(drop_webhooks=1)
    await pay(order, SLOW_CARD)  # processing for 5 s, then authorized (that webhook dropped)
    await asyncio.sleep(1.0)  # several sweeps while it processes: they apply nothing
    assert (await order_of(gw, owner, order["order_id"]))["status"] == "pending_payment"
    assert (await _books(database_url, order["order_id"], intent_id))["events"] == []
    await settled(gw, owner, order["order_id"], "paid", tickets=2)
    await _one_capture(paysim, intent_id, order["total"]["amount_minor"])
    books = await _books(database_url, order["order_id"], intent_id)
    assert books["events"] == [(f"reconcile:{intent_id}:authorized", "moved")]


async def test_a_late_webhook_after_the_reconciler_has_one_effect(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await publish_event(gw, owner))
    intent_id = intent_of(order)
    await paysim.set_faults(webhook_delay_s=webhook_late_s)
    await pay(order, SUCCESS_CARD)
    paid = await settled(gw, owner, order["order_id"], "paid", tickets=2)
    assert _events_of(paysim, intent_id, "payment.authorized") == []  # settled before the webhook came
    await paysim.receiver.wait_for(lambda _: len(_events_of(paysim, intent_id, "payment.authorized")) == 1)
    (late,) = _events_of(paysim, intent_id, "payment.authorized")
    answer = await forward(gw, late)
    assert answer.status_code == 200, answer.text
    await _one_capture(paysim, intent_id, order["total"]["amount_minor"])
    again = await order_of(gw, owner, order["order_id"])
    assert again["status"] == "paid"
    assert [t["ticket_id"] for t in again["tickets"]] == [t["ticket_id"] for t in paid["tickets"]]
    books = await _books(database_url, order["order_id"], intent_id)
    assert (books["sales"], books["codes"], books["captures"]) == (1, 2, 1)
    # the webhook is recorded, and changed nothing: the order had been paid by the reconciler
    assert books["events"] == [(f"reconcile:{intent_id}:authorized", "moved"), (late.json()["id"], "unchanged")]
    assert books["moves"] == ["system:reconciler"]
