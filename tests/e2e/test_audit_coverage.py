"""Every write route is audited: enumerate each POST, PATCH and DELETE route from the router (so a new route cannot
be forgotten), make one successful call, and check the org's audit log gained that route's action, in the same
transaction as the change, without any secret from the exchange in it. Logins that fail are audited too.

A route without a recipe here fails; the only exemptions are EXEMPT, each with its reason (docs/api.md,
"Holds are not audited")."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from starlette.routing import Route

from engine.ledger.accounts import Account, TransactionKind
from engine.ledger.book import TRANSACTION_PREFIX, Transaction, entries_of
from gateway.routes import all_routes
from persistence import ledger
from persistence.access import memberships, users
from persistence.access.apikeys import parse_api_key
from persistence.db import connect
from persistence.tenancy import org_transaction
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.paysim_fixtures import PaysimProcess, simulator_payments

WRITE_METHODS = ("POST", "PATCH", "DELETE")
PASSWORD = "correct horse battery staple 42"
secret_part_chars_min = 16  # shorter pieces of a token could match a stored id by chance
ASGI_CLIENT_IP = "127.0.0.1"  # the peer httpx's ASGI transport reports for every call
issue_wait_s_max = 15.0  # the orders worker issues a free order's tickets within this

EXEMPT: dict[tuple[str, str], str] = {
    ("POST", "/v1/events/{event_id}/holds"): (
        "a hold lives in the event's inventory (memory) and Redis, never in Postgres, and expires by itself; "
        "auditing it would put the org's chain lock on the flash sale's hottest path. Confirming it is audited "
        "(sale.create, in the inventory's group commit)."
    ),
    ("DELETE", "/v1/holds/{hold_id}"): "releasing a hold changes only memory and Redis, like placing it",
    ("POST", "/v1/events/{event_id}/quote"): "a quote changes nothing and takes no promo use: it only computes",
    ("POST", "/v1/payments/webhooks/{provider}"): (
        "a webhook that applies is audited as its order's move (order.move, by system:payments); a success needs "
        "a signed delivery from the simulator, so it is checked in tests/e2e/test_checkout_api.py"
    ),
}


def write_routes() -> list[tuple[str, str]]:
    found = []
    for route in all_routes():
        if isinstance(route, Route):
            found += [(method, route.path) for method in sorted(route.methods or ()) if method in WRITE_METHODS]
    return found


@dataclass
class Ctx:
    gw: Gateway
    org_id: str
    owner: dict[str, str]
    secrets: list[str] = field(default_factory=list)  # what must never reach the log
    database_url: str = ""

    async def call(self, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        response = await self.gw.client.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        body: dict[str, Any] = response.json() if response.content else {}
        for name in ("key", "access_token", "refresh_token", "token"):
            if isinstance(body.get(name), str):
                self.secrets.append(body[name])
        invitation = body.get("invitation")
        if isinstance(invitation, dict) and isinstance(invitation.get("token"), str):
            self.secrets.append(invitation["token"])
        return body


@dataclass(frozen=True)
class Target:
    """The call under test and the action it must leave in the log."""

    method: str
    path: str
    status: int
    action: str
    json: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _event(ctx: Ctx, *, publish: bool) -> str:
    event_id: str = (await ctx.call("POST", "/v1/events", 201, json=event_body(), headers=ctx.owner))["id"]
    if publish:
        await ctx.call("POST", f"/v1/events/{event_id}/publish", 200, headers=ctx.owner)
    return event_id


async def _invite(ctx: Ctx) -> tuple[str, str, str]:
    """(user id, e-mail, invitation token) of a newly invited person."""
    email = f"audited.{secrets.token_hex(4)}@example.com"
    made = await ctx.call("POST", "/v1/members", 201, json={"email": email, "role": "admin"}, headers=ctx.owner)
    return made["user_id"], email, made["invitation"]["token"]


async def _person(ctx: Ctx) -> tuple[str, str]:
    """(user id, e-mail) of a member who has set PASSWORD."""
    user_id, email, token = await _invite(ctx)
    await ctx.call("POST", "/v1/invitations/accept", 200, json={"token": token, "password": PASSWORD})
    return user_id, email


async def _login(ctx: Ctx) -> dict[str, Any]:
    _, email = await _person(ctx)
    return await ctx.call(
        "POST", "/v1/sessions", 201, json={"email": email, "password": PASSWORD, "org_id": ctx.org_id}
    )


async def create_key(ctx: Ctx) -> Target:
    body = {"name": "audited", "scopes": ["events:read"]}
    return Target("POST", "/v1/api-keys", 201, "api_key.create", body, ctx.owner)


async def revoke_key(ctx: Ctx) -> Target:
    made = await ctx.call(
        "POST", "/v1/api-keys", 201, json={"name": "doomed", "scopes": ["events:read"]}, headers=ctx.owner
    )
    return Target("DELETE", f"/v1/api-keys/{made['id']}", 204, "api_key.revoke", headers=ctx.owner)


async def create_event(ctx: Ctx) -> Target:
    return Target("POST", "/v1/events", 201, "event.create", event_body(), ctx.owner)


async def publish_event(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=False)
    return Target("POST", f"/v1/events/{event_id}/publish", 200, "event.publish", headers=ctx.owner)


async def transition_event(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=False)
    return Target("POST", f"/v1/events/{event_id}/transitions", 200, "event.transition", {"to": "published"},
                  ctx.owner)


async def patch_event(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=False)
    return Target("PATCH", f"/v1/events/{event_id}", 200, "event.update", {"name": "Renamed"}, ctx.owner)


async def set_capacity(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=True)  # through the inventory, audited in its commit
    return Target("PATCH", f"/v1/events/{event_id}/ticket-types/GA", 200, "ticket_type.capacity", {"capacity": 70},
                  ctx.owner)


async def check_out(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=True)
    held = await ctx.call(
        "POST", f"/v1/events/{event_id}/holds", 201, json={"buyer_id": "b1", "seats": ["A-1-1"]}, headers=ctx.owner
    )
    body = {"buyer": {"email": "buyer@example.com", "name": "B"}}
    return Target("POST", f"/v1/holds/{held['hold_id']}/checkout", 201, "order.create", body, ctx.owner)


async def refund_order(ctx: Ctx) -> Target:
    """A free order: paid at once, its tickets issued by the gateway's orders worker, then refunded (nothing to
    send back to a provider, so the refund is done at once)."""
    body = event_body()
    body["ticket_types"][0]["price"] = {"amount_minor": 0, "currency": "ZAR"}
    event_id = (await ctx.call("POST", "/v1/events", 201, json=body, headers=ctx.owner))["id"]
    await ctx.call("POST", f"/v1/events/{event_id}/publish", 200, headers=ctx.owner)
    held = await ctx.call("POST", f"/v1/events/{event_id}/holds", 201,
                          json={"buyer_id": "b1", "ticket_type": "GA", "quantity": 1}, headers=ctx.owner)
    order = await ctx.call("POST", f"/v1/holds/{held['hold_id']}/checkout", 201,
                           json={"buyer": {"email": "buyer@example.com", "name": "B"}}, headers=ctx.owner)
    assert (order["status"], order["total"]["amount_minor"], order["payment"]) == ("paid", 0, None)
    deadline = time.monotonic() + issue_wait_s_max
    while not (await ctx.call("GET", f"/v1/orders/{order['order_id']}", 200, headers=ctx.owner))["tickets"]:
        assert time.monotonic() < deadline, "the free order's tickets were never issued"
        await asyncio.sleep(0.05)
    return Target("POST", f"/v1/orders/{order['order_id']}/refunds", 201, "order.refund", {"reason": "audited"},
                  ctx.owner)


async def confirm_hold(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=True)
    held = await ctx.call(
        "POST", f"/v1/events/{event_id}/holds", 201, json={"buyer_id": "b1", "seats": ["A-1-1"]}, headers=ctx.owner
    )
    hold_id = held["hold_id"]
    return Target("POST", f"/v1/holds/{hold_id}/confirm", 201, "sale.create", {"order_ref": "o-1"}, ctx.owner)


async def create_promo_code(ctx: Ctx) -> Target:
    event_id = await _event(ctx, publish=False)
    body = {"code": "AUDITED", "percent_off_bp": 500}
    return Target("POST", f"/v1/events/{event_id}/promo-codes", 201, "promo_code.create", body, ctx.owner)


async def invite_member(ctx: Ctx) -> Target:
    body = {"email": f"new.{secrets.token_hex(4)}@example.com", "role": "box_office"}
    return Target("POST", "/v1/members", 201, "member.invite", body, ctx.owner)


async def change_role(ctx: Ctx) -> Target:
    user_id, _, _ = await _invite(ctx)
    return Target("PATCH", f"/v1/members/{user_id}", 200, "member.role_change", {"role": "analyst"}, ctx.owner)


async def remove_member(ctx: Ctx) -> Target:
    user_id, _, _ = await _invite(ctx)
    return Target("DELETE", f"/v1/members/{user_id}", 204, "member.remove", headers=ctx.owner)


async def accept_invitation(ctx: Ctx) -> Target:
    _, _, token = await _invite(ctx)
    ctx.secrets.append(PASSWORD)
    return Target("POST", "/v1/invitations/accept", 200, "invitation.accept", {"token": token, "password": PASSWORD})


async def log_in(ctx: Ctx) -> Target:
    _, email = await _person(ctx)
    ctx.secrets.append(PASSWORD)
    body = {"email": email, "password": PASSWORD, "org_id": ctx.org_id}
    return Target("POST", "/v1/sessions", 201, "session.login", body)


async def refresh(ctx: Ctx) -> Target:
    session = await _login(ctx)
    body = {"refresh_token": session["refresh_token"]}
    return Target("POST", "/v1/sessions/refresh", 200, "session.refresh", body)


async def log_out(ctx: Ctx) -> Target:
    session = await _login(ctx)
    return Target("DELETE", "/v1/sessions/current", 204, "session.logout", headers=bearer(session["access_token"]))


VENUE = {"name": "Audited Hall", "timezone": "Africa/Johannesburg"}
LAYOUT = {"name": "Main", "sections": [{"name": "A", "rows": [{"label": "1", "seats": 3}]}]}


async def create_venue(ctx: Ctx) -> Target:
    return Target("POST", "/v1/venues", 201, "venue.create", VENUE, ctx.owner)


async def create_layout(ctx: Ctx) -> Target:
    venue = await ctx.call("POST", "/v1/venues", 201, json=VENUE, headers=ctx.owner)
    return Target("POST", f"/v1/venues/{venue['id']}/layouts", 201, "layout.create", LAYOUT, ctx.owner)


async def pay_out(ctx: Ctx) -> Target:
    """Something payable first: a capture released at once (engine/ledger/flows.py ``capture(release=True)``),
    written through the ledger's store as the orders worker writes one."""
    paid = Transaction(TRANSACTION_PREFIX + secrets.token_hex(16), TransactionKind.CAPTURE, "capture:audited",
                       entries_of("ZAR", {Account.PROVIDER_CLEARING: 5_000, Account.ORGANIZER_PAYABLE: -5_000}))
    conn = await connect(ctx.database_url)
    try:
        async with org_transaction(conn, ctx.org_id) as db:
            await ledger.write(db, paid)
    finally:
        await conn.close()
    return Target("POST", "/v1/payouts", 201, "payout.create", {"currency": "ZAR", "amount_minor": 3_000}, ctx.owner)


