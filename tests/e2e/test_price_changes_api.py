"""Price changes over HTTP: ``PATCH /v1/events/{id}/ticket-types/{code}`` with price and price_tiers (beside
capacity), ``PATCH /v1/events/{id}`` with fees and tax. The next quote has the new prices, in this gateway process
at once and in another one after the announcement; a quote given before is not re-priced; an ended event answers
409 event_ended; every change is audited. (Bad bodies and other orgs' ids: tests/e2e/test_bad_input.py.)"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.price_cache import PriceCache
from tests.bounded_wait import until
from tests.fakes import Gateway, event_body, new_org, running_gateway

FAR = "2099-01-01T00:00:00Z"
EARLIER = "2098-06-01T00:00:00Z"
announcement_s_max = 1.0


def zar(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "ZAR"}


def priced_body() -> dict[str, Any]:
    body = event_body()
    body["ticket_types"][0]["price_tiers"] = [{"until": FAR, "price": zar(12_000)}]
    body["fees"] = [{"code": "BOOKING", "per": "ticket", "amount_minor": 500}]
    body["tax"] = {"code": "VAT", "rate_bp": 1_500, "included": False}
    return body


@pytest.fixture(scope="module")
async def owner(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "price changes org")
    return {"Authorization": f"Bearer {key}"}


async def priced_event(gw: Gateway, owner: dict[str, str], *, publish: bool = True) -> str:
    created = await gw.client.post("/v1/events", json=priced_body(), headers=owner)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    if publish:
        assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    return event_id


async def quote(gw: Gateway, owner: dict[str, str], event_id: str) -> dict[str, Any]:
    body = {"buyer_id": "b-1", "items": [{"ticket_type": "GA", "quantity": 2}]}
    answered = await gw.client.post(f"/v1/events/{event_id}/quote", json=body, headers=owner)
    assert answered.status_code == 200, answered.text
    return answered.json()  # type: ignore[no-any-return]


def lines(answer: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(x["kind"], x["code"], x["amount_minor"]) for x in answer["lines"]]


async def test_a_new_price_reaches_the_next_quote_in_every_process(
    gw: Gateway, owner: dict[str, str], database_url: str, redis_url: str
) -> None:
    event_id = await priced_event(gw, owner)
    async with running_gateway(database_url, redis_url) as other:
        cache = other.app.state.services.domain(PriceCache)
        await until(lambda: cache._listening)
        org_id = (await other.app.state.services.auth.authenticate(owner["Authorization"][7:])).org_id
        before = await quote(other, owner, event_id)  # now in the other process's memory
        assert cache._lists.get((org_id, event_id)) is not None
        assert (lines(before)[0], before["price_list_version"]) == (("ticket", "GA", 24_000), 1)
        changed = await gw.client.patch(
            f"/v1/events/{event_id}/ticket-types/GA", json={"price": zar(20_000), "price_tiers": []}, headers=owner
        )
        assert changed.status_code == 200, changed.text
        assert changed.json() == {
            "code": "GA", "kind": "ga", "capacity": 50, "price": zar(20_000), "zone": None, "price_tiers": [],
        }
        here = await quote(gw, owner, event_id)
        assert (lines(here)[0], here["price_list_version"]) == (("ticket", "GA", 40_000), 2)
        await until(lambda: cache._lists.get((org_id, event_id)) is None, within_s=announcement_s_max)
        there = await quote(other, owner, event_id)
        assert (lines(there)[0], there["price_list_version"], there["total_minor"]) == (
            ("ticket", "GA", 40_000), 2, here["total_minor"],
        )
    shown = (await gw.client.get(f"/v1/events/{event_id}", headers=owner)).json()
    assert shown["ticket_types"][0]["price"] == zar(20_000) and shown["ticket_types"][0]["price_tiers"] == []
    log = await gw.client.get("/v1/audit-log", params={"action": "ticket_type.price"}, headers=owner)
    [entry] = [e for e in log.json()["entries"] if e["object"]["id"] == f"{event_id}/GA"]
    assert entry["before"] == {"price": zar(15_000), "price_tiers": [{"until": FAR, "price": zar(12_000)}]}
    assert entry["after"] == {"price": zar(20_000), "price_tiers": []}


async def test_tiers_capacity_and_price_in_one_request(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    tiers = [{"until": EARLIER, "price": zar(9_000)}, {"until": FAR, "price": zar(11_000)}]
    changed = await gw.client.patch(
        f"/v1/events/{event_id}/ticket-types/GA", json={"capacity": 80, "price_tiers": tiers}, headers=owner
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["capacity"], changed.json()["price_tiers"]) == (80, tiers)
    assert lines(await quote(gw, owner, event_id))[0] == ("ticket", "GA", 18_000)  # the first tier still ahead
    seat = await gw.client.patch(
        f"/v1/events/{event_id}/ticket-types/SEAT", json={"price": zar(35_000)}, headers=owner
    )
    assert seat.status_code == 200 and seat.json()["price"] == zar(35_000), seat.text
    actions = {
        e["action"] for e in (await gw.client.get("/v1/audit-log", headers=owner)).json()["entries"]
        if e["object"]["id"].startswith(event_id)
    }
    assert {"ticket_type.capacity", "ticket_type.price"} <= actions


async def test_fees_and_tax_change_and_a_quote_given_before_is_a_snapshot(
    gw: Gateway, owner: dict[str, str]
) -> None:
    event_id = await priced_event(gw, owner)
    first = await quote(gw, owner, event_id)
    assert lines(first) == [("ticket", "GA", 24_000), ("fee", "BOOKING", 1_000), ("tax", "VAT", 3_750)]
    changed = await gw.client.patch(
        f"/v1/events/{event_id}",
        json={"name": "Repriced", "fees": [{"code": "SERVICE", "per": "order", "percent_bp": 1_000}], "tax": None},
        headers=owner,
    )
    assert changed.status_code == 200, changed.text
    event = changed.json()
    assert (event["name"], event["tax"]) == ("Repriced", None)
    assert event["fees"] == [{"code": "SERVICE", "per": "order", "amount_minor": None, "percent_bp": 1_000}]
    second = await quote(gw, owner, event_id)
    assert lines(second) == [("ticket", "GA", 24_000), ("fee", "SERVICE", 2_400)]
    assert (second["total_minor"], second["price_list_version"]) == (26_400, 2)
    assert (first["total_minor"], first["price_list_version"]) == (28_750, 1)  # what was quoted stays quoted
    log = await gw.client.get("/v1/audit-log", params={"action": "event.update"}, headers=owner)
    [entry] = [e for e in log.json()["entries"] if e["object"]["id"] == event_id]
    assert set(entry["before"]) == set(entry["after"]) == {"name", "fees", "tax"}
    assert entry["after"]["tax"] is None
    removed = await gw.client.patch(f"/v1/events/{event_id}", json={"fees": []}, headers=owner)
    assert removed.status_code == 200 and removed.json()["fees"] == []
    assert lines(await quote(gw, owner, event_id)) == [("ticket", "GA", 24_000)]


@pytest.mark.parametrize("path", [["cancelled"], ["closed"]])
async def test_an_ended_events_prices_are_409_event_ended(
    gw: Gateway, owner: dict[str, str], path: list[str]
) -> None:
    event_id = await priced_event(gw, owner)
    for status in path:
        moved = await gw.client.post(f"/v1/events/{event_id}/transitions", json={"to": status}, headers=owner)
        assert moved.status_code == 200, moved.text
    before = await quote(gw, owner, event_id)
    for url, body in (
        (f"/v1/events/{event_id}/ticket-types/GA", {"price": zar(1)}),
        (f"/v1/events/{event_id}/ticket-types/SEAT", {"price_tiers": []}),
        (f"/v1/events/{event_id}", {"fees": []}),
        (f"/v1/events/{event_id}", {"name": "Not applied either", "tax": None}),
    ):
        refused = await gw.client.patch(url, json=body, headers=owner)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["code"] == "event_ended"
        assert refused.json()["error"]["details"]["status"] == path[-1]
    after = await quote(gw, owner, event_id)
    assert (lines(after), after["total_minor"], after["price_list_version"]) == (
        lines(before), before["total_minor"], before["price_list_version"],
    )
    shown = (await gw.client.get(f"/v1/events/{event_id}", headers=owner)).json()
    assert shown["name"] == "Flash Sale Live" and shown["tax"] is not None
    renamed = await gw.client.patch(f"/v1/events/{event_id}", json={"name": "Renamed"}, headers=owner)
    assert renamed.status_code == 200  # an ended event's name still changes, as before
