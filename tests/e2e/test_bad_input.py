"""Bad input on every route, and the cross-tenant matrix: every route of the router has an entry here, and for each
one no credential answers 401, a key without the route's scope 403, and org A's key or A's person's session
against org B's object ids 404. Each answer is a 4xx in the error shape (never a 500), and nothing changes."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis
from starlette.routing import Route, WebSocketRoute
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from engine.access.rules import SCOPES
from engine.tickets.sealing import MasterKey
from gateway.context import body_bytes_max
from gateway.routes import all_routes
from gateway.routes.catalog.venues import layout_body_bytes_max
from persistence.db import create_pool
from persistence.inventory import live_state
from persistence.tenancy import org_transaction
from persistence.tickets import create_key
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.paysim_fixtures import PaysimProcess, simulator_payments

UNKNOWN_EVENT = "evt_" + "0" * 32
VENUE_BODY = {"name": "Hall", "timezone": "Africa/Johannesburg"}
LAYOUT_BODY = {
    "name": "Main",
    "zones": [{"code": "FLOOR", "name": "Floor"}],
    "sections": [{"name": "A", "rows": [{"label": "1", "seats": 4, "zone": "FLOOR"}]}],
}
UNKNOWN_HOLD = "hld_" + "0" * 52
FAR = "2099-01-01T00:00:00Z"
# The PATCH routes' bodies name every field they take, the price ones included, so each refusal below is checked
# for the new fields too (and a change of another org's prices is as unknown as its event).
PATCH_EVENT_BODY = {
    "name": "Renamed",
    "fees": [{"code": "BOOKING", "per": "order", "amount_minor": 100}],
    "tax": {"code": "VAT", "rate_bp": 1500, "included": True},
}
PATCH_TYPE_BODY = {
    "capacity": 60,
    "price": {"amount_minor": 16_000, "currency": "ZAR"},
    "price_tiers": [{"until": FAR, "price": {"amount_minor": 14_000, "currency": "ZAR"}}],
}
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Objects:
    """One org's objects, by the router's own path parameter names."""

    event_id: str
    hold_id: str
    key_id: str
    user_id: str
    venue_id: str
    layout_id: str
    kid: str = ""  # the org's ticket key (GET /v1/ticket-keys lists it); no path names one
    code: str = "GA"  # a ticket type of the event
    order_id: str = "ord_" + "0" * 52
    ticket_id: str = "tkt_" + "0" * 52 + "_1"

    def params(self) -> dict[str, str]:
        return {
            "event_id": self.event_id, "hold_id": self.hold_id, "key_id": self.key_id, "user_id": self.user_id,
            "venue_id": self.venue_id, "layout_id": self.layout_id, "kid": self.kid,
            "code": self.code, "order_id": self.order_id, "ticket_id": self.ticket_id,
        }


@dataclass
class World:
    gw: Gateway
    redis: Redis
    org_id: str
    owner: dict[str, str]
    session: dict[str, str]  # an admin person of org A, logged in
    own: Objects
    other_owner: dict[str, str]
    other: Objects
    scoped: dict[str, dict[str, str]]  # scope -> headers of a key holding only that scope

    @property
    def event_id(self) -> str:
        return self.own.event_id

    @property
    def hold_id(self) -> str:
        return self.own.hold_id


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _tenant(gw: Gateway, database_url: str, name: str) -> tuple[str, dict[str, str], Objects]:
    org_id, key = await new_org(database_url, name)
    headers = bearer(key)
    created = await gw.client.post("/v1/events", json=event_body(), headers=headers)
    event_id = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=headers)).status_code == 200
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-1-1"]}, headers=headers
    )
    assert held.status_code == 201
    made = await gw.client.post("/v1/api-keys", json={"name": "spare", "scopes": ["events:read"]}, headers=headers)
    email = f"analyst@{org_id.removeprefix('org_')}.example.com"
    member = await gw.client.post("/v1/members", json={"email": email, "role": "analyst"}, headers=headers)
    assert member.status_code == 201, member.text
    venue = await gw.client.post("/v1/venues", json=VENUE_BODY, headers=headers)
    assert venue.status_code == 201, venue.text
    layout = await gw.client.post(f"/v1/venues/{venue.json()['id']}/layouts", json=LAYOUT_BODY, headers=headers)
    assert layout.status_code == 201, layout.text
    # No route makes a ticket key yet (issuing a ticket will): the store's own call, as the platform's role.
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
            ticket_key = await create_key(db, MasterKey(secrets.token_bytes(32)))
    finally:
        await pool.close()
    assert ticket_key is not None
    to_order = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "ticket_type": "GA", "quantity": 1}, headers=headers
    )
    ordered = await gw.client.post(f"/v1/holds/{to_order.json()['hold_id']}/checkout", headers=headers,
                                   json={"buyer": {"email": "b@example.com", "name": "B"}})  # fmt: skip
    assert ordered.status_code == 201, ordered.text
    order_id = ordered.json()["order_id"]
    # a ticket of its sale once paid (no code issued: the matrix checks only who may ask)
    ticket_id = "tkt_" + order_id.removeprefix("ord_") + "_1"
    objects = Objects(
        event_id, held.json()["hold_id"], made.json()["id"], member.json()["user_id"], venue.json()["id"],
        layout.json()["id"], ticket_key.kid, order_id=order_id, ticket_id=ticket_id,
    )
    return org_id, headers, objects


async def _admin_session(gw: Gateway, org_id: str, owner: dict[str, str]) -> dict[str, str]:
    """A person with every permission but an owner's (keys cannot make owners), logged in to the org."""
    email = f"admin@{org_id.removeprefix('org_')}.example.com"
    invited = await gw.client.post("/v1/members", json={"email": email, "role": "admin"}, headers=owner)
    token = invited.json()["invitation"]["token"]
    accepted = await gw.client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 200, accepted.text
    login = await gw.client.post("/v1/sessions", json={"email": email, "password": PASSWORD})
    assert login.status_code == 201, login.text
    return bearer(login.json()["access_token"])


