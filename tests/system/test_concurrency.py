"""500 buyers race over HTTP for the same 10 seats: exactly 10 holds succeed, every other buyer gets a 409."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.system.conftest import create_published_event
from tests.system.waiting import eventually

buyers = 500
seats = 10


async def test_500_buyers_race_for_10_seats(client: httpx.AsyncClient) -> None:
    event_id = await create_published_event(client, seats=seats)

    async def buy(i: int) -> httpx.Response:
        return await client.post(
            f"/v1/events/{event_id}/holds", json={"buyer_id": f"b-{i}", "seats": [f"A-1-{i % seats + 1}"]}
        )

    responses = await asyncio.gather(*(buy(i) for i in range(buyers)))
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: seats, 409: buyers - seats}, statuses
    held = sorted(seat for r in responses if r.status_code == 201 for seat in r.json()["seats"])
    assert held == sorted(f"A-1-{n}" for n in range(1, seats + 1))
    assert all(r.json()["error"]["code"] == "seats_unavailable" for r in responses if r.status_code == 409)

    async def available() -> int:
        return int((await client.get(f"/v1/events/{event_id}/availability")).json()["seats"]["available"])

    assert await eventually(available, lambda n: n == 0) == 0
