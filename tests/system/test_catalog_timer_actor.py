"""The catalog timer as deployed: a real gateway (subprocess) creates the one timer actor on real Ray; killed for
good across an event's sale_opens_at, the event stays published while no timer runs, and the timer that comes
back (a new actor, recovering from Postgres) fires the missed move at once; a restart by Ray (the actor killed,
allowed to restart) keeps firing timed moves."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import ray

from actors.catalog_timer import TIMER_ACTOR_NAME, TIMER_ACTOR_OPTIONS, CatalogTimer
from tests.system.waiting import eventually
from voelgoed.settings import Settings

timer_up_s_max = 30.0


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _event(client: httpx.AsyncClient, opens: datetime) -> str:
    body = {"name": "timed", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": 600, "max_tickets_per_buyer": 4,
            "sale_opens_at": iso(opens),
            "ticket_types": [{"code": "GA", "kind": "ga", "capacity": 5,
                              "price": {"amount_minor": 100, "currency": "ZAR"}}]}
    created = await client.post("/v1/events", json=body)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    moved = await client.post(f"/v1/events/{event_id}/transitions", json={"to": "published"})
    assert moved.status_code == 200, moved.text
    return event_id


async def _status(client: httpx.AsyncClient, event_id: str) -> str:
    status: str = (await client.get(f"/v1/events/{event_id}")).json()["status"]
    return status


async def _timer(settings: Settings) -> Any:
    async def found() -> Any:
        try:
            return await asyncio.to_thread(ray.get_actor, TIMER_ACTOR_NAME, namespace=settings.ray_namespace)
        except ValueError:
            return None

    handle = await eventually(found, lambda h: h is not None, within_s=timer_up_s_max)
    assert handle is not None, "the gateway never created the timer actor"
    return handle


async def test_a_timer_restarted_across_a_due_time_fires_it(
    client: httpx.AsyncClient, settings: Settings, ray_driver: None
) -> None:
    handle = await _timer(settings)
    # Restarted by Ray: the move still comes.
    await asyncio.to_thread(ray.kill, handle, no_restart=False)
    opens = datetime.now(UTC) + timedelta(seconds=4)
    event_id = await _event(client, opens)
    assert await eventually(lambda: _status(client, event_id), lambda s: s == "on_sale", within_s=20) == "on_sale"
    # Killed for good once it has planned the move: the due time passes while no timer runs. (Nothing may call
    # the gateway's timer client meanwhile: a `changed` that finds the timer gone makes a new one, which is how a
    # platform heals, and would fire the move on time.)
    opens = datetime.now(UTC) + timedelta(seconds=5)
    event_id = await _event(client, opens)
    handle = await _timer(settings)
    await asyncio.to_thread(ray.kill, handle, no_restart=True)
    assert time.time() < opens.timestamp(), "the timer was killed after the due time: the test proves nothing"
    await asyncio.sleep(max(0.0, opens.timestamp() - time.time()) + 1.5)  # past the due time, no timer running
    assert await _status(client, event_id) == "published"
    # A timer comes back (as the next gateway start would make it): it recovers its plan from Postgres.
    CatalogTimer.options(  # type: ignore[attr-defined]
        name=TIMER_ACTOR_NAME, namespace=settings.ray_namespace, get_if_exists=True, **TIMER_ACTOR_OPTIONS
    ).remote(settings.database_url, settings.redis_url, settings.inventory_hosts)
    came_back = time.time()
    assert await eventually(lambda: _status(client, event_id), lambda s: s == "on_sale", within_s=30) == "on_sale"
    assert time.time() - came_back < 30