@pytest.fixture(scope="module")
async def world(database_url: str, redis_url: str, paysim_process: PaysimProcess) -> AsyncIterator[World]:
    async with (
        simulator_payments(paysim_process) as payments,
        running_gateway(database_url, redis_url, payments=payments) as gw,
        Redis.from_url(redis_url) as redis,
    ):
        org_id, owner, own = await _tenant(gw, database_url, "tenant a")
        _, other_owner, other = await _tenant(gw, database_url, "tenant b")
        session = await _admin_session(gw, org_id, owner)
        scoped = {}
        for scope in SCOPES:
            made = await gw.client.post("/v1/api-keys", json={"name": scope, "scopes": [scope]}, headers=owner)
            scoped[scope] = bearer(made.json()["key"])
        yield World(gw, redis, org_id, owner, session, own, other_owner, other, scoped)


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # the router's template; its parameters are filled from the world's objects
    scope: str
    body: dict[str, Any] | None = None
    also: tuple[str, ...] = ()  # further scopes the route accepts instead of ``scope``
    body_bytes_max: int = body_bytes_max  # the route's own body limit (a layout's is larger)


# The cross-tenant matrix: one entry per route of the router that a key or session may call.
CALLS = [
    Call("POST", "/v1/api-keys", "keys:manage", {"name": "k", "scopes": ["events:read"]}),
    Call("GET", "/v1/api-keys", "keys:manage"),
    Call("DELETE", "/v1/api-keys/{key_id}", "keys:manage"),
    Call("POST", "/v1/events", "events:write", event_body()),
    Call("GET", "/v1/events/{event_id}", "events:read"),
    Call("POST", "/v1/events/{event_id}/publish", "events:write"),
    Call("POST", "/v1/events/{event_id}/transitions", "events:write", {"to": "paused"}),
    Call("PATCH", "/v1/events/{event_id}", "events:write", PATCH_EVENT_BODY),
    Call("PATCH", "/v1/events/{event_id}/ticket-types/{code}", "events:write", PATCH_TYPE_BODY),
    Call("GET", "/v1/events/{event_id}/seats", "inventory:read", also=("events:read",)),
    Call("GET", "/v1/events/{event_id}/availability", "inventory:read"),
    Call("POST", "/v1/events/{event_id}/holds", "inventory:hold", {"buyer_id": "b", "seats": ["A-2-2"]}),
    Call("GET", "/v1/holds/{hold_id}", "inventory:read"),
    Call("DELETE", "/v1/holds/{hold_id}", "inventory:hold"),
    Call("POST", "/v1/holds/{hold_id}/confirm", "inventory:confirm", {"order_ref": "o-1"}),
    Call("GET", "/v1/members", "members:manage"),
    Call("POST", "/v1/members", "members:manage", {"email": "new@example.com", "role": "analyst"}),
    Call("PATCH", "/v1/members/{user_id}", "members:manage", {"role": "scanner"}),
    Call("DELETE", "/v1/members/{user_id}", "members:manage"),
    Call("GET", "/v1/audit-log", "audit:read"),
    Call("GET", "/v1/ticket-keys", "events:read", also=("scans:write",)),
    Call("POST", "/v1/venues", "events:write", VENUE_BODY),
    Call("GET", "/v1/venues", "events:read"),
    Call("GET", "/v1/venues/{venue_id}", "events:read"),
    Call("POST", "/v1/venues/{venue_id}/layouts", "events:write", LAYOUT_BODY, body_bytes_max=layout_body_bytes_max),
    Call("GET", "/v1/layouts/{layout_id}", "events:read"),
    Call("GET", "/v1/events/{event_id}/seatmap.svg", "inventory:read", also=("events:read",)),
    Call("POST", "/v1/events/{event_id}/promo-codes", "events:write", {"code": "SAVE10", "percent_off_bp": 1000}),
    Call(
        "POST", "/v1/events/{event_id}/quote", "inventory:read",
        {"buyer_id": "b", "items": [{"ticket_type": "GA", "quantity": 1}]}, also=("events:read",),
    ),
    Call("POST", "/v1/holds/{hold_id}/checkout", "inventory:confirm",
         {"buyer": {"email": "b@example.com", "name": "B"}}),
    Call("GET", "/v1/orders", "orders:read"),
    Call("GET", "/v1/orders/{order_id}", "orders:read", also=("inventory:confirm",)),
    Call("GET", "/v1/orders/{order_id}/tickets", "orders:read", also=("inventory:confirm",)),
    Call("POST", "/v1/orders/{order_id}/refunds", "orders:refund", {"reason": "cannot come"}),
    Call("GET", "/v1/tickets/{ticket_id}/qr.png", "orders:read", also=("inventory:confirm",)),
    Call("GET", "/v1/tickets/{ticket_id}/qr.svg", "orders:read", also=("inventory:confirm",)),
    Call("GET", "/v1/events/{event_id}/revocations", "events:read", also=("scans:write",)),
    Call("GET", "/v1/ledger/balances", "ledger:read"),
    Call("GET", "/v1/ledger/transactions", "ledger:read"),
    Call("POST", "/v1/payouts", "payouts:write", {"currency": "ZAR", "amount_minor": 100}),
]
# Lists that name no object id of the world's (the orders here are unpaid, so the ledger is empty for both orgs):
# their tenancy is checked after a real payment, in tests/e2e/test_ledger_api.py (another org sees zeros and no
# transactions, and cannot page with this org's cursor).
LISTS_WITHOUT_IDS = {("GET", "/v1/ledger/balances"), ("GET", "/v1/ledger/transactions")}
# Routes outside the matrix, each for its reason (and tested where named).
PUBLIC = {
    ("GET", "/healthz"),  # operations: test_operations_never_500
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("POST", "/v1/sessions"),  # the credential is in the body: tests/e2e/test_sessions_and_members.py
    ("POST", "/v1/sessions/refresh"),
    ("POST", "/v1/invitations/accept"),
    ("POST", "/v1/payments/webhooks/{provider}"),  # signed by the provider: tests/e2e/test_checkout_api.py
}
SESSION_ONLY = {("DELETE", "/v1/sessions/current")}  # names no object: test_logout_needs_a_session
WEBSOCKETS = {("WS", "/v1/events/{event_id}/live")}  # test_websocket_refusals
BODY_CALLS = [c for c in CALLS if c.body is not None]
ID_CALLS = [c for c in CALLS if "{" in c.path]
LIST_CALLS = [
    c for c in CALLS if c.method == "GET" and "{" not in c.path and (c.method, c.path) not in LISTS_WITHOUT_IDS
]
WRITE_CALLS = [c for c in CALLS if c.method in ("POST", "PATCH", "DELETE")]