RECIPES: dict[tuple[str, str], Callable[[Ctx], Awaitable[Target]]] = {
    ("POST", "/v1/api-keys"): create_key,
    ("DELETE", "/v1/api-keys/{key_id}"): revoke_key,
    ("POST", "/v1/events"): create_event,
    ("POST", "/v1/events/{event_id}/publish"): publish_event,
    ("POST", "/v1/events/{event_id}/transitions"): transition_event,
    ("PATCH", "/v1/events/{event_id}"): patch_event,
    ("PATCH", "/v1/events/{event_id}/ticket-types/{code}"): set_capacity,
    ("POST", "/v1/holds/{hold_id}/confirm"): confirm_hold,
    ("POST", "/v1/holds/{hold_id}/checkout"): check_out,
    ("POST", "/v1/orders/{order_id}/refunds"): refund_order,
    ("POST", "/v1/events/{event_id}/promo-codes"): create_promo_code,
    ("POST", "/v1/members"): invite_member,
    ("PATCH", "/v1/members/{user_id}"): change_role,
    ("DELETE", "/v1/members/{user_id}"): remove_member,
    ("POST", "/v1/invitations/accept"): accept_invitation,
    ("POST", "/v1/sessions"): log_in,
    ("POST", "/v1/sessions/refresh"): refresh,
    ("DELETE", "/v1/sessions/current"): log_out,
    ("POST", "/v1/venues"): create_venue,
    ("POST", "/v1/venues/{venue_id}/layouts"): create_layout,
    ("POST", "/v1/payouts"): pay_out,
}


