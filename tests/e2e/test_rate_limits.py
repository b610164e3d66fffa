"""Rate limits end to end, through the real app over the fake inventory on real Postgres and Redis, with tight
limits from the settings: reads answer 429 with Retry-After; brute force of keys answers 429 once the address's
failure budget is spent, while a valid key from that address keeps working (one NAT address carries many buyers);
the buyer's hold limit and the in-flight cap; the daily quota; failed logins; and what the limiter does when Redis
does not answer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.exceptions

from engine.access.passwords import hash_password
from engine.inventory.commands import Command, Hold, Result
from engine.ratelimit import DEFAULT_POLICY, RouteClass, Subject, decide, policy_with, us_per_s
from gateway.auth import ACTOR_KEY, Principal
from gateway.errors import PersistenceUnavailable, TooManyRequests
from gateway.ratelimit import RateLimiter
from persistence.access import memberships, users
from persistence.db import connect
from persistence.ratelimit.store import Request, Verdict
from persistence.tenancy import org_transaction
from tests.bounded_wait import until
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.fakes.inventory import FakeInventoryClient

PASSWORD = "correct horse battery staple"
OTHER_ADDRESS = ("10.9.8.7", 4321)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@asynccontextmanager
async def gateway(
    database_url: str, redis_url: str, overrides: Mapping[str, Any], *, inventory: FakeInventoryClient | None = None
) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, redis_url, rate_limits=policy_with(overrides), inventory=inventory) as gw:
        yield gw


@asynccontextmanager
async def client_from(gw: Gateway, address: tuple[str, int]) -> AsyncIterator[httpx.AsyncClient]:
    """Another client of the same running app, calling from ``address``."""
    transport = httpx.ASGITransport(app=gw.app, client=address)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield client


def assert_429(response: httpx.Response, limit: str, code: str = "rate_limited") -> int:
    """The 429 shape; returns Retry-After (whole seconds, at least 1)."""
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    assert error["details"] == {"limit": limit, "retry_after_s": retry_after}
    return retry_after


async def on_sale_event(gw: Gateway, headers: dict[str, str], **shape: Any) -> str:
    created = await gw.client.post("/v1/events", json=event_body(**shape), headers=headers)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    published = await gw.client.post(f"/v1/events/{event_id}/publish", headers=headers)
    assert published.status_code == 200, published.text
    return event_id


async def hold(
    gw: Gateway, headers: dict[str, str], event_id: str, buyer: str, key: str | None = None
) -> httpx.Response:
    extra = {"Idempotency-Key": key} if key else {}
    body = {"buyer_id": buyer, "ticket_type": "GA", "quantity": 1}
    return await gw.client.post(f"/v1/events/{event_id}/holds", json=body, headers=headers | extra)


async def test_reads_over_the_keys_rate_answer_429_with_retry_after(database_url: str, clean_redis: str) -> None:
    _, key = await new_org(database_url, "reads org")
    async with gateway(database_url, clean_redis, {"reads.key": {"per_s": 0.5, "burst": 2}}) as gw:
        for _ in range(2):
            assert (await gw.client.get("/v1/api-keys", headers=bearer(key))).status_code == 200
        refused = await gw.client.get("/v1/api-keys", headers=bearer(key))
        assert assert_429(refused, "reads.key") == 2  # one read every 2 s
        # Another key of the same org, from the same address, has a bucket of its own.
        _, other = await new_org(database_url, "other reads org")
        assert (await gw.client.get("/v1/api-keys", headers=bearer(other))).status_code == 200
        # Writes are another route class.
        assert (await gw.client.post("/v1/events", json=event_body(), headers=bearer(key))).status_code == 201


async def test_the_address_bucket_counts_every_key_from_one_address(database_url: str, clean_redis: str) -> None:
    _, first = await new_org(database_url, "ip org")
    async with gateway(database_url, clean_redis, {"reads.ip": {"per_s": 1, "burst": 2}}) as gw:
        assert (await gw.client.get("/v1/api-keys", headers=bearer(first))).status_code == 200
        assert (await gw.client.get("/v1/api-keys", headers=bearer(first))).status_code == 200
        assert_429(await gw.client.get("/v1/api-keys", headers=bearer(first)), "reads.ip")
        async with client_from(gw, OTHER_ADDRESS) as elsewhere:
            assert (await elsewhere.get("/v1/api-keys", headers=bearer(first))).status_code == 200


async def test_brute_force_of_keys_answers_429_and_a_valid_key_keeps_working(
    database_url: str, clean_redis: str
) -> None:
    _, key = await new_org(database_url, "brute org")
    prefix = key.split("_")[1]
    async with gateway(database_url, clean_redis, {"auth_failures.ip": {"per_s": 2, "burst": 3}}) as gw:
        for _ in range(10):  # presenting nothing is not a guess: it spends nothing
            assert (await gw.client.get("/v1/api-keys")).status_code == 401
        guesses = [f"vk_{prefix}_{secrets.token_urlsafe(32)[:43]}", "vk_nonsense", "not-a-key-at-all"]
        for guess in guesses:
            assert (await gw.client.get("/v1/api-keys", headers=bearer(guess))).status_code == 401
        for guess in guesses:  # the budget is spent: every failing credential from this address gets 429
            assert_429(await gw.client.get("/v1/api-keys", headers=bearer(guess)), "auth_failures.ip")
        # A valid key from the same address is served all along: behind a NAT, one stale tab presenting a revoked
        # key must not lock out every buyer sharing the address (and a 256-bit secret cannot be guessed).
        for _ in range(5):
            assert (await gw.client.get("/v1/api-keys", headers=bearer(key))).status_code == 200
            assert_429(await gw.client.get("/v1/api-keys", headers=bearer(guesses[0])), "auth_failures.ip")
        # Another address has its own budget: its failures are 401s.
        async with client_from(gw, OTHER_ADDRESS) as elsewhere:
            assert (await elsewhere.get("/v1/api-keys", headers=bearer(guesses[1]))).status_code == 401
        # Once the window has passed (one failure every 0.5 s), a failure is a 401 again.
        await asyncio.sleep(0.6)
        assert (await gw.client.get("/v1/api-keys", headers=bearer(guesses[1]))).status_code == 401


async def test_the_buyer_limit_stops_one_buyer_and_a_429_is_never_replayed(database_url: str, clean_redis: str) -> None:
    _, key = await new_org(database_url, "buyer org")
    headers = bearer(key)
    async with gateway(database_url, clean_redis, {"holds.buyer": {"per_s": 2, "burst": 2}}) as gw:
        event_id = await on_sale_event(gw, headers)
        assert (await hold(gw, headers, event_id, "buyer-1")).status_code == 201
        assert (await hold(gw, headers, event_id, "buyer-1")).status_code == 201
        refused = await hold(gw, headers, event_id, "buyer-1", key="retry-me")
        assert_429(refused, "holds.buyer")
        assert (await hold(gw, headers, event_id, "buyer-2")).status_code == 201  # another buyer is unaffected
        other_event = await on_sale_event(gw, headers)
        assert (await hold(gw, headers, other_event, "buyer-1")).status_code == 201  # per event
        await asyncio.sleep(0.55)
        retried = await hold(gw, headers, event_id, "buyer-1", key="retry-me")
        assert retried.status_code == 201, retried.text  # the 429 was not stored under the Idempotency-Key
        assert "Idempotent-Replayed" not in retried.headers
        # A body without a usable buyer id still spends the key's and address's buckets, then fails validation.
        bad = await gw.client.post(f"/v1/events/{event_id}/holds", json={"buyer_id": 7}, headers=headers)
        assert bad.status_code == 422


class GatedInventory(FakeInventoryClient):
    """Holds wait at a gate until the test opens it, so several stay in flight."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        super().__init__(database_url, redis_url)
        self.gate = asyncio.Event()
        self.waiting = 0

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        if isinstance(command, Hold):
            self.waiting += 1
            await self.gate.wait()
        return await super().submit(org_id, event_id, command, dedicated=dedicated)


