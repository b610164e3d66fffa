"""persistence/ratelimit/rate_limit.lua on a real Redis: it agrees with the pure model (engine.ratelimit.decide) on
random sequences under a test clock, also when many requests go in one call (each sees the charges of those before it),
is all or nothing across buckets and the quota, and its quota starts again each UTC day."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from engine.ratelimit import Decision, Rate, decide, next_midnight_us, us_per_s
from persistence.ratelimit import redis_keys
from persistence.ratelimit.store import Bucket, Mode, Quota, RateLimitStore, Request, Verdict

seeds = 60
steps_per_seed = 80
day_us = 86_400 * us_per_s
start_us = 1_800_000_000 * us_per_s + 123_456  # an arbitrary moment, mid-day UTC


def _random_rate(rng: random.Random) -> Rate:
    per_s = rng.choice([rng.randint(1, 20), rng.uniform(0.05, 5.0), rng.randint(1_000, 100_000)])
    return Rate(per_s=per_s, burst=rng.randint(1, 12))


async def _tat(redis: Redis, key: str) -> int:
    raw = await redis.get(key)
    return 0 if raw is None else int(raw)


async def test_the_script_agrees_with_the_model_on_random_sequences(redis: Redis) -> None:
    store = RateLimitStore(redis)
    for seed in range(seeds):
        rng = random.Random(seed)
        buckets = [
            Bucket(redis_keys.rate_bucket("org-t", "holds", "key", f"{seed}-{i}"), _random_rate(rng), f"b{i}")
            for i in range(rng.randint(1, 3))
        ]
        tats = [0] * len(buckets)
        now = start_us
        for _ in range(steps_per_seed):
            now += rng.choice([0, 0, rng.randint(1, 1_000), rng.randint(1, 2 * us_per_s)])
            costs = [rng.randint(1, 3) for _ in buckets]
            charged = [Bucket(b.key, b.rate, b.name, cost) for b, cost in zip(buckets, costs, strict=True)]
            decisions = [decide(t, now, b.rate, b.cost) for t, b in zip(tats, charged, strict=True)]
            verdict = await store.check(charged, now_us=now)
            refusing = [(d.retry_after_us, -i) for i, d in enumerate(decisions) if not d.allowed]
            if refusing:
                wait, minus_index = max(refusing)
                assert (verdict.allowed, verdict.refused_by, verdict.retry_after_us) == (
                    False,
                    buckets[-minus_index].name,
                    wait,
                ), seed
            else:
                assert (verdict.allowed, verdict.retry_after_us) == (True, 0), seed
                tats = [d.tat_us for d in decisions]
            assert [await _tat(redis, b.key) for b in buckets] == tats, seed  # all or nothing


async def test_a_refusal_charges_no_bucket_and_names_the_one_that_frees_up_last(redis: Redis) -> None:
    store = RateLimitStore(redis)
    roomy = Bucket("vg:{o}:rl:t:roomy", Rate(per_s=1, burst=100), "roomy")
    tight = Bucket("vg:{o}:rl:t:tight", Rate(per_s=1, burst=2), "tight")
    assert (await store.check([roomy, tight], now_us=start_us)).allowed
    assert (await store.check([roomy, tight], now_us=start_us)).allowed
    roomy_tat = await _tat(redis, roomy.key)
    verdict = await store.check([roomy, tight], now_us=start_us)
    assert (verdict.allowed, verdict.refused_by, verdict.retry_after_us) == (False, "tight", us_per_s)
    assert await _tat(redis, roomy.key) == roomy_tat
    assert (await store.check([roomy, tight], now_us=start_us + us_per_s)).allowed


async def test_peek_charges_nothing_and_each_charges_whatever_admits(redis: Redis) -> None:
    store = RateLimitStore(redis)
    full = Bucket("vg:{o}:rl:t:full", Rate(per_s=1, burst=1), "full")
    free = Bucket("vg:{o}:rl:t:free", Rate(per_s=1, burst=5), "free")
    assert (await store.check([full], now_us=start_us)).allowed
    for _ in range(3):
        verdict = await store.check([full, free], mode=Mode.peek, now_us=start_us)
        assert (verdict.allowed, verdict.refused_by) == (False, "full")
    assert await _tat(redis, free.key) == 0
    verdict = await store.check([full, free], mode=Mode.each, now_us=start_us)
    assert (verdict.allowed, verdict.refused_by) == (False, "full")
    assert await _tat(redis, free.key) == start_us + us_per_s  # charged although the other refused


async def test_the_daily_quota_refuses_until_midnight_and_starts_again_the_next_day(redis: Redis) -> None:
    store = RateLimitStore(redis)
    bucket = Bucket("vg:{o}:rl:t:b", Rate(per_s=1_000, burst=1_000), "bucket")
    quota = Quota(redis_keys.rate_quota("o", "key-1"), 3, "daily_quota")
    for _ in range(3):
        assert (await store.check([bucket], quota=quota, now_us=start_us)).allowed
    tat = await _tat(redis, bucket.key)
    verdict = await store.check([bucket], quota=quota, now_us=start_us)
    midnight = next_midnight_us(start_us)
    assert (verdict.allowed, verdict.refused_by, verdict.retry_after_us) == (False, "daily_quota", midnight - start_us)
    assert await _tat(redis, bucket.key) == tat  # the refused request charged nothing
    assert not (await store.check([bucket], quota=quota, now_us=midnight - 1)).allowed
    for _ in range(3):
        assert (await store.check([bucket], quota=quota, now_us=midnight)).allowed
    assert not (await store.check([bucket], quota=quota, now_us=midnight + day_us - 1)).allowed
    assert (await store.check([bucket], quota=quota, now_us=midnight + day_us)).allowed


async def test_a_bucket_refusal_does_not_count_against_the_quota(redis: Redis) -> None:
    store = RateLimitStore(redis)
    bucket = Bucket("vg:{o}:rl:t:slow", Rate(per_s=1, burst=1), "slow")
    quota = Quota(redis_keys.rate_quota("o", "key-2"), 2, "daily_quota")
    assert (await store.check([bucket], quota=quota, now_us=start_us)).allowed
    for _ in range(5):
        assert not (await store.check([bucket], quota=quota, now_us=start_us)).allowed
    assert (await store.check([bucket], quota=quota, now_us=start_us + us_per_s)).allowed


async def test_under_the_real_clock_buckets_expire_once_rested_and_the_script_survives_a_flush(redis: Redis) -> None:
    store = RateLimitStore(redis)
    bucket = Bucket("vg:{o}:rl:t:real", Rate(per_s=1, burst=10), "real")
    quota = Quota(redis_keys.rate_quota("o", "key-3"), 100, "daily_quota")
    assert (await store.check([bucket], quota=quota)).allowed
    seconds, micros = await redis.time()
    now = seconds * us_per_s + micros
    tat = await _tat(redis, bucket.key)
    assert now - 5 * us_per_s < tat <= now + us_per_s  # a rested bucket's TAT starts from Redis' clock
    assert 0 < await redis.pttl(bucket.key) <= 1_000
    assert 0 < await redis.pttl(quota.key) <= 86_400_000
    await redis.script_flush()  # NOSCRIPT: redis-py loads the script again
    assert (await store.check([bucket], quota=quota)).allowed
    assert await redis.hget(quota.key, "n") == b"2"


# Many requests per call: a few buckets and quotas shared by random requests, split into random batches.
model_examples = 60
pool_rates = [Rate(per_s=1, burst=2), Rate(per_s=5, burst=3), Rate(per_s=1_000, burst=10), Rate(per_s=0.5, burst=1)]
pool_buckets = [
    Bucket(redis_keys.rate_bucket("o", "holds", "key", str(i)), rate, f"b{i}") for i, rate in enumerate(pool_rates)
]
pool_quotas = [Quota(redis_keys.rate_quota("o", f"k{i}"), per_day, f"q{i}") for i, per_day in enumerate((3, 7))]

requests = st.builds(
    Request,
    buckets=st.lists(
        st.tuples(st.sampled_from(pool_buckets), st.integers(1, 3)), min_size=1, max_size=3, unique_by=lambda b: b[0]
    ).map(lambda chosen: [Bucket(b.key, b.rate, b.name, cost) for b, cost in chosen]),
    quota=st.one_of(st.none(), st.sampled_from(pool_quotas)),
    mode=st.sampled_from(list(Mode)),
)
# (microseconds since the previous batch: none, a little, up to a day; the requests of one call)
batches = st.lists(
    st.tuples(st.sampled_from([0, 1_000, us_per_s, 3 * us_per_s, day_us]), st.lists(requests, min_size=1, max_size=8)),
    min_size=1,
    max_size=8,
)


@dataclass
class Model:
    """The state the script keeps, kept by engine.ratelimit.decide: TATs, and each quota's (day, count)."""

    tats: dict[str, int] = field(default_factory=dict)
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def check(self, request: Request, now: int) -> Verdict:
        decisions = [decide(self.tats.get(b.key, 0), now, b.rate, b.cost) for b in request.buckets]
        # (wait, -index, name): the longest wait refuses; on a tie, the first bucket, then the quota
        refusing = [
            (d.retry_after_us, -i, b.name)
            for i, (d, b) in enumerate(zip(decisions, request.buckets, strict=True))
            if not d.allowed
        ]
        counted = self._counted(request.quota, now)
        quota_refuses = request.quota is not None and counted + 1 > request.quota.per_day
        if quota_refuses:
            assert request.quota is not None
            refusing.append((next_midnight_us(now) - now, -len(decisions), request.quota.name))
        if request.mode is Mode.each or (request.mode is Mode.all and not refusing):
            self._charge(request, decisions, counted, now, quota_refuses)
        if not refusing:
            return Verdict(True, None, 0)
        wait, _, name = max(refusing)
        return Verdict(False, name, wait)

    def _counted(self, quota: Quota | None, now: int) -> int:
        day, counted = self.counts.get(quota.key, (-1, 0)) if quota else (-1, 0)
        return counted if day == now // day_us else 0

    def _charge(self, request: Request, decisions: list[Decision], counted: int, now: int, quota_refuses: bool) -> None:
        for bucket, decision in zip(request.buckets, decisions, strict=True):
            if decision.allowed:
                self.tats[bucket.key] = decision.tat_us
        if request.quota is not None and not quota_refuses:
            self.counts[request.quota.key] = (now // day_us, counted + 1)


@settings(max_examples=model_examples, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=batches)
async def test_many_requests_in_one_call_agree_with_the_model_one_by_one(
    redis: Redis, plan: list[tuple[int, list[Request]]]
) -> None:
    await redis.flushdb()
    store, model, now = RateLimitStore(redis), Model(), start_us
    for gap, batch in plan:
        now += gap
        verdicts = await store.check_many(batch, now_us=now)
        assert verdicts == [model.check(request, now) for request in batch]
    for bucket in pool_buckets:
        assert await _tat(redis, bucket.key) == model.tats.get(bucket.key, 0)


async def test_a_request_sees_the_charges_of_the_requests_before_it_in_the_call(redis: Redis) -> None:
    store = RateLimitStore(redis)
    shared = Bucket("vg:{o}:rl:t:shared", Rate(per_s=1, burst=2), "shared")
    other = Bucket("vg:{o}:rl:t:other", Rate(per_s=1, burst=5), "other")
    drain = Request([Bucket(shared.key, shared.rate, shared.name, cost=2)])
    needs_it = Request([other, shared])
    peek = Request([shared], mode=Mode.peek)
    verdicts = await store.check_many([drain, needs_it, peek], now_us=start_us)
    assert verdicts == [
        Verdict(True, None, 0),
        Verdict(False, "shared", us_per_s),  # drained by the first request
        Verdict(False, "shared", us_per_s),
    ]
    assert await _tat(redis, other.key) == 0  # all or nothing: the refused request charged nothing
    assert await _tat(redis, shared.key) == start_us + 2 * us_per_s