@pytest.fixture(scope="module")
async def gw(database_url: str, redis_url: str, paysim_process: PaysimProcess) -> AsyncIterator[Gateway]:
    """The module's gateway, with the session's payment simulator (checkout needs a provider)."""
    async with simulator_payments(paysim_process) as payments, running_gateway(
        database_url, redis_url, payments=payments
    ) as gateway:
        yield gateway


@pytest.fixture
async def owner_db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The URL's user, past row-level security: the test reads the log as it is stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def _ctx(gw: Gateway, database_url: str) -> Ctx:
    org_id, key = await new_org(database_url, "audited org")
    await _seed_owner(database_url, org_id)
    return Ctx(gw, org_id, bearer(key), [key], database_url)


async def _seed_owner(database_url: str, org_id: str) -> None:
    """An owner person, as `voelgoed user create --role owner` makes one: an org keeps at least one owner, so
    changing or removing other members presumes it has one."""
    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            person = await users.create_user(db.conn, f"owner.{secrets.token_hex(4)}@example.com", None)
            await memberships.add_member(db, person.id, "owner", accepted=True)
    finally:
        await conn.close()


async def _head(conn: asyncpg.Connection, org_id: str) -> int:
    seq: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM audit_log WHERE org_id = $1", org_id)
    return seq


