"""VOELGOED_OUTBOX_LEASE_S: the outbox drain's lease, 60 s unless set (the crash tests shorten it), checked at
start-up, and the drain policy made for it bounds its handlers inside the lease."""

from __future__ import annotations

import pytest

from services.outbox import DrainPolicy
from voelgoed.settings import Settings

ENV = {"VOELGOED_DATABASE_URL": "postgresql://x/y", "VOELGOED_REDIS_URL": "redis://x"}


def test_the_lease_is_60_s_unless_set_and_a_bad_one_stops_the_start() -> None:
    assert Settings.from_env(ENV).outbox_lease_s == 60.0
    assert Settings.from_env(ENV | {"VOELGOED_OUTBOX_LEASE_S": ""}).outbox_lease_s == 60.0
    assert Settings.from_env(ENV | {"VOELGOED_OUTBOX_LEASE_S": "6"}).outbox_lease_s == 6.0
    for bad in ("six", "1", "0", "-5", "nan", "inf", "3601"):
        with pytest.raises(RuntimeError, match="VOELGOED_OUTBOX_LEASE_S"):
            Settings.from_env(ENV | {"VOELGOED_OUTBOX_LEASE_S": bad})


def test_a_policy_for_a_lease_bounds_its_handlers_inside_it() -> None:
    assert DrainPolicy.for_lease(60.0) == DrainPolicy()  # the default lease: the default policy
    short = DrainPolicy.for_lease(6.0)
    assert (short.lease_s, short.handler_s_max) == (6.0, 5.0)
    assert DrainPolicy.for_lease(2.0).handler_s_max == 1.0
