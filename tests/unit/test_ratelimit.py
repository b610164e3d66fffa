"""The pure GCRA model (engine/ratelimit.py): its guarantees, the default policy, and the settings' overrides."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ratelimit import (
    DEFAULT_POLICY,
    Policy,
    Rate,
    RouteClass,
    Subject,
    decide,
    next_midnight_us,
    policy_with,
    us_per_s,
)
from voelgoed.settings import Settings, rate_limits_from

rates = st.builds(
    Rate,
    per_s=st.one_of(st.integers(1, 100_000), st.floats(0.01, 100_000.0, allow_nan=False)),
    burst=st.integers(1, 50),
)
# (microseconds since the previous request, cost): bursts (0 gaps), waits far beyond the interval, and between
steps = st.lists(st.tuples(st.integers(0, 3 * us_per_s), st.integers(1, 5)), min_size=1, max_size=200)


def _run(rate: Rate, plan: list[tuple[int, int]], start_us: int = 10**15) -> list[tuple[int, int]]:
    """(time, cost) of every admitted request."""
    tat, now, admitted = 0, start_us, []
    for gap, cost in plan:
        now += gap
        decision = decide(tat, now, rate, cost)
        if decision.allowed:
            admitted.append((now, cost))
        else:
            assert decision.tat_us == tat  # a refusal changes nothing
        tat = decision.tat_us
    return admitted


@given(rates, steps)
def test_never_admits_more_than_burst_plus_rate_times_window(rate: Rate, plan: list[tuple[int, int]]) -> None:
    admitted = _run(rate, plan)
    interval = rate.interval_us
    for i in range(len(admitted)):
        units = 0
        for j in range(i, len(admitted)):
            units += admitted[j][1]
            window_us = admitted[j][0] - admitted[i][0]
            # units <= burst + window / interval, in exact integers
            assert units * interval <= rate.burst * interval + window_us


@given(rates, steps, st.integers(1, 5))
def test_retry_after_is_exact(rate: Rate, plan: list[tuple[int, int]], cost: int) -> None:
    tat, now = 0, 10**15
    for gap, step_cost in plan:
        now += gap
        tat = decide(tat, now, rate, step_cost).tat_us
    if cost > rate.burst:
        cost = rate.burst  # a cost above the burst is never admitted, so it has no retry time
    refused = decide(tat, now, rate, cost)
    if refused.allowed:
        return
    wait = refused.retry_after_us
    assert wait > 0
    assert decide(tat, now + wait, rate, cost).allowed
    assert not decide(tat, now + wait - 1, rate, cost).allowed


@given(rates)
def test_a_rested_bucket_admits_its_burst_at_once_and_then_one_per_interval(rate: Rate) -> None:
    tat, now = 0, 10**15
    for _ in range(rate.burst):
        decision = decide(tat, now, rate)
        assert decision.allowed
        tat = decision.tat_us
    refused = decide(tat, now, rate)
    assert not refused.allowed
    assert refused.retry_after_us == rate.interval_us
    assert decide(tat, now + rate.interval_us, rate).allowed


@given(rates, st.integers(1, 500))
def test_requests_at_the_steady_rate_are_always_admitted(rate: Rate, count: int) -> None:
    admitted = _run(rate, [(rate.interval_us, 1)] * count)
    assert len(admitted) == count


@given(st.integers(0, 4 * 10**15))
def test_the_quota_day_ends_at_the_next_utc_midnight(now_us: int) -> None:
    midnight = next_midnight_us(now_us)
    assert now_us < midnight <= now_us + 86_400 * us_per_s
    assert midnight % (86_400 * us_per_s) == 0


def test_the_default_policy_lets_a_flash_sale_from_one_key_and_one_address_through() -> None:
    """The load-test harness sends every buyer with one key from one address. 2,000 holds/s for 60 s, after an
    opening burst of 20,000 at once, all pass the key's and the address's hold buckets (the pure model: this is
    arithmetic, not timing)."""
    for subject in (Subject.key, Subject.ip):
        rate = DEFAULT_POLICY.rate(RouteClass.holds, subject)
        assert rate is not None
        plan = [(0, 1)] * 20_000 + [(us_per_s // 2_000, 1)] * (2_000 * 60)
        assert len(_run(rate, plan)) == len(plan)


def test_the_default_buyer_limit_lets_a_buyers_retries_through() -> None:
    """A harness buyer holds up to three times (two retries after 409 or 503), with no pause between them."""
    rate = DEFAULT_POLICY.rate(RouteClass.holds, Subject.buyer)
    assert rate is not None
    assert len(_run(rate, [(0, 1)] * 3)) == 3
    assert len(_run(rate, [(0, 1)] * (rate.burst + 1))) == rate.burst  # and a hammering buyer is stopped


def test_overrides_replace_turn_off_and_set_the_quota_and_the_in_flight_cap() -> None:
    policy = policy_with(
        {"reads.key": {"per_s": 1, "burst": 2}, "holds.ip": None, "daily_quota": 7, "holds_in_flight": 2}
    )
    assert policy.rate(RouteClass.reads, Subject.key) == Rate(1, 2)
    assert policy.rate(RouteClass.holds, Subject.ip) is None
    assert policy.rate(RouteClass.writes, Subject.key) == DEFAULT_POLICY.rate(RouteClass.writes, Subject.key)
    assert (policy.daily_quota_per_key, policy.holds_in_flight_per_buyer) == (7, 2)
    assert policy_with({"daily_quota": None}).daily_quota_per_key is None


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"reads.keys": {"per_s": 1, "burst": 1}}, "'reads.keys' is not a limit"),
        ({"reads.key": {"per_s": 0, "burst": 1}}, "reads.key: per_s must be a positive number"),
        ({"reads.key": {"per_s": True, "burst": 1}}, "reads.key: per_s must be a positive number"),
        ({"reads.key": {"per_s": 1e-300, "burst": 1}}, "reads.key: per_s must be 1.15741e-05..1e"),
        ({"reads.key": {"per_s": 1e8, "burst": 1}}, "reads.key: per_s must be 1.15741e-05..1e"),
        ({"reads.key": {"per_s": 0.001, "burst": 100_000}}, "reads.key: burst / per_s"),
        ({"reads.key": {"per_s": 1, "burst": 0}}, "reads.key: burst must be a whole number"),
        ({"reads.key": {"per_s": 1, "burst": 1.5}}, "reads.key: burst must be a whole number"),
        ({"reads.key": {"per_s": 1}}, "reads.key: expected"),
        ({"reads.key": [1, 2]}, "reads.key: expected"),
        ({"daily_quota": 0}, "daily_quota: a whole number"),
        ({"holds_in_flight": "4"}, "holds_in_flight: a whole number"),
    ],
)
def test_bad_overrides_are_refused_by_name(overrides: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace(".", r"\.")):
        policy_with(overrides)


def test_settings_read_overrides_from_the_environment_and_refuse_bad_ones_at_start_up() -> None:
    env = {"VOELGOED_DATABASE_URL": "postgresql://x/y", "VOELGOED_REDIS_URL": "redis://x"}
    assert Settings.from_env(env).rate_limits == DEFAULT_POLICY
    tight = json.dumps({"holds.buyer": {"per_s": 2, "burst": 4}})
    loaded = Settings.from_env(env | {"VOELGOED_RATE_LIMITS": tight}).rate_limits
    assert loaded.rate(RouteClass.holds, Subject.buyer) == Rate(2, 4)
    with pytest.raises(RuntimeError, match="VOELGOED_RATE_LIMITS"):
        Settings.from_env(env | {"VOELGOED_RATE_LIMITS": "{not json"})
    with pytest.raises(RuntimeError, match="VOELGOED_RATE_LIMITS: 'bogus' is not a limit"):
        rate_limits_from('{"bogus": 1}')
    with pytest.raises(RuntimeError, match=r"VOELGOED_RATE_LIMITS: holds\.buyer: per_s must be"):
        rate_limits_from('{"holds.buyer": {"per_s": 1e-300, "burst": 1}}')  # else every check fails open
    with pytest.raises(RuntimeError, match="VOELGOED_RATE_LIMITS: rate limits must be a JSON object"):
        rate_limits_from("[1]")
    assert isinstance(rate_limits_from(""), Policy)