async def test_a_buyer_has_at_most_the_cap_of_holds_in_flight(database_url: str, clean_redis: str) -> None:
    _, key = await new_org(database_url, "in flight org")
    headers = bearer(key)
    inventory = GatedInventory(database_url, clean_redis)
    async with gateway(database_url, clean_redis, {"holds_in_flight": 2}, inventory=inventory) as gw:
        event_id = await on_sale_event(gw, headers)
        first = [asyncio.ensure_future(hold(gw, headers, event_id, "eager")) for _ in range(2)]
        await until(lambda: inventory.waiting >= 2)
        assert_429(await hold(gw, headers, event_id, "eager"), "holds_in_flight", "too_many_holds_in_flight")
        patient = asyncio.ensure_future(hold(gw, headers, event_id, "patient"))  # another buyer is not capped
        await until(lambda: inventory.waiting >= 3)
        inventory.gate.set()
        assert [r.status_code for r in await asyncio.gather(*first, patient)] == [201, 201, 201]
        assert (await hold(gw, headers, event_id, "eager")).status_code == 201  # answered: the slots are free


async def test_the_daily_quota_refuses_until_midnight_utc(database_url: str, clean_redis: str) -> None:
    _, key = await new_org(database_url, "quota org")
    async with gateway(database_url, clean_redis, {"daily_quota": 3}) as gw:
        for _ in range(3):
            assert (await gw.client.get("/v1/api-keys", headers=bearer(key))).status_code == 200
        retry_after = assert_429(await gw.client.get("/v1/api-keys", headers=bearer(key)), "daily_quota")
        assert retry_after <= 86_400


