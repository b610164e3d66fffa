"""The same Idempotency-Key on hold and confirm, resent across an actor kill, yields one hold and one sale.

To exercise the inventory's own idempotency (not only the gateway's stored replies), the stored replies are
deleted before each resend, as if the gateway had died between the actor's answer and storing it.
"""

from __future__ import annotations

import asyncio

import httpx
import ray
from redis.asyncio import Redis

from actors.placement import dedicated_name
from tests.system import stores
from tests.system.conftest import create_published_event
from voelgoed.settings import Settings


async def kill_inventory(settings: Settings, org_id: str, event_id: str) -> None:
    handle = await asyncio.to_thread(ray.get_actor, dedicated_name(org_id, event_id), namespace=settings.ray_namespace)
    await asyncio.to_thread(ray.kill, handle, no_restart=False)


async def forget_stored_replies(redis_url: str, org_id: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"vg:{org_id}:idem:*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def test_hold_and_confirm_resent_across_kills(
    client: httpx.AsyncClient, settings: Settings, database_url: str, redis_url: str, ray_driver: None
) -> None:
    event_id = await create_published_event(client, seats=5, ga=10, dedicated=True)
    org_id = await stores.event_org(database_url, event_id)
    hold_body = {"buyer_id": "buyer-1", "seats": ["A-1-1", "A-1-2"]}
    hold_headers = {"Idempotency-Key": "hold-key-1"}

    first = await client.post(f"/v1/events/{event_id}/holds", json=hold_body, headers=hold_headers)
    assert first.status_code == 201, first.text
    replay = await client.post(f"/v1/events/{event_id}/holds", json=hold_body, headers=hold_headers)
    assert replay.json() == first.json()

    await kill_inventory(settings, org_id, event_id)
    await forget_stored_replies(redis_url, org_id)
    again = await client.post(f"/v1/events/{event_id}/holds", json=hold_body, headers=hold_headers)
    assert again.status_code == 201, again.text
    assert again.json()["hold_id"] == first.json()["hold_id"]
    assert await stores.redis_live_holds(redis_url, org_id, event_id) == 1

    hold_id = first.json()["hold_id"]
    confirm_headers = {"Idempotency-Key": "confirm-key-1"}
    sale = await client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": "order-1"}, headers=confirm_headers)
    assert sale.status_code == 201, sale.text
    await kill_inventory(settings, org_id, event_id)
    await forget_stored_replies(redis_url, org_id)
    resent = await client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": "order-1"}, headers=confirm_headers)
    assert resent.status_code == 201, resent.text
    assert resent.json() == sale.json()

    rows = await stores.sold_tickets(database_url, event_id)
    assert {r["sale_id"] for r in rows} == {sale.json()["sale_id"]}
    assert sorted(r["seat_id"] for r in rows) == ["A-1-1", "A-1-2"]
    assert await stores.redis_live_holds(redis_url, org_id, event_id) == 0
    # one audit entry for the one sale, naming the key that confirmed it, however often the confirm was resent
    [entry] = await stores.sale_audit_entries(database_url, org_id, event_id)
    assert entry["sale_id"] == sale.json()["sale_id"] and entry["actor_type"] == "key" and entry["ip"]
