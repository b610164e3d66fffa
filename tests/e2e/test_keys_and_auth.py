"""API keys and authentication end to end, through the real app over the fake inventory on real Postgres and
Redis: the 401 cases, key kinds and expiry, what a publishable key reaches, scopes never beyond the creator's,
listing without secrets, another org's key id, people's session tokens, and the audit entries of key changes."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import redis

from engine.access.passwords import hash_password
from gateway.routes.access.models import ApiKeyList, ApiKeyOut
from gateway.sessions import TokenSigner, mark_revoked
from persistence import audit
from persistence.access import memberships, sessions, users
from persistence.db import connect
from persistence.tenancy import org_transaction
from tests.fakes import TEST_SESSION_SECRET, Gateway, event_body, new_org, running_gateway

KEY_FIELDS = {"id", "name", "kind", "prefix", "scopes", "created_at", "created_by", "expires_at", "key"}
LISTED_FIELDS = {"id", "name", "kind", "prefix", "scopes", "created_at", "created_by", "expires_at", "revoked_at",
                 "last_used_at"}  # fmt: skip
BUYING = ["inventory:read", "inventory:hold", "inventory:confirm"]


@pytest.fixture(scope="module")
async def gw(database_url: str, redis_url: str) -> AsyncIterator[Gateway]:
    # A fresh Redis: earlier modules' failed authentications must not count against this one's address.
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    async with running_gateway(database_url, redis_url) as gateway:
        yield gateway


@pytest.fixture(scope="module")
async def org(database_url: str) -> tuple[str, dict[str, str]]:
    org_id, key = await new_org(database_url, "keys org")
    return org_id, bearer(key)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(gw: Gateway, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await gw.client.post("/v1/api-keys", json={"name": "k", **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def assert_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and set(error) == {"code", "message", "details"}


async def on_sale_event(gw: Gateway, headers: dict[str, str], *, publish: bool = True) -> str:
    created = await gw.client.post("/v1/events", json=event_body(), headers=headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    if publish:
        published = await gw.client.post(f"/v1/events/{event_id}/publish", headers=headers)
        assert published.status_code == 200, published.text
    return event_id


async def test_create_shows_the_key_once_and_list_never_does(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    expires_at = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    created = await make_key(
        gw, owner, scopes=["events:read"], expires_at=expires_at.isoformat().replace("+00:00", "Z")
    )
    assert set(created) == KEY_FIELDS
    ApiKeyOut.model_validate(created)
    assert created["kind"] == "secret" and created["key"].startswith(f"vk_{created['prefix']}_")
    assert created["expires_at"] == expires_at.isoformat().replace("+00:00", "Z")
    assert created["created_by"].startswith("key:key_")

    listed = await gw.client.get("/v1/api-keys", headers=owner)
    assert listed.status_code == 200, listed.text
    keys = listed.json()["api_keys"]
    ApiKeyList.model_validate(listed.json())
    assert all(set(k) == LISTED_FIELDS for k in keys)
    assert created["id"] in {k["id"] for k in keys}
    secret = created["key"].split("_", 2)[2]
    assert secret not in listed.text and "secret_hash" not in listed.text
    owner_key = next(k for k in keys if k["name"] == "owner")
    assert owner_key["created_by"] == "system:cli" and owner_key["scopes"]


async def test_revoked_expired_malformed_and_unknown_keys_are_401(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    revoked = await make_key(gw, owner, scopes=["events:read", "keys:manage"])
    assert (await gw.client.get("/v1/api-keys", headers=bearer(revoked["key"]))).status_code == 200
    assert (await gw.client.delete(f"/v1/api-keys/{revoked['id']}", headers=owner)).status_code == 204
    assert_401(await gw.client.get("/v1/api-keys", headers=bearer(revoked["key"])))
    assert (await gw.client.delete(f"/v1/api-keys/{revoked['id']}", headers=owner)).status_code == 204  # again

    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    expiring = await make_key(gw, owner, scopes=["keys:manage"], expires_at=soon.isoformat())
    assert (await gw.client.get("/v1/api-keys", headers=bearer(expiring["key"]))).status_code == 200
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    expired = await gw.client.get("/v1/api-keys", headers=bearer(expiring["key"]))
    assert_401(expired)
    assert expired.json()["error"]["details"] == {"reason": "expired"}

    prefix = revoked["prefix"]
    for bad in ("", "vk_", "vk_nothex00000_" + "a" * 43, f"vk_{'0' * 12}_{'a' * 43}", f"vk_{prefix}_{'a' * 43}"):
        assert_401(await gw.client.get("/v1/api-keys", headers=bearer(bad)))
    assert_401(await gw.client.get("/v1/api-keys"))
    assert_401(await gw.client.get("/v1/api-keys", headers={"Authorization": "Basic dXNlcjpwYXNz"}))


async def test_listing_shows_revocation_and_last_use(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    used = await make_key(gw, owner, scopes=["keys:manage"])
    assert (await gw.client.get("/v1/api-keys", headers=bearer(used["key"]))).status_code == 200
    await gw.app.state.services.auth.flush_last_used()  # what the background writer does every few seconds
    revoked = await make_key(gw, owner, scopes=["events:read"])
    assert (await gw.client.delete(f"/v1/api-keys/{revoked['id']}", headers=owner)).status_code == 204
    keys = {k["id"]: k for k in (await gw.client.get("/v1/api-keys", headers=owner)).json()["api_keys"]}
    assert keys[used["id"]]["last_used_at"] is not None and keys[used["id"]]["revoked_at"] is None
    assert keys[revoked["id"]]["revoked_at"] is not None and keys[revoked["id"]]["last_used_at"] is None


async def test_a_key_never_grants_more_than_its_creator(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    manager = await make_key(gw, owner, scopes=["keys:manage", "events:read"])
    refused = await gw.client.post(
        "/v1/api-keys", json={"name": "up", "scopes": ["events:read", "events:write"]}, headers=bearer(manager["key"])
    )
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["details"] == {"scopes": ["events:write"]}
    child = await make_key(gw, bearer(manager["key"]), scopes=["events:read"])
    assert child["created_by"] == f"key:{manager['id']}"


async def test_a_key_never_outlives_the_key_that_made_it(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    manager = await make_key(gw, owner, scopes=["keys:manage", "events:read"], expires_at=tomorrow.isoformat())
    as_manager = bearer(manager["key"])
    by_default = await make_key(gw, as_manager, scopes=["events:read"])
    assert by_default["expires_at"] == manager["expires_at"]  # none asked: the creator's expiry, not "never"
    earlier = (tomorrow - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert (await make_key(gw, as_manager, scopes=["events:read"], expires_at=earlier))["expires_at"] == earlier
    assert (await make_key(gw, as_manager, scopes=["events:read"], expires_at=tomorrow.isoformat()))["expires_at"]
    later = (tomorrow + timedelta(days=1)).isoformat()
    refused = await gw.client.post(
        "/v1/api-keys", json={"name": "forever", "scopes": ["keys:manage"], "expires_at": later}, headers=as_manager
    )
    assert refused.status_code == 422, refused.text
    assert [f["field"] for f in refused.json()["error"]["details"]["fields"]] == ["expires_at"]
    grandchild_maker = await make_key(gw, as_manager, scopes=["keys:manage"])
    grandchild = await make_key(gw, bearer(grandchild_maker["key"]), scopes=["keys:manage"])
    assert grandchild["expires_at"] == manager["expires_at"]  # the bound passes down every generation


async def test_bad_key_requests_are_422_naming_the_field(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    too_far = (datetime.now(UTC) + timedelta(days=800)).isoformat()
    cases = [
        ({"name": "p", "scopes": ["events:read"], "kind": "publishable"}, "scopes"),
        ({"name": "p", "scopes": ["inventory:read", "keys:manage"], "kind": "publishable"}, "scopes"),
        ({"name": "p", "scopes": ["events:read"], "kind": "private"}, "kind"),
        ({"name": "p", "scopes": ["events:read"], "expires_at": past}, "expires_at"),
        ({"name": "p", "scopes": ["events:read"], "expires_at": too_far}, "expires_at"),
        ({"name": "p", "scopes": ["events:read"], "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
        ({"name": "p", "scopes": ["events:read"], "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "p", "scopes": ["root"]}, "scopes.0"),
        ({"name": "p", "scopes": ["events:read"], "owner": True}, "owner"),
    ]
    before = len((await gw.client.get("/v1/api-keys", headers=owner)).json()["api_keys"])
    for body, field in cases:
        response = await gw.client.post("/v1/api-keys", json=body, headers=owner)
        assert response.status_code == 422, (body, response.text)
        fields = [f["field"] for f in response.json()["error"]["details"]["fields"]]
        assert field in fields, (body, fields)
    assert len((await gw.client.get("/v1/api-keys", headers=owner)).json()["api_keys"]) == before


async def test_another_orgs_key_id_is_404(gw: Gateway, org: tuple[str, dict[str, str]], database_url: str) -> None:
    _, owner = org
    _, other_owner = await new_org(database_url, "other keys org")
    theirs = await make_key(gw, bearer(other_owner), scopes=["events:read"])
    for key_id in (theirs["id"], "key_" + "0" * 32, "nonsense"):
        response = await gw.client.delete(f"/v1/api-keys/{key_id}", headers=owner)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "api_key_not_found"
    assert theirs["id"] not in (await gw.client.get("/v1/api-keys", headers=owner)).text
    assert (await gw.client.get("/v1/api-keys", headers=bearer(theirs["key"]))).status_code == 403  # alive


async def test_a_publishable_key_buys_on_sale_events_only(gw: Gateway, org: tuple[str, dict[str, str]]) -> None:
    _, owner = org
    event_id = await on_sale_event(gw, owner)
    draft_id = await on_sale_event(gw, owner, publish=False)
    front = await make_key(gw, owner, scopes=BUYING, kind="publishable")
    assert front["kind"] == "publishable"
    pk = bearer(front["key"])

    assert (await gw.client.get(f"/v1/events/{event_id}/availability", headers=pk)).status_code == 200
    assert (await gw.client.get(f"/v1/events/{event_id}/seats", headers=pk)).status_code == 200
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-1", "seats": ["A-1-1"]}, headers=pk
    )
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    confirmed = await gw.client.post(f"/v1/holds/{hold_id}/confirm", json={"order_ref": "o-1"}, headers=pk)
    assert confirmed.status_code == 201, confirmed.text
    other = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b-2", "seats": ["A-1-2"]}, headers=pk
    )
    assert other.status_code == 201, other.text
    assert (await gw.client.delete(f"/v1/holds/{other.json()['hold_id']}", headers=pk)).status_code in (200, 204)

    for path in (f"/v1/events/{draft_id}/availability", f"/v1/events/{draft_id}/seats"):
        response = await gw.client.get(path, headers=pk)
        assert response.status_code == 404, (path, response.text)
    draft_hold = await gw.client.post(
        f"/v1/events/{draft_id}/holds", json={"buyer_id": "b-3", "seats": ["A-1-3"]}, headers=pk
    )
    assert draft_hold.status_code == 404, draft_hold.text

    forbidden = [
        ("GET", f"/v1/events/{event_id}", None),
        ("POST", "/v1/events", event_body()),
        ("POST", f"/v1/events/{draft_id}/publish", None),
        ("GET", "/v1/api-keys", None),
        ("POST", "/v1/api-keys", {"name": "x", "scopes": ["inventory:read"], "kind": "publishable"}),
        ("DELETE", f"/v1/api-keys/{front['id']}", None),
    ]
    for method, path, body in forbidden:
        response = await gw.client.request(method, path, json=body, headers=pk)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "forbidden"


async def _member_session(database_url: str, org_id: str, role: str) -> tuple[str, str]:
    """(user id, session id) of a new member of the org with a live session."""
    conn: asyncpg.Connection = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            user = await users.create_user(
                db.conn, f"p{secrets.token_hex(4)}@example.com", hash_password("correct horse battery")
            )
            await memberships.add_member(db, user.id, role, accepted=True)
            session, _ = await sessions.create_session(db, user.id)
        return user.id, session.id
    finally:
        await conn.close()


async def test_people_authenticate_with_session_tokens(
    gw: Gateway, org: tuple[str, dict[str, str]], database_url: str, redis_url: str
) -> None:
    org_id, _ = await new_org(database_url, "people keys org")
    user_id, session_id = await _member_session(database_url, org_id, "admin")
    token, _ = TokenSigner(TEST_SESSION_SECRET).issue_access(user_id, org_id, session_id, "admin")
    person = bearer(token)

    created = await make_key(gw, person, scopes=["events:read"])
    assert created["created_by"] == f"user:{user_id}"
    assert created["expires_at"] is None  # a person's keys belong to the org: the session's life bounds nothing

    scanner_id, scanner_session = await _member_session(database_url, org_id, "scanner")
    scanner_token, _ = TokenSigner(TEST_SESSION_SECRET).issue_access(scanner_id, org_id, scanner_session, "scanner")
    assert (await gw.client.get("/v1/api-keys", headers=bearer(scanner_token))).status_code == 403

    forged, _ = TokenSigner("another-secret-" + "y" * 32).issue_access(user_id, org_id, session_id, "owner")
    assert_401(await gw.client.get("/v1/api-keys", headers=bearer(forged)))
    expired, _ = TokenSigner(TEST_SESSION_SECRET, clock=lambda: 1_000_000.0).issue_access(
        user_id, org_id, session_id, "admin"
    )
    assert_401(await gw.client.get("/v1/api-keys", headers=bearer(expired)))

    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        await mark_revoked(client, org_id, session_id)
    finally:
        await client.aclose()
    assert_401(await gw.client.get("/v1/api-keys", headers=person))

    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            rows = [row.entry for row in await audit.query(db, action="api_key.create", limit=10)]
    finally:
        await conn.close()
    mine = [e for e in rows if e.object_id == created["id"]]
    assert len(mine) == 1 and (mine[0].actor_type, mine[0].actor_id) == ("user", user_id)
    assert created["key"].split("_", 2)[2] not in repr(rows)


async def test_creating_and_revoking_are_audited(
    gw: Gateway, org: tuple[str, dict[str, str]], database_url: str
) -> None:
    org_id, owner = org
    created = await make_key(gw, owner, scopes=["events:read"])
    assert (await gw.client.delete(f"/v1/api-keys/{created['id']}", headers=owner)).status_code == 204
    assert (await gw.client.delete(f"/v1/api-keys/{created['id']}", headers=owner)).status_code == 204
    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            rows = [row.entry for row in await audit.query(db, object_id=created["id"], limit=10)]
        verified = await audit.verify(conn, org_id)
    finally:
        await conn.close()
    assert sorted(e.action for e in rows) == ["api_key.create", "api_key.revoke"]  # revoking twice: one entry
    assert all(e.actor_type == "key" for e in rows)
    assert created["key"] not in repr(rows) and created["key"].split("_", 2)[2] not in repr(rows)
    assert verified.ok