def router_routes() -> set[tuple[str, str]]:
    found = set()
    for route in all_routes():
        if isinstance(route, WebSocketRoute):
            found.add(("WS", route.path))
        elif isinstance(route, Route):
            found |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    return found


def test_every_route_of_the_router_is_in_the_matrix() -> None:
    listed = {(c.method, c.path) for c in CALLS}
    assert len(listed) == len(CALLS), "a route is listed twice"
    accounted = listed | PUBLIC | SESSION_ONLY | WEBSOCKETS
    assert router_routes() - accounted == set(), "routes with no entry in the cross-tenant matrix"
    assert accounted - router_routes() == set(), "matrix entries for routes the router no longer has"


def _path(call: Call, objects: Objects) -> str:
    return call.path.format(**objects.params())


def own_path(world: World, call: Call) -> str:
    return _path(call, world.own)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code, error
    return error  # type: ignore[no-any-return]


async def state(world: World, database_url: str) -> tuple[Any, ...]:
    """Everything a bad request could have changed: availability, the hold, events, keys, sales, people, audit."""
    availability = await live_state.read_availability(world.redis, world.org_id, world.event_id)
    assert availability is not None
    hold = (await world.gw.client.get(f"/v1/holds/{world.hold_id}", headers=world.owner)).json()
    conn = await asyncpg.connect(database_url)
    try:
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM api_keys) AS keys, "
            "(SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL) AS revoked, "
            "(SELECT count(*) FROM sales) AS sales, (SELECT count(*) FROM events WHERE status = 'on_sale') AS live, "
            "(SELECT count(*) FROM users) AS users, "
            "(SELECT string_agg(org_id || user_id || role, ',' ORDER BY org_id, user_id) FROM memberships) AS roles, "
            "(SELECT count(*) FROM sessions WHERE revoked_at IS NULL) AS sessions, "
            "(SELECT count(*) FROM venues) AS venues, (SELECT count(*) FROM layouts) AS layouts, "
            "(SELECT count(*) FROM layout_seats) AS layout_seats, "
            "(SELECT count(*) FROM audit_log) AS audited, "
            "(SELECT string_agg(event_id || ':' || version || ':' || coalesce(tax_code, '-'), ',' ORDER BY event_id) "
            " FROM price_lists) AS price_versions, "
            "(SELECT string_agg(event_id || code || price_minor || ':' || capacity, ',' ORDER BY event_id, code) "
            " FROM ticket_types) AS type_prices, "
            "(SELECT count(*) FROM price_tiers) AS tiers, (SELECT count(*) FROM event_fees) AS fees, "
            "(SELECT count(*) FROM orders) AS orders, (SELECT count(*) FROM outbox) AS owed, "
            "(SELECT count(*) FROM order_refunds) AS refunds"
        )
    finally:
        await conn.close()
    return availability.version, availability.bitmap, hold["status"], tuple(counts)


