"""The flash-sale run report: its figures from synthetic samples, its JSON, its table and its plot."""

from __future__ import annotations

import datetime as dt
import io
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from loadtests.flashsale.plot import plot_comparison, plot_report
from loadtests.flashsale.report import RunFacts, build_report, print_comparison, print_table, write_report
from loadtests.flashsale.samples import AVAILABILITY, CONFIRM, HOLD, NO_ANSWER, RELEASE, Sample

REQUIRED_FIELDS = (
    "mode", "buyers", "seats", "ga_capacity", "arrival_seconds", "holds_attempted", "holds_ok", "holds_conflict",
    "holds_error", "confirms_ok", "confirms_error", "sold_seats_pg", "sold_ga_pg", "oversold", "lost_acknowledged",
    "redis_pg_mismatch", "hold_latency_ms", "confirm_latency_ms", "holds_per_s", "confirms_per_s", "sellout_s",
    "actor_kills", "generator_ceiling_rps", "started_at", "git_commit", "machine",
)
CLEAN_AUDIT: dict[str, Any] = {
    "sold_seats_pg": 2, "sold_ga_pg": 3, "oversold": 0, "lost_acknowledged": 0, "redis_pg_mismatch": 0,
    "orphaned_holds": 0, "details": {"checked_sales": 4}, "sold_unconfirmed": 0, "store_pg_mismatch": 0,
    "endpoint_pg_mismatch": 0, "unreadable_answers": 0, "kills_failed": 0,
}


def facts(samples: list[Sample], **changes: Any) -> RunFacts:
    base = RunFacts(
        mode="engine", buyers=10, seats=2, ga_capacity=3, arrival_seconds=5.0, options={"hold_ttl_s": 600},
        samples=samples, kills_s=[], audit=dict(CLEAN_AUDIT), generator_ceiling_rps=1000.0,
        started_at=dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC), git_commit="abc1234", machine={"cpus": 2},
    )
    return replace(base, **changes)


def hold(due_s: float, done_s: float, status: int = 201, units: int = 1) -> Sample:
    return Sample(HOLD, due_s, done_s, status, units)


def confirm(due_s: float, done_s: float, status: int = 201, units: int = 1) -> Sample:
    return Sample(CONFIRM, due_s, done_s, status, units)


def mixed_samples() -> list[Sample]:
    return [
        hold(0.0, 0.5, 201), hold(1.0, 1.5, 201), hold(2.0, 2.5, 409), hold(3.0, 3.5, 500),
        hold(4.0, 5.0, NO_ANSWER), hold(4.5, 4.75, 409),
        confirm(1.0, 2.0, 201, 2), confirm(2.0, 3.0, 201, 1), confirm(3.0, 4.0, 409), confirm(3.5, 4.0, NO_ANSWER),
        Sample(RELEASE, 2.0, 2.1, 204, 1), Sample(AVAILABILITY, 2.0, 2.05, 200, 0),
    ]


def test_counts_are_exact() -> None:
    report = build_report(facts(mixed_samples()))
    assert report["holds_attempted"] == 6
    assert (report["holds_ok"], report["holds_conflict"], report["holds_error"]) == (2, 2, 2)
    assert report["confirms_attempted"] == 4
    assert (report["confirms_ok"], report["confirms_error"]) == (2, 2)
    assert report["statuses"]["hold"] == {"0": 1, "201": 2, "409": 2, "500": 1}
    assert report["statuses"]["release"] == {"204": 1}


def test_rates_use_first_due_to_last_done_windows() -> None:
    report = build_report(facts(mixed_samples()))
    # holds: first due 0.0, last decided (409) done 4.75; the later unanswered one does not stretch the window
    assert report["hold_window_s"] == 4.75
    assert report["holds_per_s"] == pytest.approx(4 / 4.75, abs=1e-3)
    assert report["holds_ok_per_s"] == pytest.approx(2 / 4.75, abs=1e-3)
    # confirms: first due 1.0, last 201 done 3.0
    assert report["confirm_window_s"] == 2.0
    assert report["confirms_per_s"] == pytest.approx(2 / 2.0, abs=1e-3)


