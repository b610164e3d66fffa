"""The limiter batches an org's admissions (one store call in flight per org, the rest go together), keeps each
request's own verdict, never mixes orgs in one call, fails open when the store fails, and answers 503 when the
queue is full."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
import redis.exceptions
from prometheus_client import REGISTRY

from engine.ratelimit import DEFAULT_POLICY, RouteClass
from gateway.auth import ACTOR_KEY, Principal
from gateway.errors import TooManyRequests
from gateway.ratelimit import RateLimiter, RateLimiterBusy
from persistence.ratelimit.store import Quota, Request, Verdict
from tests.bounded_wait import until

REFUSED_BUYER = "greedy"


class CountingStore:
    """Answers every request, refusing those of REFUSED_BUYER; records each call's requests; answers only once
    ``gate`` is open, and fails every call once ``down``."""

    def __init__(self) -> None:
        self.calls: list[Sequence[Request]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    async def check_many(self, requests: Sequence[Request], *, now_us: int | None = None) -> list[Verdict]:
        self.calls.append(requests)
        await self.gate.wait()
        if self.down:
            raise redis.exceptions.ConnectionError("down")
        return [_verdict(request) for request in requests]


def _verdict(request: Request) -> Verdict:
    if any(bucket.key.endswith(REFUSED_BUYER) for bucket in request.buckets):
        return Verdict(False, "holds.buyer", 2_000_000)
    return Verdict(True, None, 0)


def _principal(org: str) -> Principal:
    return Principal(ACTOR_KEY, "key-1", org, frozenset())


async def _admit(limiter: RateLimiter, org: str, buyer: str) -> None:
    principal = _principal(org)
    await limiter.admit(RouteClass.holds, principal=principal, ip="1.2.3.4", buyer_id=buyer, event_id="e")


def _fail_open_count() -> float:
    return REGISTRY.get_sample_value("voelgoed_rate_limit_fail_open_total") or 0.0


def _queue_depth() -> float:
    return REGISTRY.get_sample_value("voelgoed_rate_limit_queue_depth") or 0.0


async def test_concurrent_admits_of_one_org_share_store_calls_and_keep_their_own_verdicts() -> None:
    store = CountingStore()
    limiter = RateLimiter(store, DEFAULT_POLICY)
    buyers = [f"b{i}" for i in range(50)] + [REFUSED_BUYER]
    outcomes = await asyncio.gather(*(_admit(limiter, "org-1", b) for b in buyers), return_exceptions=True)
    assert len(store.calls) < len(buyers)
    assert sum(len(call) for call in store.calls) == len(buyers)
    assert outcomes[:-1] == [None] * 50
    assert isinstance(outcomes[-1], TooManyRequests)
    assert outcomes[-1].headers["Retry-After"] == "2"


async def test_one_call_never_mixes_orgs() -> None:
    store = CountingStore()
    limiter = RateLimiter(store, DEFAULT_POLICY)
    await asyncio.gather(*(_admit(limiter, f"org-{i % 3}", f"b{i}") for i in range(30)))
    for call in store.calls:
        orgs = {key.split("}")[0] for request in call for key in (b.key for b in request.buckets)}
        assert len(orgs) == 1, orgs


async def test_a_store_failure_fails_the_whole_batch_open() -> None:
    store = CountingStore()
    store.down = True
    limiter = RateLimiter(store, DEFAULT_POLICY)
    before = _fail_open_count()
    await asyncio.gather(*(_admit(limiter, "org-1", f"b{i}") for i in range(10)))
    assert _fail_open_count() == before + 10


async def test_a_full_queue_answers_503_at_once_and_checks_nothing_unchecked() -> None:
    store = CountingStore()
    store.gate.clear()
    limiter = RateLimiter(store, DEFAULT_POLICY, queue_max=2)
    waiting = [asyncio.ensure_future(_admit(limiter, "org-1", "b0"))]
    await until(lambda: len(store.calls) == 1)  # b0 in flight
    queued_before = _queue_depth()
    waiting += [asyncio.ensure_future(_admit(limiter, "org-1", f"b{i}")) for i in (1, 2)]
    await until(lambda: _queue_depth() == queued_before + 2)  # b1 and b2 queued: the queue is full
    before = _fail_open_count()
    with pytest.raises(RateLimiterBusy) as busy:  # refused at once: a flood must not switch the limits off
        await asyncio.wait_for(_admit(limiter, "org-1", "late"), 1.0)
    assert busy.value.status == 503 and busy.value.headers["Retry-After"]
    assert _fail_open_count() == before
    store.gate.set()
    await asyncio.gather(*waiting)
    assert all("late" not in b.key for call in store.calls for request in call for b in request.buckets)


@pytest.mark.parametrize("route_class", [RouteClass.reads, RouteClass.writes])
async def test_admits_without_a_buyer_are_batched_too(route_class: RouteClass) -> None:
    store = CountingStore()
    limiter = RateLimiter(store, DEFAULT_POLICY)
    principal = _principal("org-1")
    await asyncio.gather(*(limiter.admit(route_class, principal=principal, ip="1.2.3.4") for _ in range(20)))
    assert len(store.calls) < 20


def test_a_daily_quota_is_at_least_one_request() -> None:
    # The script skips the key of a 0 quota, which would shift every later key of the call.
    with pytest.raises(ValueError):
        Quota("vg:{org_x}:rl:quota:k", 0, "daily_quota")
    assert Quota("vg:{org_x}:rl:quota:k", 1, "daily_quota").per_day == 1