@pytest.fixture
async def unchanged(world: World, database_url: str) -> AsyncIterator[None]:
    before = await state(world, database_url)
    yield
    assert await state(world, database_url) == before


def _call_id(call: Call) -> str:
    return f"{call.method} {call.path}"


@pytest.mark.parametrize("call", CALLS, ids=_call_id)
async def test_no_key_or_bad_key_is_401(world: World, unchanged: None, call: Call) -> None:
    path = own_path(world, call)
    for headers in (
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic abc"},
        bearer("vk_000000000000_" + "A" * 43),
    ):
        response = await world.gw.client.request(call.method, path, json=call.body, headers=headers)
        assert_error(response, 401, "unauthorized")


@pytest.mark.parametrize("call", CALLS, ids=_call_id)
async def test_wrong_scope_is_403(world: World, unchanged: None, call: Call) -> None:
    for scope, headers in world.scoped.items():
        if scope == call.scope or scope in call.also:
            continue
        response = await world.gw.client.request(call.method, own_path(world, call), json=call.body, headers=headers)
        assert_error(response, 403, "forbidden")


@pytest.mark.parametrize("call", ID_CALLS, ids=_call_id)
async def test_other_tenants_and_unknown_ids_are_404(world: World, unchanged: None, call: Call) -> None:
    unknown = Objects(UNKNOWN_EVENT, UNKNOWN_HOLD, "key_" + "0" * 32, "usr_" + "0" * 32, "ven_" + "0" * 32,
                      "lay_" + "0" * 32)
    malformed = Objects("evt_nope", "hld_nope", "nope", "usr_nope", "ven_nope", "lay_nope", order_id="ord_nope",
                        ticket_id="tkt_nope")
    huge = Objects(*["x" * 5000] * 6, order_id="x" * 5000, ticket_id="x" * 5000)
    for caller in (world.owner, world.session):
        for objects in (world.other, unknown, malformed, huge):
            response = await world.gw.client.request(call.method, _path(call, objects), json=call.body, headers=caller)
            assert_error(response, 404)


@pytest.mark.parametrize("call", LIST_CALLS, ids=_call_id)
async def test_lists_show_none_of_another_orgs_objects(world: World, unchanged: None, call: Call) -> None:
    theirs = set(world.other.params().values()) - {world.other.code}  # a ticket type code is no id: every org has GA
    for caller in (world.owner, world.session):
        response = await world.gw.client.get(call.path, headers=caller)
        assert response.status_code == 200, response.text
        assert not theirs & set(_strings(response.json())), response.text
        mine = await world.gw.client.get(call.path, headers=world.other_owner)
        assert set(world.other.params().values()) & set(_strings(mine.json())), "a control: B sees its own"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


async def test_logout_needs_a_session(world: World, unchanged: None) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, bearer("vk_000000000000_" + "A" * 43)):
        assert_error(await world.gw.client.delete("/v1/sessions/current", headers=headers), 401, "unauthorized")
    assert_error(await world.gw.client.delete("/v1/sessions/current", headers=world.owner), 403)


@pytest.mark.parametrize("call", BODY_CALLS, ids=_call_id)
async def test_malformed_json_is_400(world: World, unchanged: None, call: Call) -> None:
    json_headers = world.owner | {"Content-Type": "application/json"}
    for raw in (b"{", b"", b"{'a': 1}", b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b'{"a": 1} x', b"nul"):
        response = await world.gw.client.request(call.method, own_path(world, call), content=raw, headers=json_headers)
        assert_error(response, 400, "malformed_json")
    # The parser reads NaN as a number; no field takes one, so it is refused as a bad value.
    response = await world.gw.client.request(
        call.method, own_path(world, call), content=b'{"a": NaN}', headers=json_headers
    )
    assert_error(response, 422, "validation_failed")


