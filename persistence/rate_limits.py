"""The rate-limit store: persistence/rate_limit.lua, loaded once, checking several GCRA buckets in one atomic call.

redis-py's registered script sends EVALSHA and falls back to EVAL (which loads it) on NOSCRIPT, so a restarted or
flushed Redis costs one extra round trip, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import cast

from redis.asyncio import Redis

from engine.ratelimit import Rate

SCRIPT = resources.files("persistence").joinpath("rate_limit.lua").read_text()


class Mode(StrEnum):
    all = "all"  # admit only if every bucket (and the quota) admits; a refusal charges nothing
    peek = "peek"  # say whether `all` would admit; charge nothing
    each = "each"  # charge each bucket that admits, independently (failure budgets)


@dataclass(frozen=True, slots=True)
class Bucket:
    key: str  # persistence.redis_keys.rate_bucket / login_bucket / auth_failure_bucket
    rate: Rate
    name: str  # the limit's name, reported when it refuses (engine.ratelimit.limit_name)
    cost: int = 1


@dataclass(frozen=True, slots=True)
class Quota:
    key: str  # persistence.redis_keys.rate_quota
    per_day: int
    name: str


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    refused_by: str | None  # the name of the limit that frees up last, when refused
    retry_after_us: int


class RateLimitStore:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(SCRIPT)

    async def check(
        self,
        buckets: Sequence[Bucket],
        *,
        quota: Quota | None = None,
        mode: Mode = Mode.all,
        now_us: int | None = None,
    ) -> Verdict:
        """One round trip. ``now_us`` is for tests only (a clock of their own; see the script's header):
        production always uses Redis TIME, one clock for every gateway."""
        keys = [b.key for b in buckets] + ([quota.key] if quota is not None else [])
        args: list[str | int] = ["" if now_us is None else now_us, mode.value, quota.per_day if quota else 0]
        for bucket in buckets:
            args += [bucket.rate.interval_us, bucket.rate.burst, bucket.cost]
        admitted, index, wait = cast(list[int], await self._script(keys=keys, args=args))
        if admitted:
            return Verdict(True, None, 0)
        names = [b.name for b in buckets] + ([quota.name] if quota is not None else [])
        return Verdict(False, names[int(index) - 1], int(wait))
