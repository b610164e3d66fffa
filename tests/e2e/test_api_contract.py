"""The HTTP contract of /work/shared/API.md, end to end through the real app over the fake inventory, on real
Postgres and Redis: shapes, statuses, idempotency, keys, the live websocket and the operations routes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect as ws_connect

from engine.inventory.commands import Command, Rejected, Result
from gateway.availability import RESYNC, LiveSubscriber
from gateway.inventory_errors import InventoryBusy
from gateway.openapi import documented_methods
from gateway.routes.access.models import ApiKeyOut
from gateway.routes.catalog.models import EventOut
from gateway.routes.inventory.models import AvailabilityOut, HoldOut, HoldStatusOut, LiveDelta, SaleOut
from persistence.inventory.live_state import Delta
from tests.fakes import SEATS_PER_ROW, Gateway, event_body, new_org, running_gateway
from tests.fakes.clock import FakeClock
from tests.fakes.inventory import FakeInventoryClient

SHORT_HOLD_TTL_S = 1


@pytest.fixture(scope="module")
async def owner(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "contract org")
    return {"Authorization": f"Bearer {key}"}


async def on_sale_event(gw: Gateway, headers: dict[str, str], **kwargs: Any) -> str:
    created = await gw.client.post("/v1/events", json=event_body(**kwargs), headers=headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    published = await gw.client.post(f"/v1/events/{event_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return event_id


async def availability_where(
    gw: Gateway, headers: dict[str, str], event_id: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first availability that meets ``condition``: the in-memory copy follows writes by a pub/sub hop."""
    for _ in range(200):
        body: dict[str, Any] = (await gw.client.get(f"/v1/events/{event_id}/availability", headers=headers)).json()
        if condition(body):
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"availability of {event_id} never met the condition: {body}")