@pytest.mark.parametrize("call", BODY_CALLS, ids=_call_id)
async def test_wrong_types_are_422_naming_each_field(world: World, unchanged: None, call: Call) -> None:
    assert call.body is not None
    wrong = {name: ({"nested": True} if isinstance(value, str) else "text") for name, value in call.body.items()}
    response = await world.gw.client.request(
        call.method, own_path(world, call), json=wrong | {"surprise": 1}, headers=world.owner
    )
    error = assert_error(response, 422, "validation_failed")
    named = {f["field"].split(".")[0] for f in error["details"]["fields"]}
    assert named == set(call.body) | {"surprise"}
    for raw in (b"[]", b'"text"', b"7", b"null"):
        response = await world.gw.client.request(
            call.method, own_path(world, call), content=raw, headers=world.owner | {"Content-Type": "application/json"}
        )
        assert_error(response, 422, "validation_failed")


@pytest.mark.parametrize("call", WRITE_CALLS, ids=_call_id)
async def test_bodies_over_64_kib_are_413(world: World, unchanged: None, call: Call) -> None:
    big = json.dumps({"buyer_id": "b", "pad": "x" * call.body_bytes_max}).encode()
    headers = world.owner | {"Content-Type": "application/json"}
    declared = await world.gw.client.request(call.method, own_path(world, call), content=big, headers=headers)
    assert_error(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the gateway must count
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = await world.gw.client.request(call.method, own_path(world, call), content=chunks(), headers=headers)
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "payload_too_large")


@pytest.mark.parametrize("call", BODY_CALLS, ids=_call_id)
async def test_non_json_content_type_is_415(world: World, unchanged: None, call: Call) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(world.owner) | ({"Content-Type": content_type} if content_type else {})
        response = await world.gw.client.request(
            call.method, own_path(world, call), content=json.dumps(call.body).encode(), headers=headers
        )
        assert_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("call", WRITE_CALLS, ids=_call_id)
async def test_bad_idempotency_keys_are_422(world: World, unchanged: None, call: Call) -> None:
    for key in (b"", b"k" * 201, b"tab\there", "naïve".encode()):
        headers = [(name.encode(), value.encode()) for name, value in world.owner.items()]
        headers.append((b"Idempotency-Key", key))
        response = await world.gw.client.request(call.method, own_path(world, call), json=call.body, headers=headers)
        assert_error(response, 422, "validation_failed")
        assert response.json()["error"]["details"]["fields"][0]["field"] == "Idempotency-Key"


