"""Tenancy through the gateway: what a publishable key may see, who may read seat ids, and that event writes are
audited in their own transaction. (Other orgs' ids -> 404 for every route: the cross-tenant matrix; row-level
security: tests/integration/test_rls.py.)"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.fakes import event_body, new_org, running_gateway

BUYING = ["inventory:read", "inventory:hold", "inventory:confirm"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _key(client: Any, owner: dict[str, str], scopes: list[str], kind: str = "secret") -> str:
    made = await client.post("/v1/api-keys", json={"name": kind, "scopes": scopes, "kind": kind}, headers=owner)
    assert made.status_code == 201, made.text
    key: str = made.json()["key"]
    return key


async def test_a_publishable_key_cannot_see_a_draft_even_on_the_live_feed(database_url: str, redis_url: str) -> None:
    _, owner_key = await new_org(database_url, "publishable live")
    owner = bearer(owner_key)
    async with running_gateway(database_url, redis_url, serve=True) as gw:
        draft = (await gw.client.post("/v1/events", json=event_body(), headers=owner)).json()["id"]
        public = await _key(gw.client, owner, BUYING, kind="publishable")
        secret_reader = await _key(gw.client, owner, ["inventory:read"])
        base = gw.url.replace("http://", "ws://")
        for key, status in ((public, 404), (secret_reader, 409)):
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(f"{base}/v1/events/{draft}/live?key={key}"):
                    pass
            assert refused.value.response.status_code == status
            code = json.loads(refused.value.response.body or b"{}")["error"]["code"]
            assert code == ("event_not_found" if status == 404 else "not_on_sale")
        # the same draft, over HTTP: 404 to the publishable key, 409 to a secret key with the same scope
        assert (await gw.client.get(f"/v1/events/{draft}/availability", headers=bearer(public))).status_code == 404
        answer = await gw.client.get(f"/v1/events/{draft}/availability", headers=bearer(secret_reader))
        assert answer.status_code == 409


async def test_seat_ids_need_inventory_read_or_events_read(database_url: str, redis_url: str) -> None:
    _, owner_key = await new_org(database_url, "seat readers")
    _, other_key = await new_org(database_url, "seat readers other")
    owner = bearer(owner_key)
    async with running_gateway(database_url, redis_url) as gw:
        event_id = (await gw.client.post("/v1/events", json=event_body(rows=1), headers=owner)).json()["id"]
        for scopes in (["inventory:read"], ["events:read"]):
            key = await _key(gw.client, owner, scopes)
            seats = await gw.client.get(f"/v1/events/{event_id}/seats", headers=bearer(key))
            assert seats.status_code == 200, (scopes, seats.text)
            assert seats.json()["seat_ids"][:2] == ["A-1-1", "A-1-2"]
        holder = await _key(gw.client, owner, ["inventory:hold"])
        refused = await gw.client.get(f"/v1/events/{event_id}/seats", headers=bearer(holder))
        assert refused.status_code == 403 and refused.json()["error"]["details"] == {"scope": "inventory:read"}
        theirs = await gw.client.get(f"/v1/events/{event_id}/seats", headers=bearer(other_key))
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "event_not_found"


async def test_event_create_and_publish_are_audited_once_in_their_transaction(
    database_url: str, redis_url: str
) -> None:
    org_id, owner_key = await new_org(database_url, "audited events")
    owner = bearer(owner_key)
    async with running_gateway(database_url, redis_url) as gw:
        created = await gw.client.post("/v1/events", json=event_body(rows=1), headers=owner)
        assert created.status_code == 201, created.text
        event_id = created.json()["id"]
        for _ in range(2):  # publishing again changes nothing, and audits nothing
            published = await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)
            assert published.status_code == 200, published.text
    admin = await asyncpg.connect(database_url)
    try:
        rows = await admin.fetch(
            "SELECT actor_type, action, before, after FROM audit_log WHERE org_id = $1 AND object_id = $2 ORDER BY seq",
            org_id,
            event_id,
        )
    finally:
        await admin.close()
    assert [(r["actor_type"], r["action"]) for r in rows] == [("key", "event.create"), ("key", "event.publish")]
    create_after = json.loads(rows[0]["after"])
    assert create_after["name"] == "Flash Sale Live" and create_after["status"] == "draft"
    assert json.loads(rows[1]["before"]) == {"status": "draft"}
    assert json.loads(rows[1]["after"])["status"] == "on_sale"
