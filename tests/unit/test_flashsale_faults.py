"""The harness's fault schedules (loadtests/flashsale/faults.py): parsed, drawn from a seed (the same seed, the same
schedule), never overlapping on one target, and summarized from the buyers' answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtests.flashsale import faults
from loadtests.flashsale.faults import Answer, Fault, Injected
from loadtests.flashsale.scenario import Scenario, check


def test_a_fault_is_written_kind_at_duration() -> None:
    assert faults.parse("postgres-kill@3:2") == Fault(faults.POSTGRES_KILL, 3.0, 2.0)
    assert faults.parse("gateway-kill@5.5") == Fault(faults.GATEWAY_KILL, 5.5)
    assert str(faults.parse("redis-wipe@1:0.5")) == "redis-wipe@1:0.5"
    assert str(faults.parse("actor-kill@2")) == "actor-kill@2"


@pytest.mark.parametrize("text", ["postgres-kil@3:2", "postgres-kill@x", "postgres-kill@3", "redis-kill@-1:1",
                                  "postgres-stall@1:999", "gateway-kill"])
def test_bad_faults_are_refused(text: str) -> None:
    with pytest.raises(faults.BadFault):
        faults.parse(text)


@given(st.integers(0, 2**32), st.floats(1.0, 120.0))
def test_a_seed_draws_the_same_schedule_and_it_never_overlaps(seed: int, within_s: float) -> None:
    kinds = faults.kinds_for("engine", checkout=True)
    drawn = faults.schedule(seed, within_s, kinds)
    assert drawn == faults.schedule(seed, within_s, kinds)
    assert all(fault.kind in kinds and fault.at_s < within_s for fault in drawn)
    assert [fault.at_s for fault in drawn] == sorted(fault.at_s for fault in drawn)
    assert faults.overlapping(drawn) == []
    assert [faults.parse(str(fault)) for fault in drawn] == list(drawn)  # the report's schedule replays it


def test_other_seeds_draw_other_schedules() -> None:
    kinds = faults.kinds_for("engine", checkout=False)
    assert len({faults.schedule(seed, 60.0, kinds) for seed in range(20)}) > 15


def test_what_a_mode_may_break() -> None:
    assert faults.ACTOR_KILL not in faults.kinds_for("postgres", checkout=True)
    assert not set(faults.kinds_for("engine", checkout=False)) & faults.PAYSIM_KINDS
    assert set(faults.kinds_for("engine", checkout=True)) == set(faults.KINDS)


def test_overlapping_faults_on_one_target_are_named() -> None:
    plan = [faults.parse("postgres-kill@1:3"), faults.parse("postgres-stall@2:1"), faults.parse("redis-kill@2:1")]
    assert faults.overlapping(plan) == ["postgres-kill@1:3 and postgres-stall@2:1 overlap"]


def test_the_scenario_refuses_faults_it_cannot_inject() -> None:
    with pytest.raises(SystemExit, match="no --target"):
        check(Scenario(target="http://x", key="k", database_url="postgres://", redis_url="redis://",
                       fault=("postgres-kill@1:1",)))
    with pytest.raises(SystemExit, match="--checkout only"):
        check(Scenario(fault=("paysim-slow@1:1",)))
    with pytest.raises(SystemExit, match="overlap"):
        check(Scenario(fault=("redis-kill@1:3", "redis-wipe@2:1")))
    plan = Scenario(fault=("gateway-kill@4",), faults_seed=7).fault_plan()
    assert faults.parse("gateway-kill@4") in plan and len(plan) > 1
    assert [fault.at_s for fault in plan] == sorted(fault.at_s for fault in plan)


def test_a_fault_summary_counts_its_cost_and_its_recovery() -> None:
    injected = Injected(faults.parse("postgres-kill@2:1"), started_s=2.0, ended_s=3.0, back_s=3.5)
    answers = [
        Answer("confirm", 1.0, 1.1, 201),
        Answer("hold", 2.1, 2.2, 201),  # holds need no Postgres: not its cost
        Answer("confirm", 2.1, 2.3, 503), Answer("confirm", 2.5, 2.6, 503), Answer("confirm", 3.0, 3.2, 0),
        Answer("confirm", 3.4, 3.6, 201),  # due before Postgres was back: not its recovery
        Answer("confirm", 3.6, 4.0, 201),  # the first 2xx due after: recovered 0.5 s after the return
        Answer("confirm", 4.5, 4.6, 201),
    ]
    row = faults.summary(injected, answers, after_window_s=2.0)
    assert row["recovery_s"] == 0.5 and row["errors_503"] == 2 and row["no_answer"] == 1
    assert row["ok_per_s_during"] == 0.0 and row["ok_per_s_after"] == 1.0  # 4.0 and 4.6 within 2 s of 4.0
    assert row["failure"] is None and row["back_s"] == 3.5


def test_a_fault_never_injected_has_no_figures() -> None:
    row = faults.summary(Injected(faults.parse("redis-kill@50:1")), [Answer("hold", 1.0, 1.1, 201)], 2.0)
    assert row["started_s"] is None and row["recovery_s"] is None and row["errors_503"] == 0


def test_a_soak_row_sums_up_a_seeds_run() -> None:
    from loadtests.soak import soak_row

    report = {"faults_schedule": "redis-kill@1:1 gateway-kill@4", "audit_passed": False, "oversold": 0,
              "lost_acknowledged": 1, "audit": {"faults_failed": 0, "server_errors": 2},
              "faults": [{"recovery_s": 0.4, "errors_503": 3}, {"recovery_s": None, "errors_503": 1}],
              "gateway_rss_mb": {"max": 310.5}, "holds_per_s": 100.0}
    row = soak_row(7, report)
    assert row["seed"] == 7 and row["faults"] == 2 and row["audit_passed"] is False
    assert row["errors_503"] == 4 and row["recovery_s_max"] == 0.4 and row["server_errors"] == 2
    assert row["gateway_rss_mb_max"] == 310.5 and row["lost_acknowledged"] == 1


def test_a_failed_seed_replays_with_the_soaks_own_options() -> None:
    from loadtests.soak import _without_soak_options

    argv = ["--buyers", "500", "--seeds", "20", "--first-seed=3", "--report", "x.json", "--checkout"]
    assert _without_soak_options(argv) == ["--buyers", "500", "--checkout"]


def test_a_gateway_worker_killed_every_n_seconds_is_a_list_of_faults() -> None:
    plan = Scenario(arrival_seconds=10.0, kill_gateway_every=3.0).fault_plan()
    assert [str(fault) for fault in plan] == ["gateway-kill@3", "gateway-kill@6", "gateway-kill@9"]