HOLD_CASES: list[tuple[Any, int, str, str | None]] = [
    ({"buyer_id": "b", "seats": ["Z-9-9"]}, 422, "unknown_seats", None),
    ({"buyer_id": "b", "seats": ["A-1-1;DROP"]}, 422, "validation_failed", "seats.0"),
    ({"buyer_id": "b", "seats": []}, 422, "validation_failed", "seats"),
    ({"buyer_id": "b", "seats": ["A-1-2", "A-1-2"]}, 422, "validation_failed", "seats.1"),
    ({"buyer_id": "b", "seats": [f"A-1-{n}" for n in range(1, 102)]}, 422, "validation_failed", "seats"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": -1}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": 0}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": 10**30}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": 2.5}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": "2"}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": 11}, 422, "buyer_limit_exceeded", None),
    ({"buyer_id": "b", "ticket_type": "NOPE", "quantity": 1}, 422, "unknown_ticket_type", None),
    ({"buyer_id": "b", "ticket_type": "SEAT", "quantity": 1}, 422, "unknown_ticket_type", None),
    ({"buyer_id": "b", "ticket_type": "GA"}, 422, "validation_failed", "quantity"),
    ({"buyer_id": "b", "seats": ["A-1-2"], "quantity": 1}, 422, "validation_failed", "seats"),
    ({"buyer_id": "b", "seats": ["A-1-2"], "ttl_s": 0}, 422, "validation_failed", "ttl_s"),
    ({"buyer_id": "b", "seats": ["A-1-2"], "ttl_s": 10**6}, 422, "validation_failed", "ttl_s"),
    ({"buyer_id": "x" * 129, "seats": ["A-1-2"]}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": "b" * 10_000, "seats": ["A-1-2"]}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": "", "seats": ["A-1-2"]}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": "has space", "seats": ["A-1-2"]}, 422, "validation_failed", "buyer_id"),
    ({"seats": ["A-1-2"]}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": None, "seats": None}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": "b", "seats": ["A-1-1"]}, 409, "seats_unavailable", None),
    # best available (the inventory picks the seats)
    ({"buyer_id": "b", "best_available": {"quantity": 0}}, 422, "validation_failed", "best_available.quantity"),
    ({"buyer_id": "b", "best_available": {"quantity": 101}}, 422, "validation_failed", "best_available.quantity"),
    ({"buyer_id": "b", "best_available": {"quantity": "2"}}, 422, "validation_failed", "best_available.quantity"),
    ({"buyer_id": "b", "best_available": {"quantity": 1.5}}, 422, "validation_failed", "best_available.quantity"),
    ({"buyer_id": "b", "best_available": {}}, 422, "validation_failed", "best_available.quantity"),
    ({"buyer_id": "b", "best_available": 2}, 422, "validation_failed", "best_available"),
    ({"buyer_id": "b", "best_available": None, "seats": None}, 422, "validation_failed", "seats"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "zone": "bad zone!"}}, 422, "validation_failed",
     "best_available.zone"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "zone": ""}}, 422, "validation_failed",
     "best_available.zone"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "attributes": ["vip"]}}, 422, "validation_failed",
     "best_available.attributes.0"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "attributes": ["not_for_sale"]}}, 422, "validation_failed",
     "best_available.attributes.0"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "attributes": ["accessible", "accessible"]}}, 422,
     "validation_failed", "best_available.attributes.1"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "attributes": "accessible"}}, 422, "validation_failed",
     "best_available.attributes"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "seats": ["A-1-2"]}}, 422, "validation_failed",
     "best_available.seats"),
    ({"buyer_id": "b", "seats": ["A-1-2"], "best_available": {"quantity": 1}}, 422, "validation_failed",
     "best_available"),
    ({"buyer_id": "b", "ticket_type": "GA", "quantity": 1, "best_available": {"quantity": 1}}, 422,
     "validation_failed", "best_available"),
    ({"buyer_id": "b", "best_available": {"quantity": 1}, "ttl_s": 0}, 422, "validation_failed", "ttl_s"),
    ({"best_available": {"quantity": 1}}, 422, "validation_failed", "buyer_id"),
    ({"buyer_id": "b", "best_available": {"quantity": 11}}, 422, "buyer_limit_exceeded", None),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "zone": "NOPE"}}, 422, "invalid_hold_request",
     "best_available.zone"),
    ({"buyer_id": "b", "best_available": {"quantity": 1, "attributes": ["accessible"]}}, 409,
     "insufficient_inventory", None),
]


@pytest.mark.parametrize("body,status,code,field", HOLD_CASES)
async def test_bad_holds_change_nothing(
    world: World, unchanged: None, body: Any, status: int, code: str, field: str | None
) -> None:
    response = await world.gw.client.post(f"/v1/events/{world.event_id}/holds", json=body, headers=world.owner)
    error = assert_error(response, status, code)
    if field is not None:
        assert field in [f["field"] for f in error["details"]["fields"]], error


async def test_ten_thousand_seats_in_one_hold(world: World, unchanged: None) -> None:
    seats = [f"A-{n // 10 + 1}-{n % 10 + 1}" for n in range(10_000)]
    response = await world.gw.client.post(
        f"/v1/events/{world.event_id}/holds", json={"buyer_id": "b", "seats": seats}, headers=world.owner
    )
    assert_error(response, 413, "payload_too_large")
    compact = {"buyer_id": "b", "seats": ["A-1-2"] * 8_000}  # as many as fit in 64 KiB
    raw = json.dumps(compact, separators=(",", ":")).encode()
    assert len(raw) <= body_bytes_max
    response = await world.gw.client.post(
        f"/v1/events/{world.event_id}/holds", content=raw, headers=world.owner | {"Content-Type": "application/json"}
    )
    error = assert_error(response, 422, "validation_failed")
    assert [f["field"] for f in error["details"]["fields"]] == ["seats"]


def _event(**changes: Any) -> dict[str, Any]:
    body = event_body()
    for path, value in changes.items():
        target: Any = body
        parts = path.split("__")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return body


_DELETE = object()

