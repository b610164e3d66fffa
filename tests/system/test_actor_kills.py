"""Chaos: kill the event's inventory actor again and again during a concurrent sale, then audit the stores.

Afterwards every acknowledged confirm is in Postgres, no seat or GA unit is sold twice, Redis's bitmap equals
Postgres, and held + sold never passed capacity while the sale ran.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import httpx
import ray

from actors.placement import dedicated_name
from tests.system import stores
from tests.system.conftest import create_published_event
from tests.system.waiting import eventually
from voelgoed.settings import Settings

seats_total = 120
ga_capacity = 150
hold_ttl_s = 3
buyers_concurrent = 30
kills_min = 10
kill_interval_s = 0.7
sale_s_max = 40.0
confirm_attempts_max = 8


async def test_kills_lose_no_acknowledged_sale_and_oversell_nothing(
    client: httpx.AsyncClient, settings: Settings, database_url: str, redis_url: str, ray_driver: None
) -> None:
    event_id = await create_published_event(
        client, seats=seats_total, ga=ga_capacity, hold_ttl_s=hold_ttl_s, max_per_buyer=4, dedicated=True
    )
    org_id = await stores.event_org(database_url, event_id)
    acknowledged: dict[str, list[dict[str, object]]] = {}
    over_capacity: list[dict[str, object]] = []
    kills = 0
    selling = True

    async def buyer(n: int) -> None:
        rng = random.Random(n)
        while selling:
            if rng.random() < 0.5:
                body: dict[str, object] = {"buyer_id": f"b{n}-{rng.randrange(10**9)}",
                                           "seats": [f"A-1-{rng.randrange(1, seats_total + 1)}"]}
            else:
                body = {"buyer_id": f"b{n}-{rng.randrange(10**9)}", "ticket_type": "GA",
                        "quantity": rng.randint(1, 3)}
            hold = await client.post(f"/v1/events/{event_id}/holds", json=body)
            assert hold.status_code in (201, 409, 503), hold.text
            if hold.status_code == 201:
                await confirm(hold.json()["hold_id"])

    async def confirm(hold_id: str) -> None:
        key = uuid.uuid4().hex
        for _ in range(confirm_attempts_max):
            answer = await client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": f"o-{hold_id}"},
                                       headers={"Idempotency-Key": key})
            assert answer.status_code in (201, 404, 409, 410, 503), answer.text
            if answer.status_code == 201:
                sale = answer.json()
                acknowledged[sale["sale_id"]] = sale["tickets"]
                return
            if answer.status_code != 503:
                return
            await asyncio.sleep(0.2)

    async def watch_capacity() -> None:
        while selling:
            counts = (await client.get(f"/v1/events/{event_id}/availability")).json()
            for ticket_type in counts["ticket_types"]:
                if ticket_type["held"] + ticket_type["sold"] > ticket_type["capacity"]:
                    over_capacity.append(ticket_type)
            await asyncio.sleep(0.1)

    async def killer() -> None:
        nonlocal kills
        name = dedicated_name(org_id, event_id)
        while selling:
            await asyncio.sleep(kill_interval_s)
            try:
                handle = await asyncio.to_thread(ray.get_actor, name, namespace=settings.ray_namespace)
                await asyncio.to_thread(ray.kill, handle, no_restart=False)
                kills += 1
            except ValueError:
                pass  # between incarnations the name may not resolve for a moment

    tasks = [asyncio.ensure_future(buyer(n)) for n in range(buyers_concurrent)]
    tasks += [asyncio.ensure_future(watch_capacity()), asyncio.ensure_future(killer())]
    started = time.monotonic()
    while (kills < kills_min or not acknowledged) and time.monotonic() - started < sale_s_max:
        await asyncio.sleep(0.2)
    selling = False
    await asyncio.gather(*tasks)

    print(f"actor kills: {kills}; acknowledged sales: {len(acknowledged)}")
    assert kills >= kills_min
    assert acknowledged, "no sale went through at all"
    assert over_capacity == []
    await audit(client, database_url, redis_url, org_id, event_id, acknowledged)


async def audit(client: httpx.AsyncClient, database_url: str, redis_url: str, org_id: str, event_id: str,
                acknowledged: dict[str, list[dict[str, object]]]) -> None:
    rows = await stores.sold_tickets(database_url, event_id)
    in_pg = Counter(r["sale_id"] for r in rows)
    assert [s for s in acknowledged if s not in in_pg] == [], "acknowledged sales missing from Postgres"
    assert all(in_pg[s] == len(t) for s, t in acknowledged.items())
    sold_seats = [r["seat_id"] for r in rows if r["seat_id"] is not None]
    units = [r["unit"] for r in rows if r["unit"] is not None]
    assert len(sold_seats) == len(set(sold_seats)), "a seat was sold twice"
    assert len(units) == len(set(units)) and all(1 <= u <= ga_capacity for u in units)
    # every committed sale has exactly one sale.create, naming the key that confirmed it, whatever was retried
    entries = await stores.sale_audit_entries(database_url, org_id, event_id)
    assert Counter(e["sale_id"] for e in entries) == Counter(dict.fromkeys(in_pg, 1))
    assert all(e["actor_type"] == "key" and e["ip"] for e in entries)

    # Let the last incarnation recover (any call loads it) and expire what was left held, then compare stores.
    await client.get(f"/v1/holds/hld_{event_id[4:]}{'0' * 20}")
    sold_indices = {int(seat.split("-")[2]) - 1 for seat in sold_seats}

    async def redis_free() -> set[int]:
        return await stores.redis_available_seats(redis_url, org_id, event_id, seats_total)

    expected = set(range(seats_total)) - sold_indices
    assert await eventually(redis_free, lambda free: free == expected, within_s=hold_ttl_s + 15) == expected

    async def served() -> dict[str, object]:
        return (await client.get(f"/v1/events/{event_id}/availability")).json()

    view = await eventually(served, lambda v: v["seats"]["available"] == len(expected))  # type: ignore[index]
    assert view["seats"]["available"] == len(expected)  # type: ignore[index]


async def test_a_restarted_actor_reopens_its_events_without_a_call(
    client: httpx.AsyncClient, settings: Settings, database_url: str, redis_url: str, ray_driver: None
) -> None:
    event_id = await create_published_event(client, seats=4, hold_ttl_s=2, dedicated=True)
    org_id = await stores.event_org(database_url, event_id)
    held = await client.post(f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-1", "A-1-2"]})
    assert held.status_code == 201, held.text
    handle = await asyncio.to_thread(ray.get_actor, dedicated_name(org_id, event_id), namespace=settings.ray_namespace)
    await asyncio.to_thread(ray.kill, handle, no_restart=False)

    # No call reaches the event from here on: only the restarted actor itself can expire the hold.
    async def free() -> set[int]:
        return await stores.redis_available_seats(redis_url, org_id, event_id, 4)

    assert await eventually(free, lambda seats: seats == {0, 1, 2, 3}, within_s=20) == {0, 1, 2, 3}
    assert await stores.redis_live_holds(redis_url, org_id, event_id) == 0
