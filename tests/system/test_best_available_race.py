"""Buyers race for the best seats over HTTP, through the real gateway and the event's real inventory actor (Ray):
the actor picks and holds in one serialized step, so no seat is ever given twice, the hall sells to the last
seat that fits a request, and every refusal is an honest insufficient_inventory."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.system.waiting import eventually

buyers = 300
rows, row_seats = 5, 12  # 60 seats in one section (zone "A")


async def test_300_buyers_race_for_the_best_of_60_seats(client: httpx.AsyncClient) -> None:
    body = {"name": "best race", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": 600, "max_tickets_per_buyer": 10,
            "dedicated": True,
            "seating": {"sections": [{"name": "A", "rows": [{"label": str(r), "seats": row_seats}
                                                            for r in range(1, rows + 1)]}]},
            "ticket_types": [{"code": "SEAT", "kind": "seated", "price": {"amount_minor": 100, "currency": "ZAR"}}]}
    created = await client.post("/v1/events", json=body)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    assert (await client.post(f"/v1/events/{event_id}/publish")).status_code == 200
    wanted = [i % 4 + 1 for i in range(buyers)]  # 1..4 seats each: 750 asked for 60

    async def buy(i: int) -> httpx.Response:
        best = {"quantity": wanted[i], "zone": "A"}
        return await client.post(f"/v1/events/{event_id}/holds", json={"buyer_id": f"b-{i}", "best_available": best})

    answers = await asyncio.gather(*(buy(i) for i in range(buyers)))
    statuses = Counter(a.status_code for a in answers)
    assert set(statuses) <= {201, 409}, statuses
    held = [seat for a in answers if a.status_code == 201 for seat in a.json()["seats"]]
    assert len(held) == len(set(held)), "a seat given twice"
    for i, answer in enumerate(answers):
        if answer.status_code == 201:
            assert len(answer.json()["seats"]) == wanted[i]
        else:
            error = answer.json()["error"]
            assert error["code"] == "insufficient_inventory", error
            assert error["details"]["available"] < wanted[i]
    # seats only ever went, so what is left is fewer than the smallest request refused
    refused = [wanted[i] for i, a in enumerate(answers) if a.status_code == 409]
    assert refused and 60 - len(held) < min(refused)

    async def available() -> int:
        return int((await client.get(f"/v1/events/{event_id}/availability")).json()["seats"]["available"])

    assert await eventually(available, lambda n: n == 60 - len(held)) == 60 - len(held)