EVENT_CASES: list[tuple[dict[str, Any], set[str]]] = [
    (_event(name=""), {"name"}),
    (_event(name="n" * 201), {"name"}),
    (_event(name="line\nbreak"), {"name"}),
    (_event(starts_at="tomorrow"), {"starts_at"}),
    (_event(starts_at="2026-12-31T18:00:00"), {"starts_at"}),
    (_event(hold_ttl_s=0, max_tickets_per_buyer=0), {"hold_ttl_s", "max_tickets_per_buyer"}),
    (_event(hold_ttl_s=3601, max_tickets_per_buyer=101), {"hold_ttl_s", "max_tickets_per_buyer"}),
    (_event(seating__sections__0__rows__0__seats=1001), {"seating.sections.0.rows.0.seats"}),
    (_event(seating__sections__0__rows__0__seats=-1), {"seating.sections.0.rows.0.seats"}),
    (_event(seating__sections__0__name="A-1"), {"seating.sections.0.name"}),
    (_event(seating__sections__0__rows__1__label="1"), {"seating.sections.0.rows.1.label"}),
    (_event(seating__sections=[]), {"seating.sections"}),
    (
        _event(
            seating__sections=[
                {"name": f"S{s}", "rows": [{"label": f"{r}", "seats": 1000} for r in range(2)]} for s in range(51)
            ]
        ),
        {"seating.sections"},
    ),
    (_event(seating=_DELETE), {"seating"}),
    (_event(ticket_types__1=_DELETE), {"seating"}),
    (_event(ticket_types__1__capacity=20), {"ticket_types.1.capacity"}),
    (_event(ticket_types__0__capacity=_DELETE), {"ticket_types.0.capacity"}),
    (_event(ticket_types__0__capacity=10**7), {"ticket_types.0.capacity"}),
    (_event(ticket_types__0__code="SEAT"), {"ticket_types.1.code"}),
    (_event(ticket_types__0__kind="seated", ticket_types__0__capacity=_DELETE), {"ticket_types.1.kind"}),
    (_event(ticket_types__0__kind="vip"), {"ticket_types.0.kind"}),
    (_event(ticket_types__0__code="bad code!"), {"ticket_types.0.code"}),
    (
        _event(ticket_types__0__price={"amount_minor": -1, "currency": "zar"}),
        {"ticket_types.0.price.amount_minor", "ticket_types.0.price.currency"},
    ),
    (_event(ticket_types=[]), {"ticket_types"}),
    (
        _event(
            ticket_types=[
                {"code": f"T{i}", "kind": "ga", "capacity": 1, "price": {"amount_minor": 1, "currency": "ZAR"}}
                for i in range(21)
            ]
        ),
        {"ticket_types"},
    ),
    (_event(dedicated="yes"), {"dedicated"}),
]


@pytest.mark.parametrize("body,fields", EVENT_CASES)
async def test_bad_events_change_nothing(world: World, unchanged: None, body: dict[str, Any], fields: set[str]) -> None:
    response = await world.gw.client.post("/v1/events", json=body, headers=world.owner)
    error = assert_error(response, 422, "validation_failed")
    assert {f["field"] for f in error["details"]["fields"]} == fields, error


def _tier(until: str = FAR, currency: str = "ZAR") -> dict[str, Any]:
    return {"until": until, "price": {"amount_minor": 100, "currency": currency}}


_USD = {"amount_minor": 100, "currency": "USD"}
_TYPE = "/v1/events/{event_id}/ticket-types/GA"
_EVENT = "/v1/events/{event_id}"
PRICE_PATCH_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    (_TYPE, {}, {"capacity"}),
    (_TYPE, {"price": None}, {"price"}),
    (_TYPE, {"capacity": None, "price_tiers": None}, {"capacity", "price_tiers"}),
    (_TYPE, {"price": {"amount_minor": -1, "currency": "zar"}}, {"price.amount_minor", "price.currency"}),
    (_TYPE, {"price": _USD}, {"price.currency"}),  # the event's currency is ZAR, fixed
    (_TYPE, {"price_tiers": [_tier(), _tier("2098-01-01T00:00:00Z")]}, {"price_tiers.1.until"}),
    (_TYPE, {"price_tiers": [_tier("2099-01-01T00:00:00")]}, {"price_tiers.0.until"}),
    (_TYPE, {"price_tiers": [_tier(f"2099-01-{d:02}T00:00:00Z") for d in range(1, 12)]}, {"price_tiers"}),
    (
        _TYPE,
        {"capacity": 70, "price": _USD, "price_tiers": [_tier(currency="EUR"), _tier()]},
        {"price.currency", "price_tiers.0.price.currency", "price_tiers.1.until"},
    ),
    ("/v1/events/{event_id}/ticket-types/SEAT", {"capacity": 5, "price": _USD}, {"capacity", "price.currency"}),
    (_EVENT, {"fees": None}, {"fees"}),
    (_EVENT, {"fees": [{"code": "F", "per": "order"}]}, {"fees.0.amount_minor"}),
    (_EVENT, {"fees": [{"code": "F", "per": "week", "amount_minor": 1}]}, {"fees.0.per"}),
    (_EVENT, {"fees": [{"code": "F", "per": "order", "amount_minor": n} for n in (1, 2)]}, {"fees.1.code"}),
    (_EVENT, {"fees": [{"code": f"F{n}", "per": "order", "amount_minor": 1} for n in range(11)]}, {"fees"}),
    (_EVENT, {"tax": {"code": "VAT", "rate_bp": 10_001, "included": "yes"}}, {"tax.rate_bp", "tax.included"}),
    (_EVENT, {"tax": {"code": "VAT", "rate_bp": 1}}, {"tax.included"}),
    (  # the rules needing the stored event, all in one answer: and the name given is not applied either
        _EVENT,
        {"name": "Renamed", "max_tickets_per_buyer": 5,
         "fees": [{"code": "F", "per": "order", "amount_minor": n} for n in (1, 2)]},
        {"max_tickets_per_buyer", "fees.1.code"},
    ),
]