def ticket_type(availability: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(t for t in availability["ticket_types"] if t["code"] == code)
    return found


async def test_create_publish_get_event_and_seats(gw: Gateway, owner: dict[str, str]) -> None:
    created = await gw.client.post("/v1/events", json=event_body() | {"dedicated": True}, headers=owner)
    assert created.status_code == 201, created.text
    event = EventOut.model_validate(created.json())
    assert event.id.startswith("evt_") and event.status == "draft" and event.dedicated
    assert created.json()["starts_at"] == "2026-12-31T18:00:00Z"
    assert event.seat_count == 2 * SEATS_PER_ROW
    assert [(t.code, t.kind, t.capacity) for t in event.ticket_types] == [("GA", "ga", 50), ("SEAT", "seated", 20)]
    assert event.ticket_types[0].price.model_dump() == {"amount_minor": 15000, "currency": "ZAR"}
    assert event.published_at is None

    before = await gw.client.post(
        f"/v1/events/{event.id}/holds", json={"buyer_id": "b", "seats": ["A-1-1"]}, headers=owner
    )
    assert before.status_code == 409 and before.json()["error"]["code"] == "not_on_sale"

    published = await gw.client.post(f"/v1/events/{event.id}/publish", headers=owner)
    assert published.status_code == 200
    assert published.json()["id"] == event.id and published.json()["status"] == "on_sale"
    assert published.json()["published_at"] is not None

    fetched = await gw.client.get(f"/v1/events/{event.id}", headers=owner)
    assert fetched.status_code == 200 and fetched.json()["status"] == "on_sale"
    assert fetched.json()["ticket_types"] == published.json()["ticket_types"]

    seats = await gw.client.get(f"/v1/events/{event.id}/seats", headers=owner)
    assert seats.status_code == 200
    seat_ids = seats.json()["seat_ids"]
    assert seat_ids[:3] == ["A-1-1", "A-1-2", "A-1-3"] and seat_ids[10] == "A-2-1" and len(seat_ids) == 20


async def test_routes_place_commands_by_the_meta_they_read(gw: Gateway, owner: dict[str, str]) -> None:
    """The inventory client reads no meta of its own: every call carries the event's placement."""
    for dedicated in (True, False):
        created = await gw.client.post("/v1/events", json=event_body() | {"dedicated": dedicated}, headers=owner)
        event_id = created.json()["id"]
        assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
        assert gw.inventory.placements[event_id] is dedicated  # activated at publish
        gw.inventory.placements.pop(event_id)
        held = await gw.client.post(
            f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-1"]}, headers=owner
        )
        assert held.status_code == 201, held.text
        assert gw.inventory.placements[event_id] is dedicated


async def test_seat_hold_get_confirm_and_retry(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner)
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-1", "seats": ["A-1-7", "A-1-8"]}, headers=owner
    )
    assert held.status_code == 201, held.text
    hold = HoldOut.model_validate(held.json())
    assert hold.event_id == event_id and hold.buyer_id == "b-1" and hold.seats == ["A-1-7", "A-1-8"]
    assert hold.ticket_type == "SEAT" and hold.quantity == 2
    assert held.json()["expires_at"].endswith("Z")

    taken = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-2", "seats": ["A-1-8", "A-1-9"]}, headers=owner
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "seats_unavailable" and taken.json()["error"]["details"]["seats"] == [
        "A-1-8"
    ]

    status = await gw.client.get(f"/v1/holds/{hold.hold_id}", headers=owner)
    assert status.status_code == 200 and status.json()["status"] == "held"
    assert HoldStatusOut.model_validate(status.json()).seats == ["A-1-7", "A-1-8"]

    confirm_headers = owner | {"Idempotency-Key": f"confirm-{hold.hold_id}"}
    confirmed = await gw.client.post(
        f"/v1/holds/{hold.hold_id}/confirm", json={"order_ref": "ord-1"}, headers=confirm_headers
    )
    assert confirmed.status_code == 201, confirmed.text
    sale = confirmed.json()
    assert SaleOut.model_validate(sale).hold_id == hold.hold_id
    assert sale["event_id"] == event_id and sale["sale_id"].startswith("sal_")
    assert [t["seat_id"] for t in sale["tickets"]] == ["A-1-7", "A-1-8"]
    assert all(set(t) == {"ticket_id", "ticket_type", "seat_id"} for t in sale["tickets"])

    replayed = await gw.client.post(
        f"/v1/holds/{hold.hold_id}/confirm", json={"order_ref": "ord-1"}, headers=confirm_headers
    )
    assert replayed.status_code == 201 and replayed.json() == sale
    assert replayed.headers["idempotent-replayed"] == "true"
    again = await gw.client.post(f"/v1/holds/{hold.hold_id}/confirm", json={"order_ref": "ord-1"}, headers=owner)
    assert again.status_code == 201 and again.json() == sale
    other = await gw.client.post(f"/v1/holds/{hold.hold_id}/confirm", json={"order_ref": "ord-2"}, headers=owner)
    assert other.status_code == 409 and other.json()["error"]["code"] == "invalid_transition"

    sold = await gw.client.get(f"/v1/holds/{hold.hold_id}", headers=owner)
    assert sold.status_code == 200 and sold.json()["status"] == "sold"
    released = await gw.client.delete(f"/v1/holds/{hold.hold_id}", headers=owner)
    assert released.status_code == 409 and released.json()["error"]["code"] == "invalid_transition"


async def test_ga_hold_and_confirm(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner, ga_capacity=5)
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-ga", "ticket_type": "GA", "quantity": 3}, headers=owner
    )
    assert held.status_code == 201, held.text
    assert held.json()["seats"] == [] and held.json()["ticket_type"] == "GA" and held.json()["quantity"] == 3
    short = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-ga2", "ticket_type": "GA", "quantity": 3}, headers=owner
    )
    assert short.status_code == 409 and short.json()["error"]["code"] == "insufficient_inventory"
    over = await gw.client.post(
        f"/v1/events/{event_id}/holds",
        json={"buyer_id": "b-ga", "seats": [f"A-1-{n}" for n in range(1, 9)]},
        headers=owner,
    )
    assert over.status_code == 422 and over.json()["error"]["code"] == "buyer_limit_exceeded"

    confirmed = await gw.client.post(
        f"/v1/holds/{held.json()['hold_id']}/confirm", json={"order_ref": "o-ga"}, headers=owner
    )
    assert confirmed.status_code == 201
    tickets = confirmed.json()["tickets"]
    assert sorted(t["unit"] for t in tickets) == [1, 2, 3]
    assert all(set(t) == {"ticket_id", "ticket_type", "unit"} and t["ticket_type"] == "GA" for t in tickets)

    availability = await availability_where(gw, owner, event_id, lambda b: ticket_type(b, "GA")["sold"] > 0)
    assert ticket_type(availability, "GA") == {"code": "GA", "capacity": 5, "available": 2, "held": 0, "sold": 3}


