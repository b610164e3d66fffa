"""Best-available holds over HTTP, through the real app and the real per-event shell (tests/fakes/inventory.py:
actors.event_inventory without Ray) on real Postgres and Redis: the seats it picks, what Redis and Postgres then
hold, a restart of the inventory, a retried request, and the sell-out."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from tests.fakes import Gateway, new_org, running_gateway
from tests.fakes.inventory import FakeInventoryClient

ROW_SEATS = 6


def hall() -> dict[str, Any]:
    """Two zones (inline seating: a section is a zone), three rows of 6 each; row 1 is nearest the stage."""
    rows = [{"label": str(r), "seats": ROW_SEATS} for r in (1, 2, 3)]
    return {
        "name": "Best available", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10,
        "seating": {"sections": [{"name": "FLOOR", "rows": rows}, {"name": "BALCONY", "rows": rows}]},
        "ticket_types": [{"code": "SEAT", "kind": "seated", "price": {"amount_minor": 100, "currency": "ZAR"}}],
    }


@pytest.fixture
async def owner(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "best org")
    return {"Authorization": f"Bearer {key}"}


async def on_sale(gw: Gateway, headers: dict[str, str]) -> str:
    created = await gw.client.post("/v1/events", json=hall(), headers=headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=headers)).status_code == 200
    return event_id


async def best(gw: Gateway, headers: dict[str, str], event_id: str, buyer: str, quantity: int,
               zone: str | None = None, key: str | None = None, fallback: list[str] | None = None) -> Any:
    body: dict[str, Any] = {"buyer_id": buyer, "best_available": {"quantity": quantity}}
    if zone is not None:
        body["best_available"]["zone"] = zone
    if fallback is not None:
        body["best_available"]["fallback_zones"] = fallback
    extra = {"Idempotency-Key": key} if key else {}
    return await gw.client.post(f"/v1/events/{event_id}/holds", json=body, headers=headers | extra)


async def test_the_best_seats_are_held_and_written_through(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale(gw, owner)
    first = await best(gw, owner, event_id, "b1", 2, "BALCONY")
    assert first.status_code == 201, first.text
    hold = first.json()
    assert hold["seats"] == ["BALCONY-1-3", "BALCONY-1-4"]  # the front row, its middle
    assert (hold["ticket_type"], hold["quantity"]) == ("SEAT", 2)
    second = await best(gw, owner, event_id, "b2", 3)
    # no zone: the front rows first; 1-3 (or 4-6) rather than 2-4, which would leave seat 1 alone at the row's end
    assert second.json()["seats"] == ["FLOOR-1-1", "FLOOR-1-2", "FLOOR-1-3"]
    third = await best(gw, owner, event_id, "b3", 2, "BALCONY")
    # BALCONY-1: 1 2 _ _ 5 6 -> seats 1-2 or 5-6 leave no single seat stranded between taken ones
    assert third.json()["seats"] == ["BALCONY-1-1", "BALCONY-1-2"]

    looked_up = await gw.client.get(f"/v1/holds/{hold['hold_id']}", headers=owner)
    assert looked_up.json()["seats"] == hold["seats"] and looked_up.json()["status"] == "held"
    seat_ids = (await gw.client.get(f"/v1/events/{event_id}/seats", headers=owner)).json()["seat_ids"]
    taken = {*hold["seats"], *second.json()["seats"], *third.json()["seats"]}
    for _ in range(200):  # the gateway's copy follows the write-through by a pub/sub hop
        availability = (await gw.client.get(f"/v1/events/{event_id}/availability", headers=owner)).json()
        if availability["seats"]["available"] == len(seat_ids) - len(taken):
            break
        await asyncio.sleep(0.01)
    bitmap = base64.b64decode(availability["seats"]["bitmap"])
    free = {s for i, s in enumerate(seat_ids) if bitmap[i >> 3] & (0x80 >> (i & 7))}
    assert free == set(seat_ids) - taken

    sale = await gw.client.post(f"/v1/holds/{hold['hold_id']}/confirm", json={"order_ref": "o-1"}, headers=owner)
    assert sale.status_code == 201, sale.text
    assert sorted(t["seat_id"] for t in sale.json()["tickets"]) == hold["seats"]


async def test_a_retried_request_gets_the_same_seats(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale(gw, owner)
    first = await best(gw, owner, event_id, "b1", 4, "FLOOR", key="best-retry-1")
    again = await best(gw, owner, event_id, "b1", 4, "FLOOR", key="best-retry-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    other = await best(gw, owner, event_id, "b1", 4, "FLOOR", key="best-retry-2")
    assert not set(other.json()["seats"]) & set(first.json()["seats"])


async def test_after_a_restart_the_inventory_picks_around_what_it_held(
    database_url: str, redis_url: str, owner: dict[str, str]
) -> None:
    async with running_gateway(database_url, redis_url) as first_gw:
        event_id = await on_sale(first_gw, owner)
        held = (await best(first_gw, owner, event_id, "b1", 2, "FLOOR")).json()["seats"]
    # a new inventory (recovered from Postgres and Redis) behind a new gateway
    async with running_gateway(database_url, redis_url, inventory=FakeInventoryClient(database_url, redis_url)) as gw:
        after = await best(gw, owner, event_id, "b2", 2, "FLOOR")
        assert after.status_code == 201, after.text
        assert held == ["FLOOR-1-3", "FLOOR-1-4"] and after.json()["seats"] == ["FLOOR-1-1", "FLOOR-1-2"]


async def test_the_zone_sells_out_and_then_answers_insufficient_inventory(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale(gw, owner)
    got: list[str] = []
    for n, quantity in enumerate([4, 3, 4, 2, 3, 2]):  # 18 seats: the whole zone
        answer = await best(gw, owner, event_id, f"b{n}", quantity, "BALCONY")
        assert answer.status_code == 201, answer.text
        seats = answer.json()["seats"]
        assert len({s.rsplit("-", 1)[0] for s in seats}) == 1, f"{seats}: not in one row"
        got += seats
    assert sorted(got) == sorted(f"BALCONY-{r}-{n}" for r in (1, 2, 3) for n in range(1, ROW_SEATS + 1))
    refused = await best(gw, owner, event_id, "late", 1, "BALCONY")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "insufficient_inventory" and error["details"]["available"] == 0
    assert (await best(gw, owner, event_id, "late", 1, "FLOOR")).status_code == 201  # the other zone sells on
    fell_back = await best(gw, owner, event_id, "later", 2, "BALCONY", fallback=["FLOOR"])
    assert fell_back.status_code == 201, fell_back.text
    assert all(seat.startswith("FLOOR-") for seat in fell_back.json()["seats"]), "the balcony is gone: the floor"
    needs_zone = await best(gw, owner, event_id, "later", 1, None, fallback=["FLOOR"])
    assert needs_zone.status_code == 422
    assert needs_zone.json()["error"]["details"]["fields"][0]["field"] == "best_available.fallback_zones"


def _layout_hall() -> dict[str, Any]:
    """A layout whose front row (smallest y) is listed last and numbered odd-even across the row (x order 1, 3, 2,
    4, with seat 3 not for sale), and a balcony with one accessible seat."""
    def seat(number: int, x: float, y: float, zone: str, *attributes: str) -> dict[str, Any]:
        return {"number": number, "x": x, "y": y, "zone": zone, "attributes": list(attributes)}

    back = [seat(n, float(n), 50.0, "FLOOR") for n in (1, 2, 3, 4)]
    front = [seat(1, 1.0, 10.0, "FLOOR"), seat(2, 3.0, 10.0, "FLOOR"), seat(3, 2.0, 10.0, "FLOOR", "not_for_sale"),
             seat(4, 4.0, 10.0, "FLOOR")]
    balcony = [seat(1, 1.0, 90.0, "BALCONY"), seat(2, 2.0, 90.0, "BALCONY", "accessible"),
               seat(3, 3.0, 90.0, "BALCONY")]
    return {
        "name": "Odd-even hall",
        "zones": [{"code": "FLOOR", "name": "Floor"}, {"code": "BALCONY", "name": "Balcony"}],
        "sections": [{"name": "S", "rows": [{"label": "1", "seats": back}, {"label": "2", "seats": front}]},
                     {"name": "B", "rows": [{"label": "1", "seats": balcony}]}],
    }


async def test_on_a_layout_best_available_follows_its_geometry(gw: Gateway, owner: dict[str, str]) -> None:
    venue = await gw.client.post("/v1/venues", json={"name": "Hall", "timezone": "Africa/Johannesburg"},
                                 headers=owner)
    assert venue.status_code == 201, venue.text
    layout = await gw.client.post(f"/v1/venues/{venue.json()['id']}/layouts", json=_layout_hall(), headers=owner)
    assert layout.status_code == 201, layout.text
    event = {key: value for key, value in hall().items() if key != "seating"} | {"layout_id": layout.json()["id"]}
    created = await gw.client.post("/v1/events", json=event, headers=owner)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200

    front = await best(gw, owner, event_id, "b1", 2, "FLOOR")
    # the front row is S-2 (y = 10), where seats 2 and 4 sit side by side (x 3 and 4); seat 3 is not for sale
    assert front.status_code == 201, front.text
    assert sorted(front.json()["seats"]) == ["S-2-2", "S-2-4"]
    then = await best(gw, owner, event_id, "b2", 2, "FLOOR")
    assert {seat.rsplit("-", 1)[0] for seat in then.json()["seats"]} == {"S-1"}  # two together beat S-2-1 alone
    body = {"buyer_id": "b3", "best_available": {"quantity": 1, "zone": "BALCONY", "attributes": ["accessible"]}}
    accessible = await gw.client.post(f"/v1/events/{event_id}/holds", json=body, headers=owner)
    assert accessible.status_code == 201, accessible.text
    assert accessible.json()["seats"] == ["B-1-2"]
    again = await gw.client.post(f"/v1/events/{event_id}/holds", json=body | {"buyer_id": "b4"}, headers=owner)
    assert again.status_code == 409 and again.json()["error"]["code"] == "insufficient_inventory", again.text
