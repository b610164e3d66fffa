"""Checkout over HTTP with the real payment simulator (a subprocess) and the gateway's orders worker:

- a hold checked out, paid with the success card, its webhooks forwarded to the platform: the order is paid, its
  tickets issued once with payloads that verify offline against GET /v1/ticket-keys, one capture at the provider,
  the ledger balanced; a second checkout of the hold answers the same order;
- webhooks duplicated and replayed: applied once; forged (one bit flipped in body or signature) or 10 minutes late:
  400, no effect;
- a declined card: the order fails and its hold is released;
- an order whose window ended before the payment: expired, the hold released, and the late success refunded
  automatically (the order says paid_after_expiry), so nobody keeps money without tickets;
- other orgs see none of it (404), and bad input is a 4xx naming the field.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from engine.payments.reconcile import ReconcilePolicy
from engine.tickets.keys import KeyRing, KeyStatus, VerifyingKey
from engine.tickets.sealing import MasterKey
from engine.tickets.verify import VerifiedTicket, verify
from gateway.checkout import Payments
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.paysim_fixtures import RunningSimulator

T = TypeVar("T")
SUCCESS_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
TWICE_CARD = "4000000000000259"
BUYER = {"email": "buyer@example.com", "name": "A Buyer"}
settle_s_max = 15.0
reconcile_never_s = 86_400.0
poll_s = 0.05


async def eventually(probe: Callable[[], Awaitable[T | None]], within_s: float = settle_s_max) -> T:
    """The first non-None answer of ``probe`` (polled: the orders worker runs on its own); AssertionError after
    ``within_s``."""
    deadline = time.monotonic() + within_s
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"still not the case after {within_s} s: {probe}")
        await asyncio.sleep(poll_s)
    return found


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    # These tests forward the simulator's webhooks by hand and count its captures: the reconciler (which would
    # settle the orders they leave pending, tests/e2e/test_checkout_reconcile.py) stays out of their way.
    payments = Payments({paysim.provider.name: paysim.provider}, MasterKey(secrets.token_bytes(32)),
                        reconcile=ReconcilePolicy(after_s=reconcile_never_s))
    async with running_gateway(database_url, redis_url, payments=payments) as gateway:
        yield gateway  # the provider is the paysim fixture's (it closes it)


async def _owner(database_url: str) -> dict[str, str]:
    return (await _org(database_url))[1]


async def _org(database_url: str) -> tuple[str, dict[str, str]]:
    org_id, key = await new_org(database_url, "checkout org")
    return org_id, {"Authorization": f"Bearer {key}"}


async def _event(gw: Gateway, owner: dict[str, str]) -> str:
    created = await gw.client.post("/v1/events", json=event_body(), headers=owner)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    return event_id


async def _hold(gw: Gateway, owner: dict[str, str], event_id: str, quantity: int = 2) -> str:
    held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                json={"buyer_id": "buyer-1", "ticket_type": "GA", "quantity": quantity})
    assert held.status_code == 201, held.text
    hold_id: str = held.json()["hold_id"]
    return hold_id


async def _checkout(gw: Gateway, owner: dict[str, str], hold_id: str) -> dict[str, Any]:
    made = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json={"buyer": BUYER}, headers=owner)
    assert made.status_code == 201, made.text
    order: dict[str, Any] = made.json()
    return order


async def _pay(paysim: RunningSimulator, order: dict[str, Any], card: str) -> None:
    async with httpx.AsyncClient() as http:
        paid = await http.post(order["payment"]["confirm_url"], json={"card_number": card})
    assert paid.status_code == 200, paid.text


async def _forward(gw: Gateway, delivery: Any, *, body: bytes | None = None, signature: str | None = None
                   ) -> httpx.Response:
    return await gw.client.post(
        "/v1/payments/webhooks/simulator", content=delivery.body if body is None else body,
        headers={"Voelgoed-Signature": delivery.signature if signature is None else signature,
                 "Content-Type": "application/json"},
    )  # fmt: skip


async def _deliveries(paysim: RunningSimulator, intent_id: str, count: int) -> list[Any]:
    await paysim.receiver.wait_for(lambda _: len(paysim.receiver.for_intent(intent_id)) >= count)
    return paysim.receiver.for_intent(intent_id)


async def _order(gw: Gateway, owner: dict[str, str], order_id: str) -> dict[str, Any]:
    answer = await gw.client.get(f"/v1/orders/{order_id}", headers=owner)
    assert answer.status_code == 200, answer.text
    order: dict[str, Any] = answer.json()
    return order


async def _settled(gw: Gateway, owner: dict[str, str], order_id: str, status: str, *, tickets: int = 0
                   ) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        order = await _order(gw, owner, order_id)
        return order if order["status"] == status and len(order["tickets"]) == tickets else None

    return await eventually(reached)


def _intent_of(order: dict[str, Any]) -> str:
    # the intent's id is the last path segment before /confirm
    url: str = order["payment"]["confirm_url"]
    return url.rstrip("/").split("/")[-2]


async def test_a_paid_order_gets_its_tickets_once_and_they_verify(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    org_id, owner = await _org(database_url)
    event_id = await _event(gw, owner)
    hold_id = await _hold(gw, owner, event_id)
    order = await _checkout(gw, owner, hold_id)
    assert order["status"] == "pending_payment" and order["total"] == {"amount_minor": 30_000, "currency": "ZAR"}
    assert (await _checkout(gw, owner, hold_id))["order_id"] == order["order_id"]  # one order per hold
    before = await paysim.stats()
    await _pay(paysim, order, TWICE_CARD)  # its webhook is delivered twice
    intent_id = _intent_of(order)
    deliveries = await _deliveries(paysim, intent_id, 2)
    answers = [await _forward(gw, d) for d in deliveries]
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["applied"] for a in answers) == [False, True]
    paid = await _settled(gw, owner, order["order_id"], "paid", tickets=2)
    for d in deliveries:  # replayed again, later: nothing more
        assert (await _forward(gw, d)).json()["applied"] is False
    assert (await paysim.stats())["captures"] - before["captures"] == 1
    keys = (await gw.client.get("/v1/ticket-keys", headers=owner)).json()["keys"]
    ring = KeyRing.of([VerifyingKey(k["kid"], org_id, base64.urlsafe_b64decode(k["public_key"] + "="),
                                    KeyStatus(k["status"])) for k in keys])  # fmt: skip
    listed = (await gw.client.get(f"/v1/orders/{order['order_id']}/tickets", headers=owner)).json()
    assert [t["ticket_id"] for t in listed] == [t["ticket_id"] for t in paid["tickets"]]
    assert {t["status"] for t in listed} == {"valid"}
    for ticket in listed:
        assert isinstance(verify(ticket["qr"], ring, event_ids={event_id}), VerifiedTicket)
    png = await gw.client.get(f"/v1/tickets/{listed[0]['ticket_id']}/qr.png", headers=owner)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = await gw.client.get(f"/v1/tickets/{listed[0]['ticket_id']}/qr.svg", headers=owner)
    assert svg.status_code == 200 and b"<svg" in svg.content
    admin = await asyncpg.connect(database_url)
    try:
        sales = await admin.fetchval("SELECT count(*) FROM sales WHERE order_ref = $1", order["order_id"])
        codes = await admin.fetchval("SELECT count(*) FROM ticket_codes WHERE order_id = $1", order["order_id"])
        unbalanced = await admin.fetchval(
            "SELECT count(*) FROM (SELECT transaction_id FROM ledger_entries e JOIN ledger_transactions t"
            " ON t.id = e.transaction_id WHERE t.order_id = $1 GROUP BY transaction_id HAVING sum(amount_minor) <> 0)"
            " AS x", order["order_id"],
        )  # fmt: skip
        kinds = await admin.fetch("SELECT kind FROM ledger_transactions WHERE order_id = $1", order["order_id"])
        audited = await admin.fetch(
            "SELECT action, actor_type || ':' || actor_id AS actor FROM audit_log WHERE object_id = $1 ORDER BY seq",
            order["order_id"],
        )
    finally:
        await admin.close()
    assert (sales, codes, unbalanced) == (1, 2, 0)
    assert [r["kind"] for r in kinds] == ["capture"]
    # the webhook's effect is audited once, by the payments part of the platform
    assert [(r["action"], r["actor"]) for r in audited][1:] == [
        ("order.move", "system:payments"), ("order.tickets_issued", "system:fulfilment")]


async def test_forged_webhooks_are_refused_and_change_nothing(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _hold(gw, owner, await _event(gw, owner)))
    await _pay(paysim, order, SUCCESS_CARD)
    (delivery,) = await _deliveries(paysim, _intent_of(order), 1)
    flipped_body = bytearray(delivery.body)
    flipped_body[len(flipped_body) // 2] ^= 0x01
    head, _, mac = delivery.signature.partition("v1=")
    flipped_mac = head + "v1=" + mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for answer in (await _forward(gw, delivery, body=bytes(flipped_body)),
                   await _forward(gw, delivery, signature=flipped_mac),
                   await _forward(gw, delivery, signature="t=1,v1=" + "0" * 64)):  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "webhook_refused"
    assert (await _order(gw, owner, order["order_id"]))["status"] == "pending_payment"
    assert (await _forward(gw, delivery)).json()["applied"] is True  # the genuine one still applies
    await _settled(gw, owner, order["order_id"], "paid", tickets=2)


async def test_a_webhook_ten_minutes_late_is_refused_and_changes_nothing(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _hold(gw, owner, await _event(gw, owner)))
    await paysim.set_faults(signature_age_s=600)  # deliveries signed as if sent 10 minutes ago
    await _pay(paysim, order, SUCCESS_CARD)
    (late,) = await _deliveries(paysim, _intent_of(order), 1)
    answer = await _forward(gw, late)
    assert answer.status_code == 400 and answer.json()["error"]["details"]["reason"] == "signature_stale"
    assert (await _order(gw, owner, order["order_id"]))["status"] == "pending_payment"


async def test_a_declined_card_fails_the_order_and_releases_its_hold(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    event_id = await _event(gw, owner)
    hold_id = await _hold(gw, owner, event_id)
    order = await _checkout(gw, owner, hold_id)
    await _pay(paysim, order, DECLINED_CARD)
    for delivery in await _deliveries(paysim, _intent_of(order), 1):
        assert (await _forward(gw, delivery)).status_code == 200
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


async def test_a_payment_after_the_window_is_refunded_and_the_order_says_why(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _hold(gw, owner, await _event(gw, owner)))
    await _pay(paysim, order, SUCCESS_CARD)  # it succeeds; its webhook is held back until the window is over
    (delivery,) = await _deliveries(paysim, _intent_of(order), 1)
    await _end_window(database_url, order["order_id"])
    await _settled(gw, owner, order["order_id"], "expired")
    assert (await _forward(gw, delivery)).json()["applied"] is True
    refunded = await _settled(gw, owner, order["order_id"], "refunded")
    assert refunded["reason"] == "paid_after_expiry"

    async def refund_done() -> bool | None:
        found = await _order(gw, owner, order["order_id"])
        return True if [r["status"] for r in found["refunds"]] == ["done"] else None

    assert await eventually(refund_done)
    intent = await paysim.provider.get_intent(_intent_of(order))
    assert (intent.status.value, intent.captured_minor) == ("canceled", 0)  # voided, never charged


async def test_a_failed_order_gives_its_promo_use_back(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    event_id = await _event(gw, owner)
    made = await gw.client.post(f"/v1/events/{event_id}/promo-codes", headers=owner,
                                json={"code": "ONCE", "percent_off_bp": 5000, "max_uses": 1})  # fmt: skip
    assert made.status_code == 201, made.text

    async def check_out(buyer: str) -> httpx.Response:
        held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                    json={"buyer_id": buyer, "ticket_type": "GA", "quantity": 1})  # fmt: skip
        if held.status_code != 201:
            return held
        return await gw.client.post(f"/v1/holds/{held.json()['hold_id']}/checkout", headers=owner,
                                    json={"buyer": BUYER, "promo_code": "ONCE"})  # fmt: skip

    first = await check_out("promo-1")
    assert first.status_code == 201 and first.json()["total"]["amount_minor"] == 7_500, first.text
    used_up = await check_out("promo-2")
    assert used_up.status_code == 422 and used_up.json()["error"]["details"]["reason"] == "used_up", used_up.text
    await _pay(paysim, first.json(), DECLINED_CARD)
    for delivery in await _deliveries(paysim, _intent_of(first.json()), 1):
        assert (await _forward(gw, delivery)).status_code == 200
    await _settled(gw, owner, first.json()["order_id"], "failed")

    async def taken_again() -> httpx.Response | None:
        again = await check_out("promo-" + secrets.token_hex(3))
        return again if again.status_code == 201 else None

    assert (await eventually(taken_again)).json()["promo_code"] == "ONCE"  # the failed order's use came back


async def test_a_paid_order_whose_hold_was_lost_is_refunded_never_ticketless(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    hold_id = await _hold(gw, owner, await _event(gw, owner))
    order = await _checkout(gw, owner, hold_id)
    await _pay(paysim, order, SUCCESS_CARD)
    (delivery,) = await _deliveries(paysim, _intent_of(order), 1)
    # the hold goes before the payment is fulfilled (released here; Redis loss or expiry end the same way)
    assert (await gw.client.delete(f"/v1/holds/{hold_id}", headers=owner)).status_code == 204
    before = await paysim.stats()
    assert (await _forward(gw, delivery)).json()["applied"] is True
    refunded = await _settled(gw, owner, order["order_id"], "refunded")
    assert refunded["reason"] == "hold_lost" and refunded["tickets"] == []

    async def refund_done() -> dict[str, Any] | None:
        found = await _order(gw, owner, order["order_id"])
        return found if [r["status"] for r in found["refunds"]] == ["done"] else None

    done = await eventually(refund_done)
    assert done["refunds"][0]["amount_minor"] == order["total"]["amount_minor"]
    after = await paysim.stats()
    assert (after["captures"] - before["captures"], after["refunds"] - before["refunds"]) == (1, 1)
    admin = await asyncpg.connect(database_url)
    try:
        kinds = await admin.fetch("SELECT kind FROM ledger_transactions WHERE order_id = $1 ORDER BY seq",
                                  order["order_id"])  # fmt: skip
        sales = await admin.fetchval("SELECT count(*) FROM sales WHERE hold_id = $1", hold_id)
    finally:
        await admin.close()
    assert [r["kind"] for r in kinds] == ["capture", "refund"] and sales == 0


async def test_an_expired_order_can_no_longer_be_paid(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await _owner(database_url)
    order = await _checkout(gw, owner, await _hold(gw, owner, await _event(gw, owner)))
    await _end_window(database_url, order["order_id"])
    expired = await _settled(gw, owner, order["order_id"], "expired")
    assert expired["reason"] == "payment_window_expired"

    async def canceled() -> bool | None:
        intent = await paysim.provider.get_intent(_intent_of(order))
        return True if intent.status.value == "canceled" else None

    assert await eventually(canceled)  # the expiry voided the intent at the provider: the card is refused
    async with httpx.AsyncClient() as http:
        late = await http.post(order["payment"]["confirm_url"], json={"card_number": SUCCESS_CARD})
    assert late.status_code == 409


async def _end_window(database_url: str, order_id: str) -> None:
    """The order's payment window ends now (as if the buyer had waited it out)."""
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("UPDATE orders SET expires_at = created_at + interval '1 microsecond' WHERE id = $1",
                            order_id)  # fmt: skip
    finally:
        await admin.close()


