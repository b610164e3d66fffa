"""Redis comes back older than the inventory (a restart from an append-only file that missed its last second, a
restored snapshot) under an event nobody writes to any more: the inventory host notices by itself within its
check period (actors/inventory_host.py ``live_state_check_s``) and rebuilds the event from Postgres and the holds
Redis kept, so the availability never stays at what the old file said."""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis

from persistence.inventory import redis_keys
from tests.system import stores
from tests.system.conftest import create_published_event
from tests.system.waiting import eventually

seats_total = 10
rebuild_s_max = 15.0  # the host's check period (2 s) plus a rebuild, with room for a loaded machine


def _live_keys(org_id: str, event_id: str) -> list[str]:
    return [redis_keys.holds(org_id, event_id), redis_keys.availability_bitmap(org_id, event_id),
            redis_keys.counts(org_id, event_id), redis_keys.sold_bitmap(org_id, event_id)]


async def test_an_idle_event_is_rebuilt_when_redis_goes_back_in_time(
    client: httpx.AsyncClient, database_url: str, redis_url: str
) -> None:
    event_id = await create_published_event(client, seats=seats_total, dedicated=True)
    org_id = await stores.event_org(database_url, event_id)
    sold = await client.post(f"/v1/events/{event_id}/holds", json={"buyer_id": "b1", "seats": ["A-1-1", "A-1-2"]})
    released = await client.post(f"/v1/events/{event_id}/holds", json={"buyer_id": "b2", "seats": ["A-1-3"]})
    assert sold.status_code == released.status_code == 201, (sold.text, released.text)
    redis = Redis.from_url(redis_url)
    try:
        snapshot = {key: await redis.dump(key) for key in _live_keys(org_id, event_id)}
        old_version = int(await redis.hget(redis_keys.counts(org_id, event_id), "version"))  # type: ignore[misc]
        confirmed = await client.post(f"/v1/holds/{sold.json()['hold_id']}/confirm", json={"order_ref": "o-1"})
        assert confirmed.status_code == 201, confirmed.text
        assert (await client.delete(f"/v1/holds/{released.json()['hold_id']}")).status_code == 204
        for key, blob in snapshot.items():  # Redis as it was before the sale and the release: 3 held, 0 sold
            assert blob is not None
            await redis.restore(key, 0, blob, replace=True)
    finally:
        await redis.aclose()

    async def availability() -> dict[str, Any]:
        answer = await client.get(f"/v1/events/{event_id}/availability")
        return answer.json() if answer.status_code == 200 else {}

    def rebuilt(view: dict[str, Any]) -> bool:
        return bool(view) and view["version"] > old_version and view["ticket_types"][0]["sold"] == 2

    view = await eventually(availability, rebuilt, within_s=rebuild_s_max)
    assert rebuilt(view), view
    seat_type = view["ticket_types"][0]
    # the sale is Postgres's; the released hold came back with the old file (Redis kept it) and expires as held
    assert seat_type["sold"] == 2 and seat_type["held"] == 1 and seat_type["available"] == seats_total - 3
    assert len(await stores.sold_tickets(database_url, event_id)) == 2
