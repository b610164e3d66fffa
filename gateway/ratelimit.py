"""Rate limits at the gateway: which buckets a request spends, and what happens when Redis does not answer.

Every authenticated request is admitted once, all or nothing (persistence/ratelimit/rate_limit.lua): its key's
bucket and its address's bucket for the route class, the key's daily quota, and for a hold also the buyer's bucket
(org + event + buyer id). Defaults and why they never throttle a flash sale: engine/ratelimit.py and docs/api.md "Rate
limits".

Admissions are batched per org (gateway/coalescer.py): at most one script call in flight per org per process, and
the requests arriving meanwhile go together in the next one, each decided in order as if alone. One call per
request cost a quarter of the gateway's CPU in a flash sale (redis-py packing, sending and parsing each call) and
a third of its holds/s. Per org, because an org's keys share one Redis Cluster hash slot ({org_id}) and one call
may only touch one slot. Logins, failed authentications and routes without a key are rare and keyed otherwise:
they go one call each.

Failed authentication (a bad, revoked, expired or malformed key or token) spends the address's failure budget;
once it is spent the answer to a failing credential is 429, not 401. The credential is always checked first: a
valid one is served whatever the address's budget says. Thousands of buyers can share one NAT address, so one
stale tab presenting a revoked key must not lock out every buyer behind it (of every org); and a key's 256-bit
secret cannot be guessed, so refusing a right guess would protect nothing. Passwords can be guessed: logins have
budgets of their own, checked before the password (below).

Password checks (a login, POST /v1/sessions, and accepting an invitation with an existing password) are charged
to the account's (lower-cased e-mail) and the address's login buckets when they arrive, in one atomic call, before
the password is verified: a burst of concurrent guesses cannot all slip through between a check and a charge.
Routes without a key (login, refresh, accepting an invitation) are also admitted through a platform-wide bucket
of the address at the ``writes`` rate, so even right credentials cannot keep argon2 busy without end.

When Redis does not answer:
- request limits fail open (logged at most every ``fail_open_log_every_s``, counted in
  ``voelgoed_rate_limit_fail_open``): a sale that keeps selling beats limits that hold. So does an admission that
  waits longer than ``admission_wait_s_max``: a Redis that slow is as good as down. An admission that finds its
  org's queue full is a flood, not an outage: it answers 503 ``rate_limiter_busy`` (Retry-After), applying nothing;
- login throttling fails closed (503): passwords are guessable, and an unthrottled login is an open door;
- a failed authentication still answers 401 (a key's secret is not guessable; nothing is counted meanwhile).

Concurrent holds per buyer are capped per gateway process (``Policy.holds_in_flight_per_buyer``), in a bounded
in-process map: a cluster of N processes lets a buyer have up to N times the cap in flight.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from prometheus_client import Counter
from redis.exceptions import RedisError

from engine.limits import id_chars_max
from engine.ratelimit import (
    AUTH_FAILURES,
    DAILY_QUOTA,
    HOLDS_IN_FLIGHT,
    Policy,
    RouteClass,
    Subject,
    limit_name,
    us_per_s,
)
from gateway.auth import ACTOR_KEY, Principal
from gateway.coalescer import Coalescer, forget_idle
from gateway.errors import InfrastructureError, PersistenceUnavailable, TooManyRequests
from gateway.metrics import RATE_LIMIT_BATCH_REQUESTS, RATE_LIMIT_QUEUE_DEPTH
from persistence.outages import REDIS_OUTAGES
from persistence.ratelimit import redis_keys
from persistence.ratelimit.store import Bucket, Mode, Quota, Request, Verdict

log = logging.getLogger(__name__)

RATE_LIMITED = Counter("voelgoed_rate_limited", "Requests refused with 429, by limit", ["limit"])
RATE_LIMIT_FAIL_OPEN = Counter(
    "voelgoed_rate_limit_fail_open", "Requests let through unchecked because Redis did not answer the rate limiter"
)

buyers_in_flight_max = 100_000  # buyers tracked with holds in flight, per process; beyond it, untracked
fail_open_log_every_s = 10.0
orgs_batched_max = 10_000  # orgs with a batcher kept per process; past it the idle ones are forgotten
admissions_queued_max = 20_000  # per org per process; past it admissions answer 503
# Requests per script call: the script holds Redis for its whole run (measured: 1,024 requests of 3 buckets and a
# quota take 4.7 ms of Redis time), so a batch stays near a couple of milliseconds.
admission_batch_max = 512
admission_wait_s_max = 5.0  # as long as one Redis command may take (gateway/app.py): past it Redis counts as down



class RateLimiterBusy(InfrastructureError):
    """An org's admission queue is full: a flood, not an outage. Nothing applied; retry after Retry-After."""

    code = "rate_limiter_busy"
    default_message = "too many requests are waiting for their rate-limit check; retry shortly"

