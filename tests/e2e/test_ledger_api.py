"""The ledger over HTTP, after a real checkout (the payment simulator, the gateway's orders worker):

- GET /v1/ledger/balances: the capture shows in provider_clearing (the order's total) and organizer_revenue
  (held), every account listed, summing to 0;
- GET /v1/ledger/transactions: the capture with its entries, paged with next_cursor; a cursor that is not the
  org's is 422;
- POST /v1/payouts: refused while the event has not started (nothing payable: 409, available_minor 0); once it has,
  the held revenue is released (source release:<order>) and paid out: more than payable is 409 naming what is,
  without amount_minor everything payable is paid (201), audited, and a second payout is refused;
- another org sees zeros and no transactions; a key without ledger:read or payouts:write is 403;
- only the orders of events that have started are released; payouts at once never pay more than is payable.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from engine.ledger.accounts import Account, TransactionKind
from engine.ledger.book import TRANSACTION_PREFIX, Transaction, entries_of
from persistence import ledger
from persistence.db import connect
from persistence.tenancy import org_transaction
from tests.e2e.checkout_steps import bearer, checkout_gateway, org, paid_order, publish_event
from tests.fakes import Gateway
from tests.paysim_fixtures import RunningSimulator

ACCOUNTS = [a.value for a in Account]


@pytest.fixture
async def gw(database_url: str, redis_url: str, paysim: RunningSimulator) -> AsyncIterator[Gateway]:
    # the reconciler stays out of the way of the orders these tests pay by hand, as in test_checkout_api.py
    async with checkout_gateway(database_url, redis_url, paysim) as gateway:
        yield gateway


async def _paid_order(gw: Gateway, paysim: RunningSimulator, owner: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(event id, order) of an order of 2 GA tickets of a new event, paid with the success card, its tickets
    issued."""
    event_id = await publish_event(gw, owner)
    return event_id, await paid_order(gw, paysim, owner, event_id)


