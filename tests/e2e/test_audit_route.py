"""GET /v1/audit-log end to end (the real app over the fake inventory, real Postgres and Redis): filters, cursor
pagination, the entry shape (hashes a client can check), bad query parameters, 401/403, and tenant isolation."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from engine.audit_chain import GENESIS_HASH, ChainedEntry, Entry, verify
from gateway.routes.audit import AuditLogOut, encode_cursor
from persistence import audit
from persistence.db import connect
from persistence.tenancy import org_transaction
from tests.fakes import Gateway, new_org, running_gateway

ROUTE = "/v1/audit-log"
SEEDED_CALLS = 12
ACTORS = (audit.Actor("user", "usr_" + "1" * 32, "192.0.2.1"), audit.Actor("key", "key_" + "2" * 32, "192.0.2.2"))
ACTIONS = ("event.create", "event.publish", "sale.create")


@dataclass
class World:
    gw: Gateway
    org_a: str
    a: dict[str, str]
    org_b: str
    b: dict[str, str]
    no_audit_scope: dict[str, str]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def object_id(n: int) -> str:
    return f"evt_{n % 4:032x}"


async def seed(database_url: str, org_id: str) -> None:
    """Entries with known actors, actions, objects and (one per call) distinct times."""
    conn = await connect(database_url)
    try:
        for n in range(SEEDED_CALLS):
            async with org_transaction(conn, org_id) as db:
                changes = [
                    audit.Change(ACTIONS[(n + i) % 3], "event", object_id(n + i), after={"n": n, "i": i})
                    for i in range(1 + n % 2)
                ]
                await audit.record(db, ACTORS[n % 2], *changes)
            await asyncio.sleep(0.002)  # each call its own time, for the since/until filters
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def world(database_url: str, redis_url: str) -> AsyncIterator[World]:
    async with running_gateway(database_url, redis_url) as gw:
        org_a, key_a = await new_org(database_url, "audit a")
        org_b, key_b = await new_org(database_url, "audit b")
        made = await gw.client.post(
            "/v1/api-keys", json={"name": "reader", "scopes": ["events:read"]}, headers=bearer(key_a)
        )
        assert made.status_code == 201, made.text
        await seed(database_url, org_a)
        await seed(database_url, org_b)
        yield World(gw, org_a, bearer(key_a), org_b, bearer(key_b), bearer(made.json()["key"]))


async def walk(world: World, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """Every entry matching ``params``, following next_cursor page by page."""
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = params | ({"cursor": cursor} if cursor is not None else {})
        response = await world.gw.client.get(ROUTE, params=query, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        AuditLogOut.model_validate(page)
        assert len(page["entries"]) <= params.get("limit", 50)
        entries += page["entries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return entries
        assert page["entries"], "a page that promises more is never empty"
    raise AssertionError("the cursor never ended")


def as_chained(org_id: str, item: dict[str, Any]) -> ChainedEntry:
    entry = Entry(
        org_id=org_id,
        seq=item["seq"],
        at=datetime.fromisoformat(item["at"]),
        actor_type=item["actor"]["type"],
        actor_id=item["actor"]["id"],
        action=item["action"],
        object_type=item["object"]["type"],
        object_id=item["object"]["id"],
        ip=item["ip"],
        before=item["before"],
        after=item["after"],
    )
    return ChainedEntry(entry, bytes.fromhex(item["prev_hash"]), bytes.fromhex(item["hash"]))


@pytest.mark.parametrize("limit", [1, 3, 7, 50, 200])
async def test_the_cursor_walks_every_entry_exactly_once(world: World, limit: int) -> None:
    entries = await walk(world, world.a, limit=limit)
    seqs = [e["seq"] for e in entries]
    assert seqs == list(range(len(seqs), 0, -1))  # newest first, none missed, none twice
    assert len(seqs) >= SEEDED_CALLS


async def test_entries_carry_a_chain_a_client_can_check(world: World) -> None:
    entries = await walk(world, world.a, limit=200)
    first = entries[-1]
    assert first["seq"] == 1 and first["prev_hash"] == GENESIS_HASH.hex()
    assert all(len(e["hash"]) == 64 and len(e["prev_hash"]) == 64 for e in entries)
    chained = [as_chained(world.org_a, e) for e in reversed(entries)]
    assert verify(chained, org_id=world.org_a).ok
    # the org's creation is the start of its log: its owner key, made by the platform
    assert {(e["action"], e["actor"]["type"]) for e in entries if e["seq"] <= 2} >= {("api_key.create", "system")}
    assert not any("key" in (e["after"] or {}) or "secret_hash" in (e["after"] or {}) for e in entries)


async def test_filters(world: World) -> None:
    everything = await walk(world, world.a, limit=200)

    def expected(keep: Any) -> list[int]:
        return [e["seq"] for e in everything if keep(e)]

    actor = ACTORS[1].id
    by_actor = await walk(world, world.a, actor=actor, limit=4)
    assert [e["seq"] for e in by_actor] == expected(lambda e: e["actor"]["id"] == actor) and by_actor
    by_action = await walk(world, world.a, action="event.publish", limit=4)
    assert [e["seq"] for e in by_action] == expected(lambda e: e["action"] == "event.publish") and by_action
    by_object = await walk(world, world.a, object=object_id(1), limit=4)
    assert [e["seq"] for e in by_object] == expected(lambda e: e["object"]["id"] == object_id(1)) and by_object
    middle = everything[len(everything) // 2]["at"]
    since = await walk(world, world.a, since=middle, limit=5)
    assert [e["seq"] for e in since] == expected(lambda e: e["at"] >= middle) and since
    until = await walk(world, world.a, until=middle, limit=5)
    assert [e["seq"] for e in until] == expected(lambda e: e["at"] < middle) and until
    combined = await walk(world, world.a, actor=actor, action="sale.create", since=middle, limit=2)
    assert [e["seq"] for e in combined] == expected(
        lambda e: e["actor"]["id"] == actor and e["action"] == "sale.create" and e["at"] >= middle
    )
    offset = await walk(world, world.a, since=middle.replace("Z", "+02:00"), limit=200)
    assert {e["seq"] for e in offset} >= {e["seq"] for e in since}
    none = await walk(world, world.a, actor="key_" + "f" * 32)
    assert none == []


async def test_the_extreme_times_in_range_are_answered(world: World) -> None:
    """The ends of the range UTC can hold are filters like any other (200, not 422 nor a 503 from the driver)."""
    for params, some in (({"since": "9999-12-31T23:59:59Z"}, False), ({"since": "0001-01-01T01:00:00+01:00"}, True)):
        response = await world.gw.client.get(ROUTE, params=params, headers=world.a)
        assert response.status_code == 200, response.text
        assert bool(response.json()["entries"]) is some


async def test_default_page_is_50(world: World) -> None:
    response = await world.gw.client.get(ROUTE, headers=world.a)
    assert response.status_code == 200
    assert len(response.json()["entries"]) == min(50, len(await walk(world, world.a, limit=200)))


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": _cursor(b"seq:0")}, "cursor"),
        ({"cursor": _cursor(b"seq:-4")}, "cursor"),
        ({"cursor": _cursor(b"\xff\xfe")}, "cursor"),
        ({"cursor": "x" * 5000}, "cursor"),
        ({"cursor": ""}, "cursor"),
        ({"since": "yesterday"}, "since"),
        ({"since": "1700000000"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no offset: ambiguous
        ({"since": "2026-02-30T00:00:00Z"}, "since"),
        ({"until": "2026-01-01"}, "until"),
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),  # year 10000 in UTC: once a 503 from the driver
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # year 0 in UTC
        ({"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "until"),
        ({"action": "Event Create"}, "action"),
        ({"action": "x" * 65 + ".y"}, "action"),
        ({"actor": ""}, "actor"),
        ({"actor": "a b"}, "actor"),
        ({"object": "x" * 201}, "object"),
        ({"object": "nul\x00"}, "object"),
        ({"actor_id": "key_1"}, "actor_id"),
    ],
)
async def test_bad_query_parameters_are_422_naming_the_field(world: World, params: dict[str, str], field: str) -> None:
    response = await world.gw.client.get(ROUTE, params=params, headers=world.a)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert field in {f["field"] for f in error["details"]["fields"]}, error


async def test_a_repeated_parameter_is_422(world: World) -> None:
    response = await world.gw.client.get(f"{ROUTE}?limit=5&limit=6", headers=world.a)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["fields"][0]["field"] == "limit"


async def test_no_key_is_401_and_without_the_scope_403(world: World) -> None:
    for headers in ({}, bearer("vk_000000000000_" + "A" * 43), {"Authorization": "Bearer nope"}):
        response = await world.gw.client.get(ROUTE, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    response = await world.gw.client.get(ROUTE, headers=world.no_audit_scope)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


async def test_an_org_never_sees_another_orgs_entries(world: World) -> None:
    seen_a = await walk(world, world.a, limit=200)
    seen_b = await walk(world, world.b, limit=200)
    hashes_a = {e["hash"] for e in seen_a}
    assert not hashes_a & {e["hash"] for e in seen_b}
    assert verify([as_chained(world.org_b, e) for e in reversed(seen_b)], org_id=world.org_b).ok
    # the other org's objects and actors find nothing, and A's cursor only pages B's own entries
    a_only = next(e for e in seen_a if e["action"] == "api_key.create")
    assert await walk(world, world.b, object=a_only["object"]["id"]) == []
    paged = await walk(world, world.b, cursor=encode_cursor(len(seen_b) + 1000), limit=200)
    assert [e["hash"] for e in paged] == [e["hash"] for e in seen_b]


async def test_openapi_documents_the_query_parameters(world: World) -> None:
    spec = (await world.gw.client.get("/openapi.json")).json()
    op = spec["paths"][ROUTE]["get"]
    names = {p["name"] for p in op["parameters"] if p["in"] == "query"}
    assert names == {"actor", "action", "object", "since", "until", "limit", "cursor"}
    assert op["x-scope"] == "audit:read" and "422" in op["responses"]
