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

import base64
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from engine import ids
from engine.inventory.commands import Command, ExtendHold, Rejected, Result
from engine.refusals import Refusal
from engine.tickets.keys import KeyRing, KeyStatus, VerifyingKey
from engine.tickets.verify import VerifiedTicket, verify
from tests.e2e.checkout_steps import (
    BUYER,
    DECLINED_CARD,
    SUCCESS_CARD,
    TWICE_CARD,
    check_out,
    checkout_gateway,
    deliveries,
    eventually,
    forward,
    hold,
    hold_released,
    intent_of,
    new_owner,
    order_of,
    org,
    pay,
    publish_event,
    settled,
    unbalanced_transactions,
)
from tests.fakes import Gateway
from tests.paysim_fixtures import RunningSimulator


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    # These tests forward the simulator's webhooks by hand and count its captures: the reconciler (which would
    # settle the orders they leave pending, tests/e2e/test_checkout_reconcile.py) stays out of their way.
    async with checkout_gateway(database_url, redis_url, paysim) as gateway:
        yield gateway


async def test_a_paid_order_gets_its_tickets_once_and_they_verify(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    org_id, owner = await org(database_url)
    event_id = await publish_event(gw, owner)
    hold_id = await hold(gw, owner, event_id)
    order = await check_out(gw, owner, hold_id)
    assert order["status"] == "pending_payment" and order["total"] == {"amount_minor": 30_000, "currency": "ZAR"}
    assert (await check_out(gw, owner, hold_id))["order_id"] == order["order_id"]  # one order per hold
    before = await paysim.stats()
    await pay(order, TWICE_CARD)  # its webhook is delivered twice
    intent_id = intent_of(order)
    delivered = await deliveries(paysim, intent_id, 2)
    answers = [await forward(gw, d) for d in delivered]
    assert [a.status_code for a in answers] == [200, 200]
    assert sorted(a.json()["applied"] for a in answers) == [False, True]
    paid = await settled(gw, owner, order["order_id"], "paid", tickets=2)
    for d in delivered:  # replayed again, later: nothing more
        assert (await forward(gw, d)).json()["applied"] is False
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
        unbalanced = await unbalanced_transactions(admin, order["order_id"])
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
    owner = await new_owner(database_url)
    order = await check_out(gw, owner, await hold(gw, owner, await publish_event(gw, owner)))
    await pay(order, SUCCESS_CARD)
    (delivery,) = await deliveries(paysim, intent_of(order), 1)
    flipped_body = bytearray(delivery.body)
    flipped_body[len(flipped_body) // 2] ^= 0x01
    head, _, mac = delivery.signature.partition("v1=")
    flipped_mac = head + "v1=" + mac[:-1] + ("0" if mac[-1] != "0" else "1")
    for answer in (await forward(gw, delivery, body=bytes(flipped_body)),
                   await forward(gw, delivery, signature=flipped_mac),
                   await forward(gw, delivery, signature="t=1,v1=" + "0" * 64)):  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "webhook_refused"
    assert (await order_of(gw, owner, order["order_id"]))["status"] == "pending_payment"
    assert (await forward(gw, delivery)).json()["applied"] is True  # the genuine one still applies
    await settled(gw, owner, order["order_id"], "paid", tickets=2)


async def test_a_webhook_ten_minutes_late_is_refused_and_changes_nothing(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    order = await check_out(gw, owner, await hold(gw, owner, await publish_event(gw, owner)))
    await paysim.set_faults(signature_age_s=600)  # deliveries signed as if sent 10 minutes ago
    await pay(order, SUCCESS_CARD)
    (late,) = await deliveries(paysim, intent_of(order), 1)
    answer = await forward(gw, late)
    assert answer.status_code == 400 and answer.json()["error"]["details"]["reason"] == "signature_stale"
    assert (await order_of(gw, owner, order["order_id"]))["status"] == "pending_payment"


async def test_a_declined_card_fails_the_order_and_releases_its_hold(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    event_id = await publish_event(gw, owner)
    hold_id = await hold(gw, owner, event_id)
    order = await check_out(gw, owner, hold_id)
    await pay(order, DECLINED_CARD)
    for delivery in await deliveries(paysim, intent_of(order), 1):
        assert (await forward(gw, delivery)).status_code == 200
    failed = await settled(gw, owner, order["order_id"], "failed")
    assert failed["reason"] == "payment_declined"
    await hold_released(gw, owner, event_id)


async def test_a_payment_after_the_window_is_refunded_and_the_order_says_why(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    order = await check_out(gw, owner, await hold(gw, owner, await publish_event(gw, owner)))
    await pay(order, SUCCESS_CARD)  # it succeeds; its webhook is held back until the window is over
    (delivery,) = await deliveries(paysim, intent_of(order), 1)
    await _end_window(database_url, order["order_id"])
    await settled(gw, owner, order["order_id"], "expired")
    assert (await forward(gw, delivery)).json()["applied"] is True
    refunded = await settled(gw, owner, order["order_id"], "refunded")
    assert refunded["reason"] == "paid_after_expiry"

    async def refund_done() -> bool | None:
        found = await order_of(gw, owner, order["order_id"])
        return True if [r["status"] for r in found["refunds"]] == ["done"] else None

    assert await eventually(refund_done)
    intent = await paysim.provider.get_intent(intent_of(order))
    assert (intent.status.value, intent.captured_minor) == ("canceled", 0)  # voided, never charged


async def test_a_failed_order_gives_its_promo_use_back(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    event_id = await publish_event(gw, owner)
    made = await gw.client.post(f"/v1/events/{event_id}/promo-codes", headers=owner,
                                json={"code": "ONCE", "percent_off_bp": 5000, "max_uses": 1})  # fmt: skip
    assert made.status_code == 201, made.text

    async def promo_checkout(buyer: str) -> httpx.Response:
        held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                    json={"buyer_id": buyer, "ticket_type": "GA", "quantity": 1})  # fmt: skip
        if held.status_code != 201:
            return held
        return await gw.client.post(f"/v1/holds/{held.json()['hold_id']}/checkout", headers=owner,
                                    json={"buyer": BUYER, "promo_code": "ONCE"})  # fmt: skip

    first = await promo_checkout("promo-1")
    assert first.status_code == 201 and first.json()["total"]["amount_minor"] == 7_500, first.text
    used_up = await promo_checkout("promo-2")
    assert used_up.status_code == 422 and used_up.json()["error"]["details"]["reason"] == "used_up", used_up.text
    await pay(first.json(), DECLINED_CARD)
    for delivery in await deliveries(paysim, intent_of(first.json()), 1):
        assert (await forward(gw, delivery)).status_code == 200
    await settled(gw, owner, first.json()["order_id"], "failed")

    async def taken_again() -> httpx.Response | None:
        again = await promo_checkout("promo-" + secrets.token_hex(3))
        return again if again.status_code == 201 else None

    assert (await eventually(taken_again)).json()["promo_code"] == "ONCE"  # the failed order's use came back


async def test_a_paid_order_whose_hold_was_lost_is_refunded_never_ticketless(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    hold_id = await hold(gw, owner, await publish_event(gw, owner))
    order = await check_out(gw, owner, hold_id)
    await pay(order, SUCCESS_CARD)
    (delivery,) = await deliveries(paysim, intent_of(order), 1)
    # the hold goes before the payment is fulfilled (released here; Redis loss or expiry end the same way)
    assert (await gw.client.delete(f"/v1/holds/{hold_id}", headers=owner)).status_code == 204
    before = await paysim.stats()
    assert (await forward(gw, delivery)).json()["applied"] is True
    refunded = await settled(gw, owner, order["order_id"], "refunded")
    assert refunded["reason"] == "hold_lost" and refunded["tickets"] == []

    async def refund_done() -> dict[str, Any] | None:
        found = await order_of(gw, owner, order["order_id"])
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
    owner = await new_owner(database_url)
    order = await check_out(gw, owner, await hold(gw, owner, await publish_event(gw, owner)))
    await _end_window(database_url, order["order_id"])
    expired = await settled(gw, owner, order["order_id"], "expired")
    assert expired["reason"] == "payment_window_expired"

    async def canceled() -> bool | None:
        intent = await paysim.provider.get_intent(intent_of(order))
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
    owner, stranger = await new_owner(database_url), await new_owner(database_url)
    hold_id = await hold(gw, owner, await publish_event(gw, owner))
    order = await check_out(gw, owner, hold_id)
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


def _refuse_extensions(gw: Gateway, monkeypatch: pytest.MonkeyPatch, refusal: Refusal) -> list[str]:
    """The inventory refuses every ExtendHold with ``refusal`` (the other commands pass); the hold ids asked."""
    asked: list[str] = []
    submit = gw.inventory.submit

    async def refusing(org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        if isinstance(command, ExtendHold):
            asked.append(command.hold_id)
            return Rejected(refusal, "refused by the test", {"hold_id": command.hold_id})
        return await submit(org_id, event_id, command, dedicated=dedicated)

    monkeypatch.setattr(gw.inventory, "submit", refusing)
    return asked


async def test_a_checkout_writes_its_order_before_extending_the_hold_and_its_retry_extends_it(
    gw: Gateway, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an extension is never taken back: made before an order that then failed to be written, it would keep the
    # hold for the whole payment window with no order to end it
    owner = await new_owner(database_url)
    hold_id = await hold(gw, owner, await publish_event(gw, owner))
    before = (await gw.client.get(f"/v1/holds/{hold_id}", headers=owner)).json()["expires_at"]
    asked = _refuse_extensions(gw, monkeypatch, Refusal.INVENTORY_UNAVAILABLE)
    failed = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json={"buyer": BUYER}, headers=owner)
    assert failed.status_code == 503 and asked == [hold_id], failed.text
    pending = await order_of(gw, owner, ids.order_id_of_hold(hold_id))
    assert pending["status"] == "pending_payment"
    assert (await gw.client.get(f"/v1/holds/{hold_id}", headers=owner)).json()["expires_at"] == before
    monkeypatch.undo()
    order = await check_out(gw, owner, hold_id)
    assert order["order_id"] == pending["order_id"] and order["payment"]["confirm_url"]
    kept = (await gw.client.get(f"/v1/holds/{hold_id}", headers=owner)).json()["expires_at"]
    assert kept > before and kept >= order["expires_at"]


async def test_a_pending_order_whose_hold_is_gone_at_its_extension_ends_as_hold_lost(
    gw: Gateway, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await new_owner(database_url)
    hold_id = await hold(gw, owner, await publish_event(gw, owner))
    _refuse_extensions(gw, monkeypatch, Refusal.HOLD_EXPIRED)
    gone = await gw.client.post(f"/v1/holds/{hold_id}/checkout", json={"buyer": BUYER}, headers=owner)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "hold_expired", gone.text
    ended = await order_of(gw, owner, ids.order_id_of_hold(hold_id))
    assert (ended["status"], ended["reason"]) == ("expired", "hold_lost")