async def _entries_since(conn: asyncpg.Connection, org_id: str, seq: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT seq, actor_type, action, object_id, before::text AS before, after::text AS after "
        "FROM audit_log WHERE org_id = $1 AND seq > $2 ORDER BY seq",
        org_id,
        seq,
    )


def _secret_parts(secret: str) -> list[str]:
    # the middle part of "vr_<session>_<secret>" is the object's public id: only the last part is secret
    last = secret.rsplit("_", 1)[-1]
    return [secret, last] if len(last) >= secret_part_chars_min else [secret]


def _call_id(route: tuple[str, str]) -> str:
    return f"{route[0]} {route[1]}"


def test_every_write_route_is_covered_or_exempt() -> None:
    routes = set(write_routes())
    assert not set(EXEMPT) - routes, "an exemption names a route that no longer exists"
    assert not set(RECIPES) - routes, "a recipe names a route that no longer exists"
    missing = routes - set(EXEMPT) - set(RECIPES)
    assert not missing, f"write routes without an audit check here: {sorted(missing)}"


@pytest.mark.parametrize("route", [r for r in write_routes() if r not in EXEMPT], ids=_call_id)
async def test_a_successful_write_is_audited(
    gw: Gateway, database_url: str, owner_db: asyncpg.Connection, route: tuple[str, str]
) -> None:
    recipe = RECIPES.get(route)
    assert recipe is not None, f"{_call_id(route)} has no audit recipe: add one (or an EXEMPT reason)"
    ctx = await _ctx(gw, database_url)
    target = await recipe(ctx)
    before = await _head(owner_db, ctx.org_id)
    await ctx.call(target.method, target.path, target.status, json=target.json, headers=target.headers)
    entries = await _entries_since(owner_db, ctx.org_id, before)
    actions = [e["action"] for e in entries]
    assert target.action in actions, f"{_call_id(route)} left {actions}, not {target.action}"
    for entry in entries:
        stored = f"{entry['object_id']} {entry['before']} {entry['after']}"
        # the whole secret, or its secret part ("vk_<prefix>_<secret>", "vr_<session>_<secret>", ...)
        leaked = [s for s in ctx.secrets if any(part in stored for part in _secret_parts(s))]
        assert not leaked, f"{entry['action']} stored a secret"


