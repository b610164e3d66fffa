"""The steps of a checkout over HTTP, shared by the e2e tests that pay with the real payment simulator (a
subprocess, the ``paysim`` fixture) through a gateway that runs the orders worker:

- ``checkout_gateway`` / ``payments_of``: that gateway, its Payments over the simulator's provider with a fresh
  ticket master key and a ``ReconcilePolicy``. By default the reconciler never asks (``RECONCILE_NEVER``): the
  tests that forward the simulator's webhooks by hand and count its global counters need it out of their way
  (it would settle the orders they leave pending); tests/e2e/test_checkout_reconcile.py passes its own;
- an org and its owner's headers, a published event, a hold, its checkout, the payment with a test card, the
  webhooks delivered for an intent and their forwarding to the platform, an order read and waited for;
- ``paid_order``: all of it at once, for tests about what comes after the payment;
- ``unbalanced_transactions``: the ledger's transactions of an order whose entries do not sum to 0.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import httpx

from engine.payments.reconcile import ReconcilePolicy
from engine.tickets.sealing import MasterKey
from gateway.checkout import Payments
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.paysim_fixtures import Delivery, RunningSimulator

T = TypeVar("T")
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
TWICE_CARD = "4000000000000259"  # its webhook is delivered twice
SLOW_CARD = "4000000000003220"  # processing for 5 s, then authorized
BUYER = {"email": "buyer@example.com", "name": "A Buyer"}
settle_s_max = 15.0
poll_s = 0.05
reconcile_never_s = 86_400.0
RECONCILE_NEVER = ReconcilePolicy(after_s=reconcile_never_s)


async def eventually(probe: Callable[[], Awaitable[T | None]], within_s: float = settle_s_max) -> T:
    """The first non-None answer of ``probe`` (polled: the orders worker runs on its own); AssertionError after
    ``within_s``."""
    deadline = time.monotonic() + within_s
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"still not the case after {within_s} s: {probe}")
        await asyncio.sleep(poll_s)
    return found


def payments_of(paysim: RunningSimulator, reconcile: ReconcilePolicy = RECONCILE_NEVER) -> Payments:
    """The gateway's payments: the simulator's provider (the paysim fixture's: it closes it), a fresh master key."""
    return Payments({paysim.provider.name: paysim.provider}, MasterKey(secrets.token_bytes(32)), reconcile=reconcile)


@asynccontextmanager
async def checkout_gateway(database_url: str, redis_url: str, paysim: RunningSimulator,
                           reconcile: ReconcilePolicy = RECONCILE_NEVER) -> AsyncIterator[Gateway]:  # fmt: skip
    """A gateway that takes payments with the simulator and runs the orders worker (``payments_of``)."""
    async with running_gateway(database_url, redis_url, payments=payments_of(paysim, reconcile)) as gateway:
        yield gateway


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def org(database_url: str, name: str = "checkout org") -> tuple[str, dict[str, str]]:
    """(org id, its owner's headers) of a fresh organization."""
    org_id, key = await new_org(database_url, name)
    return org_id, bearer(key)


async def new_owner(database_url: str, name: str = "checkout org") -> dict[str, str]:
    """The owner's headers of a fresh organization."""
    return (await org(database_url, name))[1]


async def publish_event(gw: Gateway, owner: dict[str, str], **event: Any) -> str:
    """A published event (``event`` goes to tests.fakes.event_body: 50 GA units unless told)."""
    created = await gw.client.post("/v1/events", json=event_body(**event), headers=owner)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    return event_id


async def hold(gw: Gateway, owner: dict[str, str], event_id: str, quantity: int = 2) -> str:
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds",
        headers=owner,
        json={"buyer_id": "buyer-1", "ticket_type": "GA", "quantity": quantity},
    )
    assert held.status_code == 201, held.text
    hold_id: str = held.json()["hold_id"]
    return hold_id


async def check_out(gw: Gateway, owner: dict[str, str], hold_id: str) -> dict[str, Any]:
    made = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json={"buyer": BUYER}, headers=owner)
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    return order


async def pay(order: dict[str, Any], card: str) -> None:
    """The buyer confirms the order's intent at the simulator with ``card``."""
    async with httpx.AsyncClient() as http:
        paid = await http.post(order["payment"]["confirm_url"], json={"card_number": card})
    assert paid.status_code == 200, paid.text


def intent_of(order: dict[str, Any]) -> str:
    # the intent's id is the last path segment before /confirm
    url: str = order["payment"]["confirm_url"]
    return url.rstrip("/").split("/")[-2]


async def deliveries(paysim: RunningSimulator, intent_id: str, count: int) -> list[Delivery]:
    """The simulator's webhooks for the intent, once at least ``count`` have come."""
    await paysim.receiver.wait_for(lambda _: len(paysim.receiver.for_intent(intent_id)) >= count)
    return paysim.receiver.for_intent(intent_id)


async def forward(
    gw: Gateway, delivery: Delivery, *, body: bytes | None = None, signature: str | None = None
) -> httpx.Response:
    """The delivery forwarded to the platform's webhook (its body or signature replaced when given)."""
    return await gw.client.post(
        "/v1/payments/webhooks/simulator", content=delivery.body if body is None else body,
        headers={"Voelgoed-Signature": delivery.signature if signature is None else signature,
                 "Content-Type": "application/json"},
    )  # fmt: skip


async def order_of(gw: Gateway, owner: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = await gw.client.get(f"/v1/orders/{order_id}", headers=owner)
    assert answer.status_code == 200, answer.text
    order: dict[str, Any] = answer.json()
    return order


async def settled(
    gw: Gateway, owner: dict[str, str], order_id: str, status: str, *, tickets: int = 0
) -> dict[str, Any]:
    """The order once it has ``status`` and ``tickets`` tickets."""

    async def reached() -> dict[str, Any] | None:
        order = await order_of(gw, owner, order_id)
        return order if order["status"] == status and len(order["tickets"]) == tickets else None

    return await eventually(reached)


async def paid_order(gw: Gateway, paysim: RunningSimulator, owner: dict[str, str], event_id: str) -> dict[str, Any]:
    """An order of 2 GA tickets of the event, paid with the success card, its webhooks forwarded, its tickets
    issued."""
    order = await check_out(gw, owner, await hold(gw, owner, event_id))
    await pay(order, SUCCESS_CARD)
    for delivery in await deliveries(paysim, intent_of(order), 1):
        forwarded = await forward(gw, delivery)
        assert forwarded.status_code == 200, forwarded.text
    return await settled(gw, owner, order["order_id"], "paid", tickets=2)


async def hold_released(gw: Gateway, owner: dict[str, str], event_id: str) -> None:
    """The whole GA capacity (50) of the event can be held again once the order holding 2 of it ended."""

    async def released() -> bool | None:
        held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                    json={"buyer_id": secrets.token_hex(4), "ticket_type": "GA",
                                          "quantity": 10})  # fmt: skip
        return True if held.status_code == 201 else None

    for _ in range(4):  # 40 of the 48 not held by the ended order
        assert await released()
    assert await eventually(released)


async def unbalanced_transactions(conn: asyncpg.Connection, order_id: str) -> int:
    """How many of the order's ledger transactions have entries that do not sum to 0 (0 in a balanced book)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries e JOIN ledger_transactions t"
        " ON t.id = e.transaction_id WHERE t.order_id = $1 GROUP BY transaction_id HAVING sum(amount_minor) <> 0)"
        " AS x", order_id,
    )  # fmt: skip
    return count
