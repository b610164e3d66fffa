"""Refunds over HTTP (POST /v1/orders/{id}/refunds) with the real payment simulator and the gateway's orders worker:

- one ticket of a paid order refunded: the order is partially_refunded, the ticket's code revoked (in the event's
  revocation list), its GA unit holdable again at once, its money back at the provider (once), the ledger's refund
  posted and balanced; refunding it again is 409 ticket_already_refunded;
- the rest refunded (no tickets named): the order is refunded (refunded_on_request), its refunds add up to what
  was paid, the whole capacity holdable again;
- an unpaid order, another org's order, a ticket not the order's, and bad bodies: the right 4xx, nothing changed;
- a cancelled event: its paid orders refunded whole, its pending ones cancelled;
- a refund after the organizer was paid out: the payable owes it back (the ledger still balances);
- a chargeback after a partial refund: the bank takes the rest, every ticket left is revoked and given back, once;
- the payment's webhooks forwarded newest first (refunded, captured, authorized) then again: the payment never
  moves backwards and the order stays refunded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.e2e.checkout_steps import (
    check_out,
    checkout_gateway,
    deliveries,
    eventually,
    forward,
    hold,
    intent_of,
    new_owner,
    paid_order,
    publish_event,
    unbalanced_transactions,
)
from tests.fakes import Gateway
from tests.paysim_fixtures import RunningSimulator


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    # as in test_checkout_api.py: webhooks forwarded by hand, the simulator's counters counted, no reconciler
    async with checkout_gateway(database_url, redis_url, paysim) as gateway:
        yield gateway


async def _small_event(gw: Gateway, owner: dict[str, str]) -> str:
    """An event of 2 GA units: once they are sold, only a refund makes one holdable again."""
    return await publish_event(gw, owner, ga_capacity=2)


async def _try_hold(gw: Gateway, owner: dict[str, str], event_id: str, quantity: int) -> int:
    held = await gw.client.post(f"/v1/events/{event_id}/holds", headers=owner,
                                json={"buyer_id": "buyer-2", "ticket_type": "GA", "quantity": quantity})
    if held.status_code == 201:  # give it back: the test only asks whether it could be held
        released = await gw.client.delete(f"/v1/holds/{held.json()['hold_id']}", headers=owner)
        assert released.status_code in (200, 204), released.text
    return held.status_code


async def _refund_done(gw: Gateway, owner: dict[str, str], order_id: str, refund_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        order = (await gw.client.get(f"/v1/orders/{order_id}", headers=owner)).json()
        found = [r for r in order["refunds"] if r["refund_id"] == refund_id and r["status"] == "done"]
        return order if found else None

    return await eventually(done)


async def test_a_refund_of_one_ticket_then_the_rest(gw: Gateway, paysim: RunningSimulator, database_url: str) -> None:
    owner = await new_owner(database_url)
    event_id = await _small_event(gw, owner)
    order = await paid_order(gw, paysim, owner, event_id)
    order_id = order["order_id"]
    first, second = (t["ticket_id"] for t in order["tickets"])
    assert await _try_hold(gw, owner, event_id, 1) == 409  # sold out
    before = await paysim.stats()

    made = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner,
                                json={"ticket_ids": [first], "reason": "cannot come"})
    assert made.status_code == 201, made.text
    refund = made.json()
    assert refund["ticket_ids"] == [first] and refund["amount_minor"] == 15_000 and refund["reason"] == "cannot come"
    assert await _try_hold(gw, owner, event_id, 1) == 201  # its unit is back at once
    assert await _try_hold(gw, owner, event_id, 2) == 409  # and only that one
    revoked = (await gw.client.get(f"/v1/events/{event_id}/revocations", headers=owner)).json()
    assert revoked["revoked"] == [first]
    after_one = await _refund_done(gw, owner, order_id, refund["refund_id"])
    assert after_one["status"] == "partially_refunded"
    assert {t["ticket_id"]: t["status"] for t in after_one["tickets"]} == {first: "revoked", second: "valid"}
    again = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner,
                                 json={"ticket_ids": [first], "reason": "twice"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ticket_already_refunded", again.text

    rest = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner, json={"reason": "event moved"})
    assert rest.status_code == 201, rest.text
    assert rest.json()["ticket_ids"] == [second]
    final = await _refund_done(gw, owner, order_id, rest.json()["refund_id"])
    assert (final["status"], final["reason"]) == ("refunded", "refunded_on_request")
    assert sum(r["amount_minor"] for r in final["refunds"]) == final["total"]["amount_minor"]
    assert await _try_hold(gw, owner, event_id, 2) == 201  # the whole capacity is back
    nothing_left = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner, json={"reason": "again"})
    assert nothing_left.status_code == 409 and nothing_left.json()["error"]["code"] == "order_not_refundable"
    stats = await paysim.stats()
    assert stats["refunds"] - before["refunds"] == 2
    assert stats["captures"] == before["captures"]  # nothing taken again
    await _check_books(database_url, order_id, final["total"]["amount_minor"])


async def _check_books(database_url: str, order_id: str, total_minor: int) -> None:
    admin = await asyncpg.connect(database_url)
    try:
        kinds = await admin.fetch(
            "SELECT kind FROM ledger_transactions WHERE order_id = $1 ORDER BY seq", order_id
        )
        unbalanced = await unbalanced_transactions(admin, order_id)
        refunded = await admin.fetchval(
            "SELECT -sum(e.amount_minor) FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id"
            " WHERE t.order_id = $1 AND e.account = 'refunds'", order_id,
        )  # fmt: skip
        live = await admin.fetchval(
            "SELECT count(*) FROM tickets t JOIN sales s ON s.id = t.sale_id WHERE s.order_ref = $1"
            " AND t.status = 'live'", order_id,
        )  # fmt: skip
    finally:
        await admin.close()
    assert [r["kind"] for r in kinds] == ["capture", "refund", "refund"]
    assert (unbalanced, refunded, live) == (0, total_minor, 0)


async def test_refunds_that_cannot_be_made_change_nothing(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    stranger = await new_owner(database_url)
    event_id = await publish_event(gw, owner)
    pending = await check_out(gw, owner, await hold(gw, owner, event_id))
    unpaid = await gw.client.post(f"/v1/orders/{pending['order_id']}/refunds", headers=owner, json={"reason": "x"})
    assert unpaid.status_code == 409 and unpaid.json()["error"]["code"] == "order_not_refundable", unpaid.text
    order = await paid_order(gw, paysim, owner, event_id)
    order_id = order["order_id"]
    other_ticket = order["tickets"][0]["ticket_id"][:-1] + "9"
    cases: list[tuple[dict[str, str], dict[str, Any], int, str]] = [
        (stranger, {"reason": "x"}, 404, "order_not_found"),
        (owner, {"ticket_ids": [other_ticket], "reason": "x"}, 404, "ticket_not_found"),
        (owner, {"ticket_ids": [], "reason": "x"}, 422, "validation_failed"),
        (owner, {"ticket_ids": ["not-a-ticket"], "reason": "x"}, 422, "validation_failed"),
        (owner, {}, 422, "validation_failed"),
        (owner, {"reason": ""}, 422, "validation_failed"),
    ]
    for headers, body, status, code in cases:
        answer = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=headers, json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (body, answer.text)
    after = (await gw.client.get(f"/v1/orders/{order_id}", headers=owner)).json()
    assert (after["status"], after["refunds"]) == ("paid", [])
    assert {t["status"] for t in after["tickets"]} == {"valid"}
    missing = await gw.client.post("/v1/orders/ord_" + "0" * 52 + "/refunds", headers=owner, json={"reason": "x"})
    assert missing.status_code == 404


async def test_cancelling_an_event_refunds_its_paid_orders_and_cancels_the_pending(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    event_id = await publish_event(gw, owner)
    paid = await paid_order(gw, paysim, owner, event_id)
    pending = await check_out(gw, owner, await hold(gw, owner, event_id))
    before = await paysim.stats()
    moved = await gw.client.post(f"/v1/events/{event_id}/transitions", headers=owner, json={"to": "cancelled"})
    assert moved.status_code == 200, moved.text

    async def ended() -> tuple[dict[str, Any], dict[str, Any]] | None:
        orders = [(await gw.client.get(f"/v1/orders/{o['order_id']}", headers=owner)).json() for o in (paid, pending)]
        done = orders[0]["refunds"] and orders[0]["refunds"][0]["status"] == "done"
        return (orders[0], orders[1]) if done and orders[1]["status"] == "cancelled" else None

    refunded, cancelled = await eventually(ended)
    assert (refunded["status"], refunded["reason"]) == ("refunded", "event_cancelled")
    assert refunded["refunds"][0]["amount_minor"] == refunded["total"]["amount_minor"]
    assert {t["status"] for t in refunded["tickets"]} == {"revoked"}
    assert cancelled["reason"] == "event_cancelled"
    assert (await paysim.stats())["refunds"] - before["refunds"] == 1
    revoked = (await gw.client.get(f"/v1/events/{event_id}/revocations", headers=owner)).json()["revoked"]
    assert sorted(revoked) == sorted(t["ticket_id"] for t in refunded["tickets"])


async def test_a_refund_after_the_payout_takes_the_revenue_back_from_the_payable(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    event_id = await publish_event(gw, owner)
    order = await paid_order(gw, paysim, owner, event_id)
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("UPDATE events SET starts_at = now() - interval '1 hour' WHERE id = $1", event_id)
    finally:
        await admin.close()
    paid_out = await gw.client.post("/v1/payouts", headers=owner, json={"currency": "ZAR"})
    assert paid_out.status_code == 201 and paid_out.json()["released"]["orders"] == 1, paid_out.text
    made = await gw.client.post(f"/v1/orders/{order['order_id']}/refunds", headers=owner,
                                json={"ticket_ids": [order["tickets"][0]["ticket_id"]], "reason": "after the show"})
    assert made.status_code == 201, made.text
    rows = (await gw.client.get("/v1/ledger/balances?currency=ZAR", headers=owner)).json()["accounts"]
    balances = {row["code"]: row["balance_minor"] for row in rows}
    assert sum(balances.values()) == 0
    # the organizer was paid the whole order, and now owes back the refunded ticket's revenue
    assert balances["organizer_revenue"] == 0
    assert balances["organizer_payable"] == made.json()["amount_minor"] > 0
    assert balances["refunds"] == -made.json()["amount_minor"]
    again = await gw.client.post("/v1/payouts", headers=owner, json={"currency": "ZAR"})
    assert again.status_code == 409 and again.json()["error"]["details"]["available_minor"] == 0


async def test_a_chargeback_after_a_partial_refund_takes_the_rest_and_frees_the_seats(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    event_id = await _small_event(gw, owner)
    order = await paid_order(gw, paysim, owner, event_id)
    order_id = order["order_id"]
    first, second = (t["ticket_id"] for t in order["tickets"])
    made = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner,
                                json={"ticket_ids": [first], "reason": "cannot come"})
    assert made.status_code == 201, made.text
    await _refund_done(gw, owner, order_id, made.json()["refund_id"])
    before = await paysim.stats()
    intent_id = intent_of(order)
    await paysim.chargeback(intent_id)
    [delivery] = [d for d in await deliveries(paysim, intent_id, 1) if d.json()["type"] == "payment.charged_back"]
    answer = await forward(gw, delivery)
    assert answer.status_code == 200 and answer.json()["applied"] is True, answer.text
    assert (await forward(gw, delivery)).json()["applied"] is False  # a redelivery: once
    after = (await gw.client.get(f"/v1/orders/{order_id}", headers=owner)).json()
    assert (after["status"], after["reason"]) == ("refunded", "chargeback")
    taken = [r for r in after["refunds"] if r["reason"] == "chargeback"]
    assert [(r["ticket_ids"], r["status"]) for r in taken] == [([second], "done")]
    assert sum(r["amount_minor"] for r in after["refunds"]) == after["total"]["amount_minor"]
    assert {t["status"] for t in after["tickets"]} == {"revoked"}
    async def both_back() -> bool | None:  # given back by the outbox, moments after the webhook's commit
        return True if await _try_hold(gw, owner, event_id, 2) == 201 else None

    await eventually(both_back)
    stats = await paysim.stats()
    assert (stats["refunds"], stats["chargebacks"]) == (before["refunds"], before["chargebacks"] + 1)
    admin = await asyncpg.connect(database_url)
    try:
        kinds = await admin.fetch("SELECT kind FROM ledger_transactions WHERE order_id = $1 ORDER BY seq", order_id)
    finally:
        await admin.close()
    assert [r["kind"] for r in kinds] == ["capture", "refund", "chargeback"]


async def test_webhooks_delivered_out_of_order_never_move_a_payment_backwards(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    owner = await new_owner(database_url)
    order = await paid_order(gw, paysim, owner, await publish_event(gw, owner))
    order_id, intent_id = order["order_id"], intent_of(order)
    made = await gw.client.post(f"/v1/orders/{order_id}/refunds", headers=owner, json={"reason": "all of it"})
    assert made.status_code == 201, made.text
    await _refund_done(gw, owner, order_id, made.json()["refund_id"])
    # authorized, captured, refunded, as the simulator sent them; forwarded newest first, then again oldest first
    sent = await deliveries(paysim, intent_id, 3)
    kinds = [d.json()["type"] for d in sent]
    assert {"payment.authorized", "payment.captured", "payment.refunded"} <= set(kinds), kinds
    for delivery in [*reversed(sent), *sent]:
        assert (await forward(gw, delivery)).status_code == 200
    after = (await gw.client.get(f"/v1/orders/{order_id}", headers=owner)).json()
    assert (after["status"], after["reason"], after["payment"]["status"]) == ("refunded", "refunded_on_request",
                                                                              "refunded")
    assert len(after["refunds"]) == 1 and {t["status"] for t in after["tickets"]} == {"revoked"}
