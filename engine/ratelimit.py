"""Rate limits as data and one pure algorithm: route classes, rates, the default policy, and GCRA.

GCRA (the generic cell rate algorithm) keeps one number per bucket, the theoretical arrival time (TAT): the
moment the bucket would be empty again if requests kept arriving exactly at the rate. A request of ``cost`` units
at ``now`` is admitted when ``max(tat, now) + cost * interval - burst * interval <= now``; then the TAT moves on by
``cost * interval``. So a full bucket admits ``burst`` requests at once, then one every ``interval``, and over any
window of length t it never admits more than ``burst + t / interval``. A refusal says exactly when the same
request would be admitted (``retry_after``), and changes nothing.

Times are integer microseconds (Redis TIME's resolution): integers stay exact in Lua's doubles, and a rate of
50,000/s still has a whole interval (20 us). persistence/ratelimit/rate_limit.lua implements ``decide`` for Redis; the
tests hold the two to the same answers.

Defaults never throttle a legitimate flash sale: one publishable key and one NAT address can carry every buyer of
a front-end, so the per-key and per-IP rates sit far above a sale's peak (tens of thousands of requests a second)
and only stop floods; per-buyer rates do the fairness work. See docs/api.md "Rate limits".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any

us_per_s = 1_000_000
day_us = 86_400 * us_per_s
rate_per_s_max = 10_000_000.0  # an interval of 0.1 us would round to 0: nothing above this is a rate
# One unit a day: anything slower is a ban, not a rate, and a tiny per_s (1e-300) would make an interval no
# Redis expiry (SET PX) can take, so every check would fail and the limiter would fail open.
rate_per_s_min = 1 / 86_400
# How long a drained bucket takes to refill (burst / per_s): at most a year keeps every TAT exact in Lua's
# doubles (2^53 us is ~285 years past the epoch's now) and every expiry a sane one.
bucket_refill_s_max = 366 * 86_400
burst_max = 100_000_000
daily_quota_max = 10**15


class RouteClass(StrEnum):
    """What a request costs the platform; every route has one (GET -> reads, other methods -> writes, unless the
    route declares otherwise: the hold routes are ``holds``; the login attempt budgets are ``logins``)."""

    reads = "reads"
    holds = "holds"
    writes = "writes"
    logins = "logins"


class Subject(StrEnum):
    """Who a bucket counts: the caller's key (or user), its address, the buyer it acts for, a login account."""

    key = "key"
    ip = "ip"
    buyer = "buyer"
    account = "account"


AUTH_FAILURES = "auth_failures"  # the per-IP budget of failed authentications (not a route class)
DAILY_QUOTA = "daily_quota"  # the per-key count of requests per UTC day
HOLDS_IN_FLIGHT = "holds_in_flight"  # the per-buyer cap on concurrent holds (per gateway process)


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_s`` units a second on average, up to ``burst`` at once from a rested bucket."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (isinstance(self.per_s, int | float) and math.isfinite(self.per_s) and self.per_s > 0):
            raise ValueError(f"per_s must be a positive number, not {self.per_s!r}")
        if not rate_per_s_min <= self.per_s <= rate_per_s_max:
            raise ValueError(
                f"per_s must be {rate_per_s_min:g}..{rate_per_s_max:g} (one a day up to ten million a second), "
                f"not {self.per_s!r}"
            )
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or not 1 <= self.burst <= burst_max:
            raise ValueError(f"burst must be a whole number 1..{burst_max}, not {self.burst!r}")
        if self.burst / self.per_s > bucket_refill_s_max:
            raise ValueError(
                f"burst / per_s (the seconds a drained bucket takes to refill) must be at most "
                f"{bucket_refill_s_max}, not {self.burst / self.per_s:g}"
            )

    @property
    def interval_us(self) -> int:
        """Microseconds between two units at the steady rate (rounded; at least 1)."""
        return max(1, round(us_per_s / self.per_s))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    tat_us: int  # the bucket's TAT after the decision (unchanged when refused)
    retry_after_us: int  # 0 when allowed; else how long until the same request would be admitted


def decide(tat_us: int, now_us: int, rate: Rate, cost: int = 1) -> Decision:
    """GCRA: admit ``cost`` units at ``now_us`` against a bucket whose TAT is ``tat_us`` (0 for a fresh bucket)."""
    interval = rate.interval_us
    new_tat = max(tat_us, now_us) + cost * interval
    allow_at = new_tat - rate.burst * interval
    if allow_at > now_us:
        return Decision(False, tat_us, allow_at - now_us)
    return Decision(True, new_tat, 0)