@pytest.mark.parametrize("path,body,fields", PRICE_PATCH_CASES)
async def test_bad_price_changes_are_422_naming_each_field_and_change_nothing(
    world: World, unchanged: None, path: str, body: dict[str, Any], fields: set[str]
) -> None:
    response = await world.gw.client.patch(path.format(event_id=world.event_id), json=body, headers=world.owner)
    error = assert_error(response, 422, "validation_failed")
    assert {f["field"] for f in error["details"]["fields"]} == fields, error


async def test_an_unknown_ticket_type_is_404_and_changes_nothing(world: World, unchanged: None) -> None:
    response = await world.gw.client.patch(
        f"/v1/events/{world.event_id}/ticket-types/NOPE", json={"price": {"amount_minor": 1, "currency": "ZAR"}},
        headers=world.owner,
    )
    assert_error(response, 404, "ticket_type_not_found")


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "k", "scopes": ["root"]}, "scopes.0"),
        ({"name": "k", "scopes": []}, "scopes"),
        ({"name": "k", "scopes": ["events:read", "events:read"]}, "scopes"),
        ({"name": "k" * 201, "scopes": ["events:read"]}, "name"),
        ({"name": "k", "scopes": "events:read"}, "scopes"),
    ],
)
async def test_bad_api_keys_change_nothing(world: World, unchanged: None, body: dict[str, Any], field: str) -> None:
    response = await world.gw.client.post("/v1/api-keys", json=body, headers=world.owner)
    error = assert_error(response, 422, "validation_failed")
    assert field in [f["field"] for f in error["details"]["fields"]]


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "order_ref"),
        ({"order_ref": ""}, "order_ref"),
        ({"order_ref": "o" * 129}, "order_ref"),
        ({"order_ref": 7}, "order_ref"),
        ({"order_ref": "o", "amount": 1}, "amount"),
    ],
)
async def test_bad_confirms_change_nothing(world: World, unchanged: None, body: dict[str, Any], field: str) -> None:
    response = await world.gw.client.post(f"/v1/holds/{world.hold_id}/confirm", json=body, headers=world.owner)
    error = assert_error(response, 422, "validation_failed")
    assert [f["field"] for f in error["details"]["fields"]] == [field]


async def test_confirm_of_unknown_hold_in_own_event_is_404(world: World, unchanged: None) -> None:
    unknown = "hld_" + world.event_id.removeprefix("evt_") + "0" * 20
    response = await world.gw.client.post(f"/v1/holds/{unknown}/confirm", json={"order_ref": "o"}, headers=world.owner)
    assert_error(response, 404, "hold_not_found")
    assert_error(await world.gw.client.get(f"/v1/holds/{unknown}", headers=world.owner), 404, "hold_not_found")


async def test_websocket_refusals(database_url: str, redis_url: str) -> None:
    _, key = await new_org(database_url, "ws tenant")
    _, other_key = await new_org(database_url, "ws other")
    async with running_gateway(database_url, redis_url, serve=True) as gw:
        created = await gw.client.post("/v1/events", json=event_body(), headers=bearer(other_key))
        other_event = created.json()["id"]
        await gw.client.post(f"/v1/events/{other_event}/publish", headers=bearer(other_key))
        made = await gw.client.post("/v1/api-keys", json={"name": "w", "scopes": ["events:write"]}, headers=bearer(key))
        draft = (await gw.client.post("/v1/events", json=event_body(), headers=bearer(key))).json()["id"]
        base = gw.url.replace("http://", "ws://")
        cases = [
            (f"/v1/events/{other_event}/live?key={key}", 404),
            (f"/v1/events/{UNKNOWN_EVENT}/live?key={key}", 404),
            (f"/v1/events/evt_bad/live?key={key}", 404),
            (f"/v1/events/{other_event}/live?key=nope", 401),
            (f"/v1/events/{other_event}/live", 401),
            (f"/v1/events/{other_event}/live?key={made.json()['key']}", 403),
            (f"/v1/events/{draft}/live?key={key}", 409),
        ]
        for path, status in cases:
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(base + path):
                    pass
            assert refused.value.response.status_code == status, path
            assert json.loads(refused.value.response.body or b"{}")["error"]["code"]
        await asyncio.sleep(0)


async def test_operations_never_500(world: World) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert (await world.gw.client.get(path)).status_code == 200
        wrong = await world.gw.client.post(path, content=b"{")
        assert_error(wrong, 405, "method_not_allowed")