async def _balances(gw: Gateway, headers: dict[str, str], currency: str | None = "ZAR") -> dict[str, int]:
    answer = await gw.client.get("/v1/ledger/balances", params={"currency": currency} if currency else {},
                                 headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    rows = answer.json()["accounts"]
    if currency is not None:
        assert [r["code"] for r in rows] == ACCOUNTS and {r["currency"] for r in rows} == {currency}
    assert sum(r["balance_minor"] for r in rows) == 0, rows
    return {r["code"]: r["balance_minor"] for r in rows}


async def _page(gw: Gateway, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = await gw.client.get("/v1/ledger/transactions", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


async def _payout(gw: Gateway, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return await gw.client.post("/v1/payouts", json=body, headers=headers)


def _refused(answer: httpx.Response, available_minor: int) -> None:
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "payout_exceeds_payable"
    assert error["details"] == {"available_minor": available_minor, "currency": "ZAR"}


async def test_the_ledger_shows_a_capture_releases_it_once_the_event_started_and_pays_it_out(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    org_id, owner = await org(database_url, "ledger org")
    event_id, order = await _paid_order(gw, paysim, owner)
    total = order["total"]["amount_minor"]
    assert total == 30_000

    # the capture: the provider holds the total; the revenue is held for the organizer
    before = await _balances(gw, owner)
    assert before["provider_clearing"] == total
    assert before["organizer_revenue"] < 0 and before["organizer_payable"] == 0 and before["payouts"] == 0
    revenue = -before["organizer_revenue"]
    assert await _balances(gw, owner, None) == before  # one currency used: the same rows
    assert (await _balances(gw, owner, "USD")) == dict.fromkeys(ACCOUNTS, 0)  # a currency never used: zeros

    page = await _page(gw, owner)
    (capture,) = page["transactions"]
    assert page["next_cursor"] is None
    assert capture["kind"] == "capture" and capture["order_id"] == order["order_id"]
    assert capture["source"].startswith("capture:")
    entries = {e["account"]: e["amount_minor"] for e in capture["entries"]}
    assert entries["provider_clearing"] == total and entries["organizer_revenue"] == -revenue
    assert sum(entries.values()) == 0

    # the event has not started: nothing is payable yet, and the refusal changes nothing
    _refused(await _payout(gw, owner, {"currency": "ZAR"}), 0)
    _refused(await _payout(gw, owner, {"currency": "ZAR", "amount_minor": 1}), 0)
    assert await _balances(gw, owner) == before

    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("UPDATE events SET starts_at = now() - interval '1 hour' WHERE id = $1", event_id)
        # more than is payable: refused, naming what is (released in the refused payout's transaction, rolled back)
        _refused(await _payout(gw, owner, {"currency": "ZAR", "amount_minor": revenue + 1}), revenue)
        assert await _balances(gw, owner) == before
        assert await admin.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE org_id = $1 AND kind <> 'capture'", org_id) == 0

        made = await _payout(gw, owner, {"currency": "ZAR"})
        assert made.status_code == 201, made.text
        payout = made.json()
        assert payout["currency"] == "ZAR" and payout["amount_minor"] == revenue
        assert payout["id"].startswith("po_") and payout["transaction_id"].startswith("ltx_")
        assert payout["released"] == {"orders": 1, "amount_minor": revenue}
        assert payout["created_at"].endswith("Z")
        audited = await admin.fetch(
            "SELECT actor_type, object_id, after FROM audit_log WHERE org_id = $1 AND action = 'payout.create'",
            org_id,
        )
        released = await admin.fetchval(
            "SELECT count(*) FROM ledger_transactions WHERE org_id = $1 AND kind = 'release' AND source = $2",
            org_id, f"release:{order['order_id']}",
        )  # fmt: skip
    finally:
        await admin.close()
    assert [(r["actor_type"], r["object_id"]) for r in audited] == [("key", payout["id"])]
    assert released == 1

    after = await _balances(gw, owner)
    assert after["organizer_payable"] == 0 and after["organizer_revenue"] == 0
    assert after["payouts"] == -revenue and after["provider_clearing"] == total
    assert {k: v for k, v in after.items() if k not in ("organizer_revenue", "payouts")} == {
        k: v for k, v in before.items() if k not in ("organizer_revenue", "payouts")}

    # paid out: nothing more is payable, and the release is not posted again
    _refused(await _payout(gw, owner, {"currency": "ZAR"}), 0)
    _refused(await _payout(gw, owner, {"currency": "ZAR", "amount_minor": 1}), 0)
    assert await _balances(gw, owner) == after

    # the three transactions, two to a page
    first = await _page(gw, owner, limit=2)
    assert [t["kind"] for t in first["transactions"]] == ["capture", "release"]
    release = first["transactions"][1]
    assert release["source"] == f"release:{order['order_id']}" and release["order_id"] == order["order_id"]
    assert {e["account"]: e["amount_minor"] for e in release["entries"]} == {
        "organizer_revenue": revenue, "organizer_payable": -revenue}
    assert first["next_cursor"] == release["id"]
    second = await _page(gw, owner, limit=2, cursor=first["next_cursor"])
    assert [t["id"] for t in second["transactions"]] == [payout["transaction_id"]]
    assert second["next_cursor"] is None
    assert {e["account"]: e["amount_minor"] for e in second["transactions"][0]["entries"]} == {
        "organizer_payable": revenue, "payouts": -revenue}
    assert second["transactions"][0]["source"] == f"payout:{payout['id']}"

    # tenancy: another org sees zeros and no transactions, and cannot page with this org's cursor
    _, stranger = await org(database_url, "ledger stranger")
    assert await _balances(gw, stranger) == dict.fromkeys(ACCOUNTS, 0)
    assert (await gw.client.get("/v1/ledger/balances", headers=stranger)).json() == {"accounts": []}
    assert await _page(gw, stranger) == {"transactions": [], "next_cursor": None}
    for cursor in (release["id"], "ltx_" + "0" * 32):
        answer = await gw.client.get("/v1/ledger/transactions", params={"cursor": cursor}, headers=stranger)
        assert answer.status_code == 422, answer.text
        assert [f["field"] for f in answer.json()["error"]["details"]["fields"]] == ["cursor"]
    _refused(await _payout(gw, stranger, {"currency": "ZAR"}), 0)

    # scopes: reading needs ledger:read, paying out payouts:write
    reader = await gw.client.post("/v1/api-keys", json={"name": "reader", "scopes": ["ledger:read"]}, headers=owner)
    other = await gw.client.post("/v1/api-keys", json={"name": "other", "scopes": ["orders:read"]}, headers=owner)
    for path in ("/v1/ledger/balances", "/v1/ledger/transactions"):
        assert (await gw.client.get(path, headers=bearer(other.json()["key"]))).status_code == 403
        assert (await gw.client.get(path, headers=bearer(reader.json()["key"]))).status_code == 200
    assert (await _payout(gw, bearer(reader.json()["key"]), {"currency": "ZAR"})).status_code == 403


async def test_bad_ledger_queries_and_payouts_are_422_naming_the_field(gw: Gateway, database_url: str) -> None:
    _, owner = await org(database_url, "ledger bad input")
    for path, params, field in [
        ("/v1/ledger/balances", {"currency": "zar"}, "currency"),
        ("/v1/ledger/balances", {"currency": "ZARR"}, "currency"),
        ("/v1/ledger/balances", {"surprise": "1"}, "surprise"),
        ("/v1/ledger/transactions", {"limit": "0"}, "limit"),
        ("/v1/ledger/transactions", {"limit": "501"}, "limit"),
        ("/v1/ledger/transactions", {"cursor": "nope"}, "cursor"),
    ]:
        answer = await gw.client.get(path, params=params, headers=owner)
        assert answer.status_code == 422, (path, params, answer.text)
        assert field in [f["field"] for f in answer.json()["error"]["details"]["fields"]]
    bodies: list[tuple[dict[str, Any], str]] = [
        ({}, "currency"),
        ({"currency": "zar"}, "currency"),
        ({"currency": "ZAR", "amount_minor": 0}, "amount_minor"),
        ({"currency": "ZAR", "amount_minor": -5}, "amount_minor"),
        ({"currency": "ZAR", "amount_minor": "100"}, "amount_minor"),
        ({"currency": "ZAR", "amount_minor": 10**16}, "amount_minor"),
        ({"currency": "ZAR", "amount_minor": 1.5}, "amount_minor"),
    ]
    for body, field in bodies:
        answer = await _payout(gw, owner, body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in [f["field"] for f in answer.json()["error"]["details"]["fields"]]


async def test_only_the_orders_of_started_events_are_released(
    gw: Gateway, paysim: RunningSimulator, database_url: str
) -> None:
    _, owner = await org(database_url, "ledger two events")
    started, _ = await _paid_order(gw, paysim, owner)
    await _paid_order(gw, paysim, owner)  # its event is still to come
    before = await _balances(gw, owner)
    held = -before["organizer_revenue"]
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute("UPDATE events SET starts_at = now() - interval '1 minute' WHERE id = $1", started)
    finally:
        await admin.close()
    made = await _payout(gw, owner, {"currency": "ZAR", "amount_minor": 1_000})
    assert made.status_code == 201, made.text
    assert made.json()["released"] == {"orders": 1, "amount_minor": held // 2}
    after = await _balances(gw, owner)
    assert after["organizer_revenue"] == -(held - held // 2)  # the future event's revenue stays held
    assert after["organizer_payable"] == -(held // 2 - 1_000) and after["payouts"] == -1_000
    # the rest of what was released, and nothing is released twice
    rest = await _payout(gw, owner, {"currency": "ZAR"})
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount_minor"] == held // 2 - 1_000
    assert rest.json()["released"] == {"orders": 0, "amount_minor": 0}


async def test_payouts_at_once_never_pay_more_than_is_payable(gw: Gateway, database_url: str) -> None:
    """Each payout takes the book's lock before it reads what is payable: of five at once for 2,000 of 5,000
    payable, two are paid and three refused, and the ledger pays out exactly 4,000."""
    org_id, owner = await org(database_url, "ledger race")
    paid = Transaction(TRANSACTION_PREFIX + secrets.token_hex(16), TransactionKind.CAPTURE, "capture:race",
                       entries_of("ZAR", {Account.PROVIDER_CLEARING: 5_000, Account.ORGANIZER_PAYABLE: -5_000}))
    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            await ledger.write(db, paid)
    finally:
        await conn.close()
    answers = await asyncio.gather(*[_payout(gw, owner, {"currency": "ZAR", "amount_minor": 2_000})
                                     for _ in range(5)])  # fmt: skip
    assert sorted(a.status_code for a in answers) == [201, 201, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["error"]["details"]["available_minor"] for a in answers if a.status_code == 409} == {1_000}
    after = await _balances(gw, owner)
    assert after["payouts"] == -4_000 and after["organizer_payable"] == -1_000