def next_midnight_us(now_us: int) -> int:
    """The next UTC midnight after ``now_us`` (epoch microseconds): when a daily quota starts again."""
    return (now_us // day_us + 1) * day_us


@cache  # on every admission; formatting StrEnums is slow, and the names are few
def limit_name(scope: RouteClass | str, subject: Subject) -> str:
    """The name of a limit, as the settings, the 429 details and the metrics spell it: ``holds.buyer``."""
    return f"{scope}.{subject}"


# The default policy. Every number is a named constant, per second with a burst; why each is what it is:
# - per key and per IP: far above a flash sale. The load-test harness (loadtests/flashsale) sends 100,000 buyers
#   from one address with one key over 10 s: peaks of several thousand holds/s, plus retries, confirms, releases
#   and availability polls. 50,000/s with a burst of 100,000 leaves an order of magnitude of headroom; only a
#   flood (or a broken client in a loop) meets it.
# - per buyer (holds): a person holds a few times a minute; 5/s with a burst of 10 lets every retry of the
#   harness's buyers (1 + 2 tries after 409s or 503s) through, and stops one buyer id from hammering an event.
# - admin writes (events, keys, members): people and back-office scripts; 500/s burst 2,000 per key.
# - login attempts (every password check, charged on arrival so a concurrent burst cannot slip past): 10 at once
#   per account, then one a minute (password guessing is the threat; a person logs in a few times a day); per IP
#   100 at once, then 1/s (an office behind NAT logs in together, and fumbles passwords too).
# - failed authentications (bad, revoked, expired keys or tokens) per IP: 100 at once, then 2/s. A key's secret is
#   unguessable; this stops floods of guesses and makes brute force answer 429.
per_key_reads = Rate(per_s=50_000, burst=100_000)
per_ip_reads = Rate(per_s=50_000, burst=100_000)
per_key_holds = Rate(per_s=50_000, burst=100_000)
per_ip_holds = Rate(per_s=50_000, burst=100_000)
per_buyer_holds = Rate(per_s=5, burst=10)
per_key_writes = Rate(per_s=500, burst=2_000)
per_ip_writes = Rate(per_s=500, burst=2_000)
login_attempts_per_account = Rate(per_s=1 / 60, burst=10)
login_attempts_per_ip = Rate(per_s=1, burst=100)
auth_failures_per_ip = Rate(per_s=2, burst=100)
daily_requests_per_key = 100_000_000  # ~1,150/s all day long: a quota for runaway clients, not for sales
holds_in_flight_per_buyer = 4  # concurrent hold requests per buyer per gateway process

DEFAULT_RATES: Mapping[str, Rate | None] = MappingProxyType(
    {
        limit_name(RouteClass.reads, Subject.key): per_key_reads,
        limit_name(RouteClass.reads, Subject.ip): per_ip_reads,
        limit_name(RouteClass.holds, Subject.key): per_key_holds,
        limit_name(RouteClass.holds, Subject.ip): per_ip_holds,
        limit_name(RouteClass.holds, Subject.buyer): per_buyer_holds,
        limit_name(RouteClass.writes, Subject.key): per_key_writes,
        limit_name(RouteClass.writes, Subject.ip): per_ip_writes,
        limit_name(RouteClass.logins, Subject.account): login_attempts_per_account,
        limit_name(RouteClass.logins, Subject.ip): login_attempts_per_ip,
        limit_name(AUTH_FAILURES, Subject.ip): auth_failures_per_ip,
    }
)


@dataclass(frozen=True)
class Policy:
    """Every rate by limit name (None: that limit is off), the daily quota per key (None: none), and the cap on
    a buyer's concurrent holds."""

    rates: Mapping[str, Rate | None] = field(default_factory=lambda: DEFAULT_RATES)
    daily_quota_per_key: int | None = daily_requests_per_key
    holds_in_flight_per_buyer: int = holds_in_flight_per_buyer

    def rate(self, scope: RouteClass | str, subject: Subject) -> Rate | None:
        return self.rates.get(limit_name(scope, subject))


DEFAULT_POLICY = Policy()


def policy_with(overrides: Mapping[str, Any], base: Policy = DEFAULT_POLICY) -> Policy:
    """``base`` with ``overrides`` applied, as VOELGOED_RATE_LIMITS spells them:
    ``{"reads.key": {"per_s": 100, "burst": 200}, "holds.ip": null, "daily_quota": 1000, "holds_in_flight": 2}``
    (null turns a limit off). Raises ValueError naming every problem."""
    if not isinstance(overrides, Mapping):
        raise ValueError("rate limits must be a JSON object of limit name -> {per_s, burst}")
    rates = dict(base.rates)
    quota, in_flight = base.daily_quota_per_key, base.holds_in_flight_per_buyer
    problems: list[str] = []
    for name, value in overrides.items():
        if name == DAILY_QUOTA:
            if value is None or _whole(value, 1, daily_quota_max):
                quota = value
            else:
                problems.append(f"{DAILY_QUOTA}: a whole number 1..{daily_quota_max} or null, not {value!r}")
        elif name == HOLDS_IN_FLIGHT:
            if _whole(value, 1, burst_max):
                in_flight = value
            else:
                problems.append(f"{HOLDS_IN_FLIGHT}: a whole number 1..{burst_max}, not {value!r}")
        elif name not in DEFAULT_RATES:
            known = ", ".join([*DEFAULT_RATES, DAILY_QUOTA, HOLDS_IN_FLIGHT])
            problems.append(f"{name!r} is not a limit (known: {known})")
        elif value is None:
            rates[name] = None
        else:
            try:
                rates[name] = _rate(value)
            except ValueError as error:
                problems.append(f"{name}: {error}")
    if problems:
        raise ValueError("; ".join(problems))
    return replace(base, rates=MappingProxyType(rates), daily_quota_per_key=quota, holds_in_flight_per_buyer=in_flight)


def _rate(value: Any) -> Rate:
    if not isinstance(value, Mapping) or set(value) != {"per_s", "burst"}:
        raise ValueError(f'expected {{"per_s": number, "burst": whole number}}, not {value!r}')
    per_s, burst = value["per_s"], value["burst"]
    if isinstance(per_s, bool):
        raise ValueError(f"per_s must be a positive number, not {per_s!r}")
    return Rate(per_s=per_s, burst=burst)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