class AdmissionUnchecked(Exception):
    """An admission waited too long for its batch: it fails open, like a Redis that does not answer."""


_STORE_FAILURES: tuple[type[BaseException], ...] = (*REDIS_OUTAGES, RedisError, AdmissionUnchecked)
TOO_MANY_HOLDS_IN_FLIGHT = "too_many_holds_in_flight"


class BucketStore(Protocol):
    """persistence.ratelimit.store.RateLimitStore (tests pass fakes: a Redis that does not answer)."""

    async def check_many(self, requests: Sequence[Request], *, now_us: int | None = None) -> list[Verdict]: ...


def retry_after_s(retry_after_us: int) -> int:
    """Whole seconds for Retry-After, rounded up, at least 1."""
    return max(1, math.ceil(retry_after_us / us_per_s))


class RateLimiter:
    def __init__(
        self,
        store: BucketStore,
        policy: Policy,
        *,
        clock: Callable[[], float] = time.monotonic,
        queue_max: int = admissions_queued_max,
    ) -> None:
        self.policy = policy
        self._store = store
        self._clock = clock
        self._queue_max = queue_max
        self._batchers: dict[str, Coalescer[Request, Verdict]] = {}
        self._in_flight: dict[tuple[str, str | None, str], int] = {}
        self._fail_open_logged_at = -math.inf

    # Requests

    async def admit(
        self,
        route_class: RouteClass,
        *,
        principal: Principal,
        ip: str,
        buyer_id: str | None = None,
        event_id: str | None = None,
    ) -> None:
        """Spend the request's buckets (key, address, and the buyer's for a hold naming one), all or nothing;
        429 ``rate_limited`` when one is empty."""
        org = principal.org_id
        buckets: list[Bucket] = []
        for subject, parts in ((Subject.key, (principal.actor_id,)), (Subject.ip, (ip,))):
            self._add(buckets, org, route_class, subject, parts)
        if buyer_id is not None and event_id is not None and len(buyer_id) <= id_chars_max:
            self._add(buckets, org, route_class, Subject.buyer, (event_id, buyer_id))
        quota = None
        if principal.actor_type == ACTOR_KEY and self.policy.daily_quota_per_key is not None:
            quota = Quota(redis_keys.rate_quota(org, principal.actor_id), self.policy.daily_quota_per_key, DAILY_QUOTA)
        if not buckets and quota is None:
            return
        try:
            verdict = await self._batcher(org).submit(Request(buckets, quota), admission_wait_s_max)
        except _STORE_FAILURES:
            self._failed_open()
            return
        _raise_if_refused(verdict)

    def _batcher(self, org: str) -> Coalescer[Request, Verdict]:
        batcher = self._batchers.get(org)
        if batcher is None:
            forget_idle(self._batchers, orgs_batched_max)
            batcher = Coalescer(
                self._store.check_many,
                queue_max=self._queue_max,
                batch_max=admission_batch_max,
                # A full queue is a flood, not an outage: letting it through unchecked would switch the limits off
                # exactly when they are needed, so it answers 503 + Retry-After and applies nothing.
                busy=RateLimiterBusy,
                timed_out=AdmissionUnchecked,
                depth_gauge=RATE_LIMIT_QUEUE_DEPTH,
                batch_sizes=RATE_LIMIT_BATCH_REQUESTS,
            )
            self._batchers[org] = batcher
        return batcher

    async def _check(self, request: Request) -> Verdict:
        """One request in a call of its own (keys outside any org's hash slot)."""
        return (await self._store.check_many([request]))[0]

    def _add(
        self, buckets: list[Bucket], org: str, route_class: RouteClass, subject: Subject, parts: tuple[str, ...]
    ) -> None:
        rate = self.policy.rate(route_class, subject)
        if rate is not None:
            key = redis_keys.rate_bucket(org, route_class, subject, *parts)
            buckets.append(Bucket(key, rate, limit_name(route_class, subject)))

    def _failed_open(self) -> None:
        RATE_LIMIT_FAIL_OPEN.inc()
        now = self._clock()
        if now - self._fail_open_logged_at >= fail_open_log_every_s:
            self._fail_open_logged_at = now
            log.warning("rate limits not checked: Redis did not answer (failing open)", exc_info=True)

    # Failed authentication

    async def auth_failed(self, *, ip: str, presented: str | None) -> None:
        """A request presented a credential that failed (it is only called after the credential was checked: a
        valid one is never refused for its address's failures): spend the address's failure budget; 429 once it
        is spent (the caller re-raises its 401 otherwise). A request that presented nothing spends nothing."""
        if not presented:
            return
        bucket = self._auth_failure_bucket(ip)
        if bucket is None:
            return
        try:
            verdict = await self._check(Request([bucket], mode=Mode.each))
        except _STORE_FAILURES:
            self._failed_open()
            return
        _raise_if_refused(verdict)

    def _auth_failure_bucket(self, ip: str) -> Bucket | None:
        rate = self.policy.rate(AUTH_FAILURES, Subject.ip)
        if rate is None:
            return None
        return Bucket(redis_keys.auth_failure_bucket(ip), rate, limit_name(AUTH_FAILURES, Subject.ip))

    # Logins

    async def admit_login(self, *, email: str, ip: str) -> None:
        """Before a password is verified: charge one attempt to the account's and the address's login buckets,
        all or nothing; 429 when either is empty; 503 when Redis does not answer (logins fail closed)."""
        buckets = self._login_buckets(email, ip)
        if not buckets:
            return
        try:
            verdict = await self._check(Request(buckets, mode=Mode.all))
        except _STORE_FAILURES:
            raise PersistenceUnavailable("logins are unavailable while their throttle is; retry shortly") from None
        _raise_if_refused(verdict)

    async def admit_public(self, ip: str) -> None:
        """A route without a key (login, refresh, accepting an invitation): charge the address's platform-wide
        bucket at the ``writes`` rate; 429 when it is empty. Fails open, like every request limit."""
        rate = self.policy.rate(RouteClass.writes, Subject.ip)
        if rate is None:
            return
        name = limit_name(RouteClass.writes, Subject.ip)
        bucket = Bucket(redis_keys.public_rate_bucket(RouteClass.writes, ip), rate, name)
        try:
            verdict = await self._check(Request([bucket]))
        except _STORE_FAILURES:
            self._failed_open()
            return
        _raise_if_refused(verdict)

    def _login_buckets(self, email: str, ip: str) -> list[Bucket]:
        buckets: list[Bucket] = []
        for subject, value in ((Subject.account, email.strip().lower()), (Subject.ip, ip)):
            rate = self.policy.rate(RouteClass.logins, subject)
            if rate is not None:
                key = redis_keys.login_bucket(subject, value)
                buckets.append(Bucket(key, rate, limit_name(RouteClass.logins, subject)))
        return buckets

    # Holds in flight

    @asynccontextmanager
    async def holds_in_flight(self, org_id: str, event_id: str | None, buyer_id: str) -> AsyncIterator[None]:
        """Count one hold in flight for the buyer while the block runs; 429 ``too_many_holds_in_flight`` when the
        buyer already has the cap in flight in this process."""
        slot = (org_id, event_id, buyer_id)
        count = self._in_flight.get(slot, 0)
        cap = self.policy.holds_in_flight_per_buyer
        if count >= cap:
            RATE_LIMITED.labels(HOLDS_IN_FLIGHT).inc()
            raise TooManyRequests(
                HOLDS_IN_FLIGHT,
                1,
                f"this buyer already has {cap} holds in flight; retry once they are answered",
                code=TOO_MANY_HOLDS_IN_FLIGHT,
            )
        if count == 0 and len(self._in_flight) >= buyers_in_flight_max:
            yield  # the map is full: this hold goes untracked rather than refused
            return
        self._in_flight[slot] = count + 1
        try:
            yield
        finally:
            left = self._in_flight[slot] - 1
            if left:
                self._in_flight[slot] = left
            else:
                del self._in_flight[slot]


def _raise_if_refused(verdict: Verdict) -> None:
    if verdict.allowed:
        return
    limit = verdict.refused_by or "unknown"
    RATE_LIMITED.labels(limit).inc()
    raise TooManyRequests(limit, retry_after_s(verdict.retry_after_us), f"rate limit {limit} reached")