async def test_other_orgs_see_nothing_and_bad_input_is_refused(gw: Gateway, database_url: str) -> None:
    owner, stranger = await _owner(database_url), await _owner(database_url)
    hold_id = await _hold(gw, owner, await _event(gw, owner))
    order = await _checkout(gw, owner, hold_id)
    for path in (f"/v1/orders/{order['order_id']}", f"/v1/orders/{order['order_id']}/tickets"):
        answer = await gw.client.get(path, headers=stranger)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "order_not_found"
    other = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json={"buyer": BUYER}, headers=stranger)
    assert other.status_code == 404, other.text
    listed = await gw.client.get("/v1/orders", headers=stranger)
    assert listed.status_code == 200 and listed.json()["orders"] == []
    mine = await gw.client.get("/v1/orders", params={"status": "pending_payment"}, headers=owner)
    assert [o["order_id"] for o in mine.json()["orders"]] == [order["order_id"]]
    for body in ({}, {"buyer": {"email": "nope", "name": "x"}}, {"buyer": BUYER, "extra": 1}):
        bad = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json=body, headers=owner)
        assert bad.status_code == 422, bad.text
    assert (await gw.client.get("/v1/orders", params={"status": "lost"}, headers=owner)).status_code == 422
    assert (await gw.client.get("/v1/orders/ord_nope", headers=owner)).status_code == 404
    forged = await gw.client.post("/v1/payments/webhooks/simulator", content=b"{}",
                                  headers={"Content-Type": "application/json"})  # fmt: skip
    assert forged.status_code == 400
    assert (await gw.client.post("/v1/payments/webhooks/nobody", content=b"{}",
                                 headers={"Content-Type": "application/json"})).status_code == 404  # fmt: skip