async def test_failed_logins_answer_429_before_the_password_is_checked(database_url: str, clean_redis: str) -> None:
    org_id, _ = await new_org(database_url, "login org")
    email = f"person.{secrets.token_hex(4)}@example.com"
    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            user = await users.create_user(db.conn, email, hash_password(PASSWORD))
            await memberships.add_member(db, user.id, "owner", accepted=True)
    finally:
        await conn.close()
    async with gateway(database_url, clean_redis, {"logins.account": {"per_s": 0.01, "burst": 3}}) as gw:
        for _ in range(3):
            wrong = await gw.client.post("/v1/sessions", json={"email": email, "password": "wrong password!!"})
            assert wrong.status_code == 401, wrong.text
        right = await gw.client.post("/v1/sessions", json={"email": email.upper(), "password": PASSWORD})
        assert assert_429(right, "logins.account") == 100  # the account's, whatever the case of the address
        async with client_from(gw, OTHER_ADDRESS) as elsewhere:  # per account, not per address
            assert_429(
                await elsewhere.post("/v1/sessions", json={"email": email, "password": PASSWORD}), "logins.account"
            )


def test_the_default_policy_lets_2000_holds_a_second_from_one_key_and_address_through() -> None:
    """The arithmetic the gateway runs (engine.ratelimit.decide), with the defaults a gateway starts with: a
    minute of 2,000 holds/s from one key and one address, each buyer holding twice, is never refused."""
    interval = us_per_s // 2_000
    for scope, subject in ((RouteClass.holds, Subject.key), (RouteClass.holds, Subject.ip)):
        rate = DEFAULT_POLICY.rate(scope, subject)
        assert rate is not None
        tat, now = 0, 0
        for _ in range(2_000 * 60):
            now += interval
            decision = decide(tat, now, rate)
            assert decision.allowed
            tat = decision.tat_us


async def test_a_gateway_starts_with_the_default_policy(database_url: str, clean_redis: str) -> None:
    async with running_gateway(database_url, clean_redis) as gw:
        assert gw.app.state.services.limits.policy == DEFAULT_POLICY


class DownStore:
    """A rate-limit store whose Redis does not answer."""

    async def check_many(self, requests: Sequence[Request], *, now_us: int | None = None) -> list[Verdict]:
        raise redis.exceptions.ConnectionError("down")


class RefusingStore:
    """A rate-limit store whose first bucket is always empty for 1.5 s more."""

    async def check_many(self, requests: Sequence[Request], *, now_us: int | None = None) -> list[Verdict]:
        return [Verdict(False, request.buckets[0].name, 1_500_000) for request in requests]


async def test_with_redis_down_requests_fail_open_and_logins_fail_closed() -> None:
    limiter = RateLimiter(DownStore(), DEFAULT_POLICY)
    principal = Principal(ACTOR_KEY, "key-1", "org-1", frozenset())
    await limiter.admit(RouteClass.holds, principal=principal, ip="1.2.3.4", buyer_id="b", event_id="e")
    await limiter.auth_failed(ip="1.2.3.4", presented="vk_bad")  # the 401 stands
    with pytest.raises(PersistenceUnavailable):
        await limiter.admit_login(email="a@example.com", ip="1.2.3.4")
    await limiter.admit_public("1.2.3.4")  # a request limit: fails open


async def test_a_failure_over_the_addresss_budget_answers_429_with_retry_after() -> None:
    refusing = RateLimiter(RefusingStore(), DEFAULT_POLICY)
    with pytest.raises(TooManyRequests) as refused:
        await refusing.auth_failed(ip="6.6.6.6", presented="vk_guess")
    assert refused.value.headers["Retry-After"] == "2"  # 1.5 s, rounded up
    await refusing.auth_failed(ip="6.6.6.6", presented=None)  # presenting nothing is not a failure: not even asked