async def _hold(ctx: Ctx, event_id: str, seat: str) -> str:
    body = {"buyer_id": f"b-{seat}", "seats": [seat]}
    held = await ctx.call("POST", f"/v1/events/{event_id}/holds", 201, json=body, headers=ctx.owner)
    hold_id: str = held["hold_id"]
    return hold_id


async def test_a_sale_names_who_confirmed_it_and_from_where(
    gw: Gateway, database_url: str, owner_db: asyncpg.Connection
) -> None:
    """sale.create is written by the inventory's group commit, far from the request: it still names the key or
    person that confirmed and the address of the call, once per sale however often the confirm is retried."""
    ctx = await _ctx(gw, database_url)
    event_id = await _event(ctx, publish=True)
    session = await _login(ctx)
    by_key, by_person = await _hold(ctx, event_id, "A-1-1"), await _hold(ctx, event_id, "A-1-2")
    key = ctx.owner["Authorization"].removeprefix("Bearer ")
    parsed = parse_api_key(key)
    assert parsed is not None
    key_id = await owner_db.fetchval("SELECT id FROM api_keys WHERE prefix = $1", parsed[0])
    before = await _head(owner_db, ctx.org_id)
    for _ in range(2):  # the retry is answered with the same sale, and audited once
        await ctx.call("POST", f"/v1/holds/{by_key}/confirm", 201, json={"order_ref": "o-1"}, headers=ctx.owner)
    person_headers = bearer(session["access_token"])
    await ctx.call("POST", f"/v1/holds/{by_person}/confirm", 201, json={"order_ref": "o-2"}, headers=person_headers)
    rows = await owner_db.fetch(
        "SELECT actor_type, actor_id, ip, after->>'hold_id' AS hold_id FROM audit_log "
        "WHERE org_id = $1 AND seq > $2 AND action = 'sale.create' ORDER BY seq",
        ctx.org_id,
        before,
    )
    assert [tuple(r) for r in rows] == [
        ("key", key_id, ASGI_CLIENT_IP, by_key),
        ("user", session["user_id"], ASGI_CLIENT_IP, by_person),
    ]


async def test_a_failed_login_is_audited(gw: Gateway, database_url: str, owner_db: asyncpg.Connection) -> None:
    ctx = await _ctx(gw, database_url)
    user_id, email = await _person(ctx)
    before = await _head(owner_db, ctx.org_id)
    wrong = "not the password at all, sorry"
    response = await gw.client.post("/v1/sessions", json={"email": email, "password": wrong, "org_id": ctx.org_id})
    assert response.status_code == 401
    entries = await _entries_since(owner_db, ctx.org_id, before)
    failed = [e for e in entries if e["action"] == "session.login_failed"]
    assert failed and failed[0]["object_id"] == user_id and failed[0]["actor_type"] == "user"
    assert not any(wrong in f"{e['before']} {e['after']}" for e in entries)


@pytest.mark.parametrize("route", sorted(EXEMPT), ids=_call_id)
def test_exempt_routes_say_why(route: tuple[str, str]) -> None:
    assert len(EXEMPT[route]) > 40