def test_rates_are_null_without_requests() -> None:
    report = build_report(facts([Sample(AVAILABILITY, 0.0, 0.1, 200, 0)]))
    assert report["holds_per_s"] is None
    assert report["holds_ok_per_s"] is None
    assert report["confirms_per_s"] is None
    assert report["hold_latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}
    assert report["confirm_latency_ms"] == {"p50": None, "p95": None, "p99": None, "max": None}


def test_latency_percentiles_are_nearest_rank_over_all_answers() -> None:
    # latencies 1..100 ms, shuffled, every tenth an error: errors count too
    latencies_ms = list(range(1, 101))
    random.Random(7).shuffle(latencies_ms)
    samples = [
        hold(i * 0.01, i * 0.01 + ms / 1000.0, NO_ANSWER if i % 10 == 0 else 201) for i, ms in enumerate(latencies_ms)
    ]
    report = build_report(facts(samples))
    assert report["hold_latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def test_latency_of_one_request_is_that_request() -> None:
    report = build_report(facts([confirm(1.0, 1.25)]))
    assert report["confirm_latency_ms"] == {"p50": 250.0, "p95": 250.0, "p99": 250.0, "max": 250.0}


def test_sellout_is_the_confirm_that_reaches_capacity() -> None:
    # capacity 2 seats + 3 GA = 5; in done_s order the confirmed units run 2, 3 (409 skipped), 5
    samples = [
        confirm(0.0, 3.0, 201, 2), confirm(0.0, 1.0, 201, 2), confirm(0.0, 1.5, 409, 0), confirm(0.0, 2.0, 201, 1),
    ]
    report = build_report(facts(samples))
    assert report["sellout_s"] == 3.0
    assert report["sold_out"] is True


def test_sellout_is_null_when_not_sold_out() -> None:
    report = build_report(facts([confirm(0.0, 1.0, 201, 2), confirm(0.0, 2.0, 201, 2)],
                                audit={**CLEAN_AUDIT, "sold_ga_pg": 2}))
    assert report["sellout_s"] is None
    assert report["sold_out"] is False


def test_kill_recovery_counts_only_requests_due_after_the_kill() -> None:
    samples = [
        hold(4.9, 5.2, 201),  # in flight across the kill: says nothing about recovery
        hold(5.1, 5.9, NO_ANSWER),
        hold(5.2, 6.5, 409),  # a conflict is not a 2xx
        confirm(5.3, 6.25, 201),  # the first 2xx due after the kill
        hold(5.4, 7.0, 201),
    ]
    report = build_report(facts(samples, kills_s=[5.0]))
    assert report["actor_kills"] == 1
    assert report["kill_recovery_s"] == [1.25]
    assert report["kill_recovery_s_max"] == 1.25
    assert report["kills_unrecovered"] == 0


def test_a_kill_never_recovered_is_null_and_voids_the_max() -> None:
    samples = [hold(1.0, 1.1, 201), hold(2.5, 3.0, 201), hold(9.0, 9.5, NO_ANSWER)]
    report = build_report(facts(samples, kills_s=[2.0, 8.0]))
    assert report["actor_kills"] == 2
    assert report["kill_recovery_s"] == [1.0, None]
    assert report["kill_recovery_s_max"] is None
    assert report["kills_unrecovered"] == 1


def test_no_kills() -> None:
    report = build_report(facts(mixed_samples()))
    assert (report["actor_kills"], report["kill_recovery_s"], report["kill_recovery_s_max"]) == (0, [], None)


def burst(requests_in_peak_second: int) -> list[Sample]:
    # 10 requests due in second 0, the burst in second 1, of every kind
    kinds = [HOLD, CONFIRM, RELEASE, AVAILABILITY]
    calm = [Sample(HOLD, i / 10, i / 10 + 0.01, 201, 1) for i in range(10)]
    peak = [Sample(kinds[i % 4], 1 + i / requests_in_peak_second, 1.5, 201, 1) for i in range(requests_in_peak_second)]
    return calm + peak


def test_generator_near_ceiling_at_the_peak_second() -> None:
    report = build_report(facts(burst(80), generator_ceiling_rps=100.0))
    assert report["offered_rps_peak"] == 80.0
    assert report["generator_near_ceiling"] is True
    assert "80%" in report["generator_note"]
    assert "limited" in report["generator_note"]


def test_generator_below_ceiling() -> None:
    report = build_report(facts(burst(79), generator_ceiling_rps=100.0, buyers_dropped=3))
    assert report["generator_near_ceiling"] is False
    assert "limited" not in report["generator_note"]
    assert "3 buyers dropped" in report["generator_note"]


def test_generator_ceiling_not_measured() -> None:
    report = build_report(facts(burst(80), generator_ceiling_rps=0.0))
    assert report["generator_near_ceiling"] is False
    assert "not measured" in report["generator_note"]


def test_audit_passes_when_clean() -> None:
    # the postgres baseline has no Redis: redis_pg_mismatch is null there, store_pg_mismatch is what counts
    report = build_report(facts(mixed_samples(), audit={**CLEAN_AUDIT, "redis_pg_mismatch": None}))
    assert report["audit_passed"] is True
    assert report["audit"]["details"] == {"checked_sales": 4}


@pytest.mark.parametrize(
    "flaw",
    [{"oversold": 1}, {"lost_acknowledged": 2}, {"store_pg_mismatch": 1}, {"orphaned_holds": 3}, {"oversold": None},
     {"endpoint_pg_mismatch": 2}, {"sold_unconfirmed": 1}, {"unreadable_answers": 1}, {"kills_failed": 1},
     {"store_pg_mismatch": None}, {"orphaned_holds": None}],
)
def test_audit_fails(flaw: dict[str, Any]) -> None:
    report = build_report(facts(mixed_samples(), audit={**CLEAN_AUDIT, **flaw}))
    assert report["audit_passed"] is False


def test_oversold_is_reported_and_fails() -> None:
    report = build_report(facts(mixed_samples(), audit={**CLEAN_AUDIT, "oversold": 1, "sold_seats_pg": 3}))
    assert report["oversold"] == 1
    assert report["audit_passed"] is False
    assert report["sold_seats_pg"] == 3


def test_timeline_buckets_by_answer_time() -> None:
    report = build_report(facts(mixed_samples()))
    timeline = report["timeline"]
    assert timeline["bucket_s"] == 1.0
    assert timeline["t_s"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert timeline["holds_decided"] == [1, 1, 1, 0, 1, 0]
    assert timeline["holds_ok"] == [1, 1, 0, 0, 0, 0]
    assert timeline["confirms_ok"] == [0, 0, 1, 1, 0, 0]
    # errors: the 500 hold (3.5) and NO_ANSWER hold (5.0); the 409 and NO_ANSWER confirms (4.0)
    assert timeline["errors"] == [0, 0, 0, 1, 2, 1]
    assert timeline["hold_p50_ms"] == [500.0, 500.0, 500.0, 500.0, 250.0, 1000.0]
    assert all(len(column) == 6 for column in timeline.values() if isinstance(column, list))


def test_every_required_field_is_present_and_json_round_trips(tmp_path: Path) -> None:
    report = build_report(facts(mixed_samples(), kills_s=[2.2]))
    missing = [name for name in REQUIRED_FIELDS if name not in report]
    assert missing == []
    for latency in ("hold_latency_ms", "confirm_latency_ms"):
        assert set(report[latency]) == {"p50", "p95", "p99", "max"}
    assert report["started_at"] == "2026-05-01T12:00:00+00:00"
    path = tmp_path / "report.json"
    write_report(report, path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert json.loads(path.read_text())["mode"] == "engine"


def test_empty_run_still_reports() -> None:
    report = build_report(facts([], audit={}))
    assert report["holds_attempted"] == 0
    assert report["audit_passed"] is False  # an audit that says nothing proves nothing
    assert report["timeline"]["t_s"] == []
    json.dumps(report)


def realistic_run(mode: str, holds_per_s: float, kills_s: list[float]) -> RunFacts:
    """A few thousand buyers, a sell-out and a kill stall, for looking at the plot."""
    rng = random.Random(mode)
    samples: list[Sample] = []
    seats, ga = 1500, 1500
    sold = 0
    for i in range(int(holds_per_s * 12)):
        due_s = i / holds_per_s
        stalled = any(kill <= due_s < kill + 1.5 for kill in kills_s)
        latency_s = rng.lognormvariate(-4.0, 0.6) + (1.5 if stalled else 0.0)
        status = 201 if sold < seats + ga else 409
        samples.append(hold(due_s, due_s + latency_s, status))
        if status == 201:
            sold += 1
            samples.append(confirm(due_s + latency_s + 0.5, due_s + latency_s + 0.5 + rng.lognormvariate(-3.5, 0.5)))
    return facts(samples, mode=mode, buyers=len(samples), seats=seats, ga_capacity=ga, arrival_seconds=10.0,
                 kills_s=kills_s, audit={**CLEAN_AUDIT, "sold_seats_pg": seats, "sold_ga_pg": ga})


def test_plot_writes_a_png(tmp_path: Path) -> None:
    report = build_report(realistic_run("engine", 600.0, [3.0]))
    path = tmp_path / "run.png"
    plot_report(report, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert path.stat().st_size > 10_000


def test_plot_of_an_empty_run_writes_a_png(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    plot_report(build_report(facts([], audit={})), path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_comparison_plot_writes_a_png(tmp_path: Path) -> None:
    reports = {mode: build_report(realistic_run(mode, rate, [4.0]))
               for mode, rate in (("engine", 600.0), ("postgres", 250.0))}
    path = tmp_path / "comparison.png"
    plot_comparison(reports, path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert path.stat().st_size > 10_000


def test_tables_print() -> None:
    out = io.StringIO()
    console = Console(file=out, width=140)
    clean = build_report(facts(mixed_samples(), kills_s=[2.2, 20.0]))
    failed = build_report(facts([], mode="postgres", audit={**CLEAN_AUDIT, "oversold": 2}))
    print_table(clean, console=console)
    print_table(failed, console=console)
    print_comparison({"engine": clean, "postgres": failed}, {"engine/postgres holds_per_s": 2.5}, console=console)
    text = out.getvalue()
    assert "PASSED" in text
    assert "FAILED" in text
    assert "never" in text
    assert "engine/postgres holds_per_s" in text


def test_write_report_keeps_columns_on_one_line_and_writes_nan_as_null(tmp_path: Path) -> None:
    report = build_report(facts(mixed_samples(), generator_ceiling_rps=float("nan")))
    path = tmp_path / "report.json"
    write_report(report, path)
    text = path.read_text()
    assert '"t_s": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]' in text
    assert json.loads(text)["generator_ceiling_rps"] is None


def test_held_out_is_when_the_last_unit_was_held_and_conflicts_before_it_are_counted() -> None:
    samples = [hold(0.0, 0.5, 201, 2), hold(0.6, 0.7, 409), hold(0.8, 1.0, 201, 3), hold(1.0, 1.2, 409),
               confirm(1.0, 2.0, 201, 5)]
    report = build_report(facts(samples))  # capacity 2 seats + 3 GA
    assert report["held_out_s"] == 1.0 and report["holds_conflict_before_held_out"] == 1
    assert report["sellout_s"] == 2.0
    never = build_report(facts([hold(0.0, 0.5, 201, 1), hold(0.6, 0.7, 409)]))
    assert never["held_out_s"] is None and never["holds_conflict_before_held_out"] is None
