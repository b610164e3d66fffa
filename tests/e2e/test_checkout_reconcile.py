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
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from engine.payments.reconcile import ReconcilePolicy
from engine.tickets.sealing import MasterKey
from gateway.checkout import Payments
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.paysim_fixtures import RunningSimulator

T = TypeVar("T")
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
SLOW_CARD = "4000000000003220"
BUYER = {"email": "buyer@example.com", "name": "A Buyer"}
QUICK = ReconcilePolicy(after_s=0.3, every_s=0.1)
settle_s_max = 15.0
webhook_late_s = 4.0  # well after the reconciler has settled (0.3 s quiet + a 0.1 s sweep + the fulfilment)
poll_s = 0.05


async def eventually(probe: Callable[[], Awaitable[T | None]], within_s: float = settle_s_max) -> T:
    deadline = time.monotonic() + within_s
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"still not the case after {within_s} s: {probe}")
        await asyncio.sleep(poll_s)
    return found


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    payments = Payments({paysim.provider.name: paysim.provider}, MasterKey(secrets.token_bytes(32)), reconcile=QUICK)
    async with running_gateway(database_url, redis_url, payments=payments) as gateway:
        yield gateway


async def _owner(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "reconcile org")
    return {"Authorization": f"Bearer {key}"}


async def _event(gw: Gateway, owner: dict[str, str]) -> str:
    created = await gw.client.post("/v1/events", json=event_body(), headers=owner)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    return event_id


async def _checkout(gw: Gateway, owner: dict[str, str], event_id: str) -> dict[str, Any]:
    held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                json={"buyer_id": "buyer-1", "ticket_type": "GA", "quantity": 2})  # fmt: skip
    assert held.status_code == 201, held.text
    made = await gw.client.post(f"/v1/holds/{held.json()['hold_id']}/checkout", json={"buyer": BUYER},
                                headers=owner)  # fmt: skip
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    return order


async def _pay(order: dict[str, Any], card: str) -> None:
    async with httpx.AsyncClient() as http:
        paid = await http.post(order["payment"]["confirm_url"], json={"card_number": card})
    assert paid.status_code == 200, paid.text


def _intent_of(order: dict[str, Any]) -> str:
    url: str = order["payment"]["confirm_url"]
    return url.rstrip("/").split("/")[-2]


async def _order(gw: Gateway, owner: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = await gw.client.get(f"/v1/orders/{order_id}", headers=owner)
    assert answer.status_code == 200, answer.text
    order: dict[str, Any] = answer.json()
    return order


async def _settled(
    gw: Gateway, owner: dict[str, str], order_id: str, status: str, *, tickets: int = 0
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        order = await _order(gw, owner, order_id)
        return order if order["status"] == status and len(order["tickets"]) == tickets else None

    return await eventually(reached)


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
    order = await _checkout(gw, owner, await _event(gw, owner))
    intent_id = _intent_of(order)
    await paysim.set_faults(drop_webhooks=1)  # the payment.authorized never arrives
    await _pay(order, SUCCESS_CARD)
    paid = await _settled(gw, owner, order["order_id"], "paid", tickets=2)
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
    event_id = await _event(gw, owner)
    order = await _checkout(gw, owner, event_id)
    await paysim.set_faults(drop_webhooks=1)  # the payment.failed never arrives
    await _pay(order, DECLINED_CARD)
    failed = await _settled(gw, owner, order["order_id"], "failed")
    assert failed["reason"] == "payment_declined"

    async def released() -> bool | None:  # the whole GA capacity (50) can be held again
        held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                    json={"buyer_id": secrets.token_hex(4), "ticket_type": "GA",
                                          "quantity": 10})  # fmt: skip
        return True if held.status_code == 201 else None

    for _ in range(4):  # 40 of the 48 not held by the failed order
        assert await released()
    assert await eventually(released)
    books = await _books(database_url, order["order_id"], _intent_of(order))
    assert books["events"] == [(f"reconcile:{_intent_of(order)}:failed", "moved")]
    assert books["captures"] == 0


async def test_a_processing_payment_is_asked_again_until_it_settles(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _event(gw, owner))
    intent_id = _intent_of(order)
    await paysim.set_faults(drop_webhooks=1)
    await _pay(order, SLOW_CARD)  # processing for 5 s, then authorized (that webhook dropped)
    await asyncio.sleep(1.0)  # several sweeps while it processes: they apply nothing
    assert (await _order(gw, owner, order["order_id"]))["status"] == "pending_payment"
    assert (await _books(database_url, order["order_id"], intent_id))["events"] == []
    await _settled(gw, owner, order["order_id"], "paid", tickets=2)
    await _one_capture(paysim, intent_id, order["total"]["amount_minor"])
    books = await _books(database_url, order["order_id"], intent_id)
    assert books["events"] == [(f"reconcile:{intent_id}:authorized", "moved")]


async def test_a_late_webhook_after_the_reconciler_has_one_effect(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _event(gw, owner))
    intent_id = _intent_of(order)
    await paysim.set_faults(webhook_delay_s=webhook_late_s)
    await _pay(order, SUCCESS_CARD)
    paid = await _settled(gw, owner, order["order_id"], "paid", tickets=2)
    assert _events_of(paysim, intent_id, "payment.authorized") == []  # settled before the webhook came
    await paysim.receiver.wait_for(lambda _: len(_events_of(paysim, intent_id, "payment.authorized")) == 1)
    (late,) = _events_of(paysim, intent_id, "payment.authorized")
    answer = await gw.client.post("/v1/payments/webhooks/simulator", content=late.body,
                                  headers={"Voelgoed-Signature": late.signature,
                                           "Content-Type": "application/json"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    await _one_capture(paysim, intent_id, order["total"]["amount_minor"])
    again = await _order(gw, owner, order["order_id"])
    assert again["status"] == "paid"
    assert [t["ticket_id"] for t in again["tickets"]] == [t["ticket_id"] for t in paid["tickets"]]
    books = await _books(database_url, order["order_id"], intent_id)
    assert (books["sales"], books["codes"], books["captures"]) == (1, 2, 1)
    # the webhook is recorded, and changed nothing: the order had been paid by the reconciler
    assert books["events"] == [(f"reconcile:{intent_id}:authorized", "moved"), (late.json()["id"], "unchanged")]
    assert books["moves"] == ["system:reconciler"]