async def test_release_frees_seats_at_once(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner)
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-2-1"]}, headers=owner
    )
    hold_id = held.json()["hold_id"]
    assert (await gw.client.delete(f"/v1/holds/{hold_id}", headers=owner)).status_code == 204
    assert (await gw.client.delete(f"/v1/holds/{hold_id}", headers=owner)).status_code == 204  # same command
    retaken = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "c", "seats": ["A-2-1"]}, headers=owner
    )
    assert retaken.status_code == 201
    gone = await gw.client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": "late"}, headers=owner)
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "invalid_transition"


async def test_expired_hold_answers_410(database_url: str, redis_url: str, owner: dict[str, str]) -> None:
    clock = FakeClock()
    inventory = FakeInventoryClient(database_url, redis_url, clock=clock)
    async with running_gateway(database_url, redis_url, inventory=inventory) as gw:
        event_id = await on_sale_event(gw, owner)
        held = await gw.client.post(
            f"/v1/events/{event_id}/holds",
            json={"buyer_id": "b", "seats": ["A-1-1"], "ttl_s": SHORT_HOLD_TTL_S},
            headers=owner,
        )
        assert held.status_code == 201
        too_long = await gw.client.post(
            f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-2"], "ttl_s": 601}, headers=owner
        )
        assert too_long.status_code == 422 and too_long.json()["error"]["details"]["fields"][0]["field"] == "ttl_s"
        hold_id = held.json()["hold_id"]
        # Expiry is the core's, at the shell's clock: the hold lives until that clock, not the test's, moves on.
        assert (await gw.client.get(f"/v1/holds/{hold_id}", headers=owner)).status_code == 200
        clock.advance(SHORT_HOLD_TTL_S)
        expired = await gw.client.get(f"/v1/holds/{hold_id}", headers=owner)
        assert expired.status_code == 410 and expired.json()["error"]["code"] == "hold_expired"
        late = await gw.client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": "late"}, headers=owner)
        assert late.status_code == 410


async def test_availability_shape_and_bitmap(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner)
    first = await gw.client.get(f"/v1/events/{event_id}/availability", headers=owner)
    assert first.status_code == 200
    body = AvailabilityOut.model_validate(first.json())
    assert body.event_id == event_id and body.seats.total == 20 and body.seats.available == 20
    assert base64.b64decode(body.seats.bitmap) == b"\xff\xff\xf0"
    assert {t.code for t in body.ticket_types} == {"GA", "SEAT"}

    await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-1", "A-2-10"]}, headers=owner
    )
    after = await availability_where(gw, owner, event_id, lambda b: b["version"] > body.version)
    assert after["seats"]["available"] == 18
    assert base64.b64decode(after["seats"]["bitmap"]) == b"\x7f\xff\xe0"
    seat = next(t for t in after["ticket_types"] if t["code"] == "SEAT")
    assert seat == {"code": "SEAT", "capacity": 20, "available": 18, "held": 2, "sold": 0}


async def test_api_keys_create_scope_and_revoke(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner)
    created = await gw.client.post("/v1/api-keys", json={"name": "reader", "scopes": ["events:read"]}, headers=owner)
    assert created.status_code == 201, created.text
    key = ApiKeyOut.model_validate(created.json())
    assert key.name == "reader" and key.scopes == ["events:read"] and key.key.startswith("vk_")
    reader = {"Authorization": f"Bearer {key.key}"}
    assert (await gw.client.get(f"/v1/events/{event_id}", headers=reader)).status_code == 200
    denied = await gw.client.post("/v1/events", json=event_body(), headers=reader)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    escalate = await gw.client.post("/v1/api-keys", json={"name": "x", "scopes": ["keys:manage"]}, headers=reader)
    assert escalate.status_code == 403

    revoked = await gw.client.delete(f"/v1/api-keys/{key.id}", headers=owner)
    assert revoked.status_code == 204
    after = await gw.client.get(f"/v1/events/{event_id}", headers=reader)
    assert after.status_code == 401 and after.json()["error"]["code"] == "unauthorized"
    unknown = await gw.client.delete("/v1/api-keys/key_" + "0" * 32, headers=owner)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "api_key_not_found"


async def test_revocation_reaches_another_process(database_url: str, redis_url: str, owner: dict[str, str]) -> None:
    async with running_gateway(database_url, redis_url) as first, running_gateway(database_url, redis_url) as second:
        created = await first.client.post("/v1/api-keys", json={"name": "k", "scopes": ["keys:manage"]}, headers=owner)
        other = {"Authorization": f"Bearer {created.json()['key']}"}
        probe = {"name": "probe", "scopes": ["keys:manage"]}
        assert (await second.client.post("/v1/api-keys", json=probe, headers=other)).status_code == 201  # cached
        assert (await first.client.delete(f"/v1/api-keys/{created.json()['id']}", headers=owner)).status_code == 204
        for _ in range(50):  # the revocation travels over Redis pub/sub
            answer = await second.client.post("/v1/api-keys", json=probe, headers=other)
            if answer.status_code == 401:
                break
            await asyncio.sleep(0.02)
        assert answer.status_code == 401


async def test_idempotent_hold_replays_and_refuses_reuse(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await on_sale_event(gw, owner)
    headers = owner | {"Idempotency-Key": "hold-once-1"}
    body = {"buyer_id": "b-idem", "seats": ["A-1-3"]}
    first = await gw.client.post(f"/v1/events/{event_id}/holds", json=body, headers=headers)
    second = await gw.client.post(f"/v1/events/{event_id}/holds", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json() and second.headers["idempotent-replayed"] == "true"
    reused = await gw.client.post(f"/v1/events/{event_id}/holds", json=body | {"seats": ["A-1-4"]}, headers=headers)
    assert reused.status_code == 422 and reused.json()["error"]["code"] == "idempotency_key_reused"
    # Every answer came back after its command was applied, so the core holds all that will ever land.
    core = gw.inventory.inventory_of(event_id)
    assert core.live_hold_ids() == [first.json()["hold_id"]]
    availability = await availability_where(gw, owner, event_id, lambda b: b["version"] >= core.version)
    assert availability["seats"]["available"] == 19  # one hold, applied once

    twins = await asyncio.gather(
        *(
            gw.client.post(
                f"/v1/events/{event_id}/holds",
                json={"buyer_id": "t", "ticket_type": "GA", "quantity": 1},
                headers=owner | {"Idempotency-Key": "twin-1"},
            )
            for _ in range(5)
        )
    )
    assert {t.status_code for t in twins} == {201} and len({t.json()["hold_id"] for t in twins}) == 1
    assert set(core.live_hold_ids()) == {first.json()["hold_id"], twins[0].json()["hold_id"]}
    availability = await availability_where(gw, owner, event_id, lambda b: b["version"] >= core.version)
    assert ticket_type(availability, "GA")["held"] == 1


async def test_live_websocket_snapshot_then_delta(database_url: str, redis_url: str) -> None:
    _, key = await new_org(database_url, "live org")
    headers = {"Authorization": f"Bearer {key}"}
    async with running_gateway(database_url, redis_url, serve=True) as gw:
        event_id = await on_sale_event(gw, headers)
        ws_url = gw.url.replace("http://", "ws://") + f"/v1/events/{event_id}/live?key={key}"
        async with ws_connect(ws_url) as ws:
            snapshot = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert snapshot["type"] == "snapshot" and snapshot["event_id"] == event_id
            assert snapshot["seats"]["available"] == 20
            held = await gw.client.post(
                f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-5"]}, headers=headers
            )
            assert held.status_code == 201
            delta = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert delta["type"] == "delta" and delta["version"] == snapshot["version"] + 1
            assert delta["seats_changed"] == {"A-1-5": "held"}
            assert LiveDelta.model_validate(delta).seats_available == 19
            await ws.send(json.dumps({"type": "snapshot"}))
            again = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert again["type"] == "snapshot" and again["version"] == delta["version"]
        denied = await gw.client.get(
            f"/v1/events/{event_id}/live",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "x3JJHMbDL1EzLkh9GBhXDw==",
            },
        )
        assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"


async def test_operations_routes(gw: Gateway, owner: dict[str, str]) -> None:
    health = await gw.client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await gw.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "inventory": "ok"}
    await gw.client.get("/v1/events/evt_" + "0" * 32, headers=owner)
    scraped = await gw.client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    assert 'route="/v1/events/{event_id}"' in scraped.text and "voelgoed_http_request_seconds" in scraped.text

    document = (await gw.client.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    for route in gw.app.routes:
        assert isinstance(route, Route | WebSocketRoute)
        path = route.path
        assert path in document["paths"], path
        for method in documented_methods(route):
            assert method in document["paths"][path], (method, path)
    hold_op = document["paths"]["/v1/events/{event_id}/holds"]["post"]
    assert hold_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/HoldCreate")
    assert "HoldCreate" in document["components"]["schemas"]


async def test_router_errors_use_the_error_shape(gw: Gateway, owner: dict[str, str]) -> None:
    missing = await gw.client.get("/v1/nothing-here", headers=owner)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = await gw.client.put("/v1/events", headers=owner)
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in wrong.headers["allow"]


class FailingInventory(FakeInventoryClient):
    """Answers every command with a chosen failure; activation still works."""

    failure: BaseException | Rejected = RuntimeError("boom: secret internals")

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        if isinstance(self.failure, Rejected):
            return self.failure
        raise self.failure


async def test_failures_answer_in_the_error_shape(database_url: str, redis_url: str) -> None:
    _, key = await new_org(database_url, "failing org")
    headers = {"Authorization": f"Bearer {key}"}
    inventory = FailingInventory(database_url, redis_url)
    async with running_gateway(database_url, redis_url, inventory=inventory) as gw:
        event_id = await on_sale_event(gw, headers)
        hold = {"buyer_id": "b", "seats": ["A-1-1"]}
        crashed = await gw.client.post(f"/v1/events/{event_id}/holds", json=hold, headers=headers)
        assert crashed.status_code == 500 and crashed.json()["error"]["code"] == "internal_error"
        assert "boom" not in crashed.text and "Traceback" not in crashed.text

        inventory.failure = InventoryBusy()
        busy = await gw.client.post(f"/v1/events/{event_id}/holds", json=hold, headers=headers)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "inventory_busy"
        assert int(busy.headers["retry-after"]) >= 1

        inventory.failure = Rejected("persistence_unavailable", "Postgres is down")
        down = await gw.client.post(
            f"/v1/holds/{'hld_' + event_id[4:] + '0' * 20}/confirm",
            json={"order_ref": "o"},
            headers=headers | {"Idempotency-Key": "confirm-while-down"},
        )
        assert down.status_code == 503 and down.json()["error"]["code"] == "persistence_unavailable"
        assert "retry-after" in down.headers

        inventory.failure = Rejected("hold_not_found", "no such hold")
        retried = await gw.client.post(
            f"/v1/holds/{'hld_' + event_id[4:] + '0' * 20}/confirm",
            json={"order_ref": "o"},
            headers=headers | {"Idempotency-Key": "confirm-while-down"},
        )
        assert retried.status_code == 404, "a 503 is not stored: the retry runs again"


def test_a_slow_live_client_gets_a_snapshot_instead_of_a_backlog() -> None:
    subscriber = LiveSubscriber(queue_max=2)
    deltas = [Delta(v, {}, {}, 0, (), False) for v in (1, 2, 3)]
    for delta in deltas[:2]:
        subscriber.offer(delta)
    assert subscriber.queue.qsize() == 2 and subscriber.resyncs == 0
    subscriber.offer(deltas[2])  # overflow: the backlog goes, a snapshot request takes its place
    assert subscriber.resyncs == 1 and subscriber.queue.qsize() == 1
    assert subscriber.queue.get_nowait() is RESYNC
