"""The flash-sale run report: what one run did, in the figures docs/performance.md quotes, and whether it was correct.

`build_report(RunFacts) -> dict` is pure (no I/O, no clock); `write_report` writes it as JSON, `print_table` and
`print_comparison` show it with rich.  Times are seconds since the sale's start and a request's latency runs from
when it was *due*, not sent (open loop, see samples.py).

Definitions
-----------
Counts
- holds_attempted: hold requests sent (every hold sample).  holds_ok: holds answered 201.  holds_conflict: holds
  answered 409 (seat taken, GA sold out).  holds_error: every other hold answer, NO_ANSWER (0) included, so
  holds_attempted = holds_ok + holds_conflict + holds_error.
- confirms_attempted: confirm requests sent.  confirms_ok: confirms answered 201.  confirms_error: every other
  confirm answer, NO_ANSWER included.
- statuses: per request kind, how many answers had each status (keys are strings, "0" is NO_ANSWER).

Rates (per second; null when there is no such request or the window is not positive)
- hold window: from the first hold's due_s to the done_s of the last hold answered 201 or 409 (a late error after
  the last decision does not stretch it).
- holds_per_s = (holds_ok + holds_conflict) / hold window: the rate at which the platform *decided* holds.
  holds_ok_per_s = holds_ok / hold window.
- confirms_per_s = confirms_ok / confirm window, the confirm window running from the first confirm's due_s to the
  done_s of the last confirm answered 201.

Latency
- hold_latency_ms, confirm_latency_ms: {p50, p95, p99, max} over all hold (resp. confirm) requests, errors and
  NO_ANSWER included, in ms from due_s to done_s, rounded to the microsecond.  Percentiles are nearest-rank: pXX
  is the smallest observed latency such that at least XX% of the requests took at most that long
  (numpy.percentile method="inverted_cdf", Hyndman & Fan definition 1).  Nothing is interpolated, so every figure
  is a latency some request really had.  All four are null when there is no such request.

Sell-out
- sellout_s: the done_s of the 201 confirm at which the confirmed units (Sample.units of 201 confirms, summed in
  done_s order) reach seats + ga_capacity; null when they never do.
- sold_out: sold_seats_pg + sold_ga_pg == seats + ga_capacity (what Postgres holds, per the audit).
- held_out_s: the done_s of the 201 hold at which the held units (Sample.units of 201 holds, summed in done_s
  order) reach seats + ga_capacity; null when they never do. When every hold is confirmed (--confirm-ratio 1, the
  headline) no unit is held twice, so this is when the last unit was held.
- holds_conflict_before_held_out: hold 409s answered before held_out_s (null when it is null): buyers refused
  while the sale still had something left (seat pickers colliding; best-available buyers only on a stale map).
  Answers of two generator processes and two gateway workers arrive in no global order, and a hold the platform
  applied but whose answer timed out never counts as held, so a 409 decided after the last seat was held can be
  answered before held_out_s.
- best_refused_seats_left (``--buyers-pick best``, added by run.py): best-available 409s whose inventory count
  (``details.available``, over the zone and its fallbacks, here every zone) was above 0: refused while seats were
  left, by the inventory's own account, because fewer were left than the buyer asked. A 409 counting 0 was
  decided after the sell-out, whenever it arrived.

Actor kills
- actor_kills = len(kills_s); kills_s: the kill times.
- kill_recovery_s: per kill, the seconds from the kill to the first 2xx hold or confirm answer (done_s) among the
  requests due after the kill; null when there is none.  After a sell-out no hold can succeed, so a late kill may
  show null for want of a 2xx rather than for want of recovery.
- kill_recovery_s_max: the largest recovery; null when there were no kills or any kill never recovered.
  kills_unrecovered: how many kills have a null recovery.

Faults (``--fault``/``--faults``, added by run.py; docs/loadtests.md "Faults")
- faults_seed, faults_schedule (as run, in --fault syntax: replays it), faults: per fault its figures
  (loadtests/flashsale/faults.py ``summary``: started_s, ended_s, back_s, recovery_s, errors_503, no_answer,
  ok_per_s_during, ok_per_s_after, failure, notes).
- faults_failed (not injected, or its target never back), faults_not_reached (due before the last answer but
  never injected: faults run one after another, so one that waited long for its target delays the next),
  server_errors (the platform's 5xx other than 503),
  unavailable_without_retry_after (503s without Retry-After): each must be 0 (FAULT_ZERO_COUNTS, when the audit
  says faults_mode).
- gateway_rss_mb {start, max, end}: the gateway's processes' resident memory through the sale
  (loadtests/flashsale/memory.py), for a platform the harness started; null for --target.

Generator
- offered_rps_peak: the most requests (all kinds) due within one bucket_s bucket of due_s, per second: the peak
  rate the generator was asked to send.  offered_rps_mean: all requests / the span of their due_s.
- generator_near_ceiling: offered_rps_peak >= near_ceiling_fraction (0.8) x generator_ceiling_rps, the rate the
  generator alone managed against a trivial endpoint.  Near it the generator's own lag may be what the run
  measured; generator_note says so in words.  False when the ceiling was not measured (<= 0), and the note says that.
- buyers_dropped: arrivals the generator refused because too many journeys were in flight.

Audit
- sold_seats_pg, sold_ga_pg, oversold, lost_acknowledged, redis_pg_mismatch, orphaned_holds: copied from the audit
  (null when the audit lacks one); audit: the whole audit dict.
- audit_passed: every count in AUDIT_ZERO_COUNTS is present and 0: oversold, lost_acknowledged, sold_unconfirmed,
  store_pg_mismatch (redis_pg_mismatch is the same figure where the store is Redis), endpoint_pg_mismatch,
  orphaned_holds, unreadable_answers, kills_failed.  A missing or null count fails it: a comparison that could
  not be made proves nothing.

Checkout (``--checkout``; present only then)
- checkouts_attempted, checkouts_ok: POST /v1/holds/{id}/checkout requests sent, answered 201;
  checkout_latency_ms as hold_latency_ms. cards_attempted, card_latency_ms: the card posted to the order's
  confirm_url at the simulator (a retry after 503 or no answer counts again).
- paid_orders, paid_per_s, card_to_tickets_ms {p50, p95, p99, max}: copied from the audit's checkout part
  (loadtests/flashsale/checkout_audit.py: orders paid with their tickets in Postgres; their rate from the first
  card to the last tickets_issued_at; each one's time from its card to its tickets_issued_at, over the orders
  paid with the always-succeeding card: the slow card's 5 s are the simulator's, in the audit's
  slow_card_to_tickets_ms).
- checkout_mismatch: the checkout audit's sum of counts that must be 0; audit_passed requires it when the audit
  says checkout_mode. run.py adds platform_cpu_ms_per_paid_order (all the platform's CPU over the sale / paid
  orders) and, for every run, platform_idle_cores (the platform's CPU over 2 s with no buyer, just before the
  sale, in cores: what it spends whatever the load, Ray's own processes included), and
  platform_cpu_s_by_role (the same CPU seconds by process role, largest first: gateway, each Ray actor class as
  ray::<class>, postgres, redis, paysim, Ray's daemons; loadtests/flashsale/cpu.py role_of).

Timeline (columns, for the plot)
- One entry per bucket_s bucket of done_s, from 0 (or the earliest answer, if earlier) to the last answer; empty
  buckets are kept so that a stall shows as zeros.  t_s: the bucket's start.  holds_decided: holds answered 201 or
  409 in the bucket; holds_ok; confirms_ok; errors: hold answers other than 201/409 plus confirm answers other than
  201; hold_p50_ms, hold_p99_ms: nearest-rank over the holds answered in the bucket, null when none.  With bucket_s
  = 1 the counts are per-second rates.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from loadtests.flashsale.samples import CHECKOUT, CONFIRM, HOLD, PAY, Sample

MODES = ("engine", "postgres", "redis-lua")

bucket_s = 1.0  # the timeline's and the offered-rate's bucket width
near_ceiling_fraction = 0.8  # offered peak at or above this share of the generator's ceiling: the generator limits
percentile_method: Final = "inverted_cdf"  # nearest rank: every percentile is a latency some request really had
latency_percentiles = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
latency_decimals = 3  # ms to the microsecond: finer is float noise from subtracting two clock readings
rate_decimals = 3
seconds_decimals = 3  # times since sale start to the millisecond
created_status = 201
conflict_status = 409

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, kw_only=True)
class RunFacts:
    """Everything a report is built from; the driver gathers it, build_report reads nothing else."""

    mode: str  # one of MODES
    buyers: int
    seats: int
    ga_capacity: int
    arrival_seconds: float  # buyers arrive over this many seconds
    options: dict[str, Any]  # the scenario's other options, reported as given
    samples: list[Sample]
    kills_s: list[float]  # when the event's inventory actor was killed, seconds since sale start
    audit: dict[str, Any]  # from the audit module
    generator_ceiling_rps: float  # what the generator alone managed; <= 0 when not measured
    started_at: dt.datetime  # UTC
    git_commit: str
    machine: dict[str, Any]
    buyers_dropped: int = 0


@dataclass(frozen=True)
class _Requests:
    """One kind's samples as columns, so the figures below are array operations even for millions of requests."""

    due_s: FloatArray
    done_s: FloatArray
    status: npt.NDArray[np.int64]
    units: npt.NDArray[np.int64]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> _Requests:
        return cls(
            due_s=np.array([s.due_s for s in samples], dtype=np.float64),
            done_s=np.array([s.done_s for s in samples], dtype=np.float64),
            status=np.array([s.status for s in samples], dtype=np.int64),
            units=np.array([s.units for s in samples], dtype=np.int64),
        )

    def __len__(self) -> int:
        return int(self.status.size)

    @property
    def latency_ms(self) -> FloatArray:
        return (self.done_s - self.due_s) * 1000.0

    def window_s(self, decided: tuple[int, ...]) -> float | None:
        """First due to the last answer with a ``decided`` status; None when there is none. Ending at the last
        decision, not the last answer, keeps one late timeout from stretching the window of a finished sale."""
        ended = self.done_s[np.isin(self.status, decided)]
        if not ended.size:
            return None
        return float(ended.max() - self.due_s.min())



def build_report(run: RunFacts) -> dict[str, Any]:
    by_kind: dict[str, list[Sample]] = {}
    for sample in run.samples:
        by_kind.setdefault(sample.kind, []).append(sample)
    holds = _Requests.of(by_kind.get(HOLD, []))
    confirms = _Requests.of(by_kind.get(CONFIRM, []))

    hold_ok = holds.status == created_status
    confirm_ok = confirms.status == created_status
    holds_ok = int(np.count_nonzero(hold_ok))
    holds_conflict = int(np.count_nonzero(holds.status == conflict_status))
    confirms_ok = int(np.count_nonzero(confirm_ok))
    hold_window_s = holds.window_s((201, 409))
    confirm_window_s = confirms.window_s((201,))

    audit = run.audit
    sold_seats_pg = audit.get("sold_seats_pg")
    sold_ga_pg = audit.get("sold_ga_pg")
    capacity = run.seats + run.ga_capacity
    sold_out = sold_seats_pg is not None and sold_ga_pg is not None and sold_seats_pg + sold_ga_pg == capacity

    held_out_s = _sellout_s(holds, capacity)
    recoveries = [_kill_recovery_s(kill_s, holds, confirms) for kill_s in run.kills_s]
    recovered = [r for r in recoveries if r is not None]
    unrecovered = len(recoveries) - len(recovered)
    offered_peak, offered_mean = _offered_rps(run.samples)
    near_ceiling = run.generator_ceiling_rps > 0 and offered_peak >= near_ceiling_fraction * run.generator_ceiling_rps

    return {
        "mode": run.mode,
        "buyers": run.buyers,
        "seats": run.seats,
        "ga_capacity": run.ga_capacity,
        "arrival_seconds": run.arrival_seconds,
        "options": dict(run.options),
        "holds_attempted": len(holds),
        "holds_ok": holds_ok,
        "holds_conflict": holds_conflict,
        "holds_error": len(holds) - holds_ok - holds_conflict,
        "confirms_attempted": len(confirms),
        "confirms_ok": confirms_ok,
        "confirms_error": len(confirms) - confirms_ok,
        "statuses": _statuses(by_kind),
        "sold_seats_pg": sold_seats_pg,
        "sold_ga_pg": sold_ga_pg,
        "sold_out": sold_out,
        "oversold": audit.get("oversold"),
        "lost_acknowledged": audit.get("lost_acknowledged"),
        "redis_pg_mismatch": audit.get("redis_pg_mismatch"),
        "orphaned_holds": audit.get("orphaned_holds"),
        "audit_passed": audit_passed(audit),
        "audit": dict(audit),
        "hold_latency_ms": _latency_summary(holds.latency_ms),
        "confirm_latency_ms": _latency_summary(confirms.latency_ms),
        "holds_per_s": _rate(holds_ok + holds_conflict, hold_window_s),
        "holds_ok_per_s": _rate(holds_ok, hold_window_s),
        "confirms_per_s": _rate(confirms_ok, confirm_window_s),
        "hold_window_s": _rounded(hold_window_s, seconds_decimals),
        "confirm_window_s": _rounded(confirm_window_s, seconds_decimals),
        "sellout_s": _sellout_s(confirms, capacity),
        "held_out_s": held_out_s,
        "holds_conflict_before_held_out": (
            None if held_out_s is None
            else int(np.count_nonzero((holds.status == conflict_status) & (holds.done_s < held_out_s)))
        ),
        "actor_kills": len(run.kills_s),
        "kills_s": list(run.kills_s),
        "kill_recovery_s": recoveries,
        "kill_recovery_s_max": max(recovered) if recovered and not unrecovered else None,
        "kills_unrecovered": unrecovered,
        "offered_rps_peak": round(offered_peak, rate_decimals),
        "offered_rps_mean": _rounded(offered_mean, rate_decimals),
        "generator_ceiling_rps": run.generator_ceiling_rps,
        "generator_near_ceiling": near_ceiling,
        "generator_note": _generator_note(offered_peak, run.generator_ceiling_rps, near_ceiling, run.buyers_dropped),
        "buyers_dropped": run.buyers_dropped,
        "timeline": _timeline(holds, confirms),
        "started_at": _utc(run.started_at).isoformat(),
        "git_commit": run.git_commit,
        "machine": dict(run.machine),
    } | _checkout_fields(by_kind, audit)


def _checkout_fields(by_kind: Mapping[str, Sequence[Sample]], audit: Mapping[str, Any]) -> dict[str, Any]:
    """--checkout: the checkouts and cards answered, their latency, and the audit's paid orders and their rate."""
    if not audit.get("checkout_mode"):
        return {}
    checkouts = _Requests.of(by_kind.get(CHECKOUT, []))
    cards = _Requests.of(by_kind.get(PAY, []))
    checked = audit.get("checkout") or {}
    return {
        "checkouts_attempted": len(checkouts),
        "checkouts_ok": int(np.count_nonzero(checkouts.status == created_status)),
        "checkout_latency_ms": _latency_summary(checkouts.latency_ms),
        "cards_attempted": len(cards),
        "card_latency_ms": _latency_summary(cards.latency_ms),
        "paid_orders": checked.get("paid_orders", 0),
        "paid_per_s": checked.get("paid_per_s"),
        "card_to_tickets_ms": checked.get("card_to_tickets_ms", {}),
        "slow_card_to_tickets_ms": checked.get("slow_card_to_tickets_ms", {}),
        "checkout_mismatch": audit.get("checkout_mismatch"),
    }


cpu_roles_shown_max = 8  # in the table; the JSON has them all

AUDIT_ZERO_COUNTS = (
    "oversold", "lost_acknowledged", "sold_unconfirmed", "store_pg_mismatch", "endpoint_pg_mismatch",
    "orphaned_holds", "unreadable_answers", "kills_failed",
)


CHECKOUT_ZERO_COUNTS = ("checkout_mismatch",)  # --checkout runs (checkout_mode): loadtests/flashsale/checkout_audit.py
# --fault/--faults runs (faults_mode; run.py _fault_audit): every fault injected and its target back, no 5xx but
# 503, every 503 with Retry-After
FAULT_ZERO_COUNTS = ("faults_failed", "faults_not_reached", "server_errors", "unavailable_without_retry_after")


def audit_passed(audit: Mapping[str, Any]) -> bool:
    names = (AUDIT_ZERO_COUNTS + (CHECKOUT_ZERO_COUNTS if audit.get("checkout_mode") else ())
             + (FAULT_ZERO_COUNTS if audit.get("faults_mode") else ()))
    return all(audit.get(name) == 0 for name in names)


def _rounded(value: float | None, decimals: int) -> float | None:
    return None if value is None else round(value, decimals)


def _rate(count: int, window_s: float | None) -> float | None:
    if window_s is None or window_s <= 0:
        return None
    return round(count / window_s, rate_decimals)


def _percentiles_ms(latencies_ms: FloatArray) -> list[float]:
    cuts = np.percentile(latencies_ms, list(latency_percentiles.values()), method=percentile_method)
    return [round(float(cut), latency_decimals) for cut in cuts]


def _latency_summary(latencies_ms: FloatArray) -> dict[str, float | None]:
    names = [*latency_percentiles, "max"]
    if latencies_ms.size == 0:
        return dict.fromkeys(names, None)
    values = [*_percentiles_ms(latencies_ms), round(float(latencies_ms.max()), latency_decimals)]
    return dict(zip(names, values, strict=True))


def _statuses(by_kind: Mapping[str, Sequence[Sample]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for kind in sorted(by_kind):
        per_status: dict[str, int] = {}
        for sample in by_kind[kind]:
            per_status[str(sample.status)] = per_status.get(str(sample.status), 0) + 1
        counts[kind] = dict(sorted(per_status.items(), key=lambda item: int(item[0])))
    return counts


def _sellout_s(confirms: _Requests, capacity: int) -> float | None:
    """When the units of the 201 answers among ``confirms`` (confirms, or holds), summed in done_s order, first
    reach ``capacity``."""
    ok = confirms.status == created_status
    done_s = confirms.done_s[ok]
    order = np.argsort(done_s, kind="stable")
    sold = np.cumsum(confirms.units[ok][order])
    reached = np.flatnonzero(sold >= capacity)
    if capacity <= 0 or reached.size == 0:
        return None
    return round(float(done_s[order][reached[0]]), seconds_decimals)


def _kill_recovery_s(kill_s: float, holds: _Requests, confirms: _Requests) -> float | None:
    """Kill to the first 2xx answer among requests due after it: requests already in flight don't show recovery."""
    firsts = []
    for requests in (holds, confirms):
        recovered = (requests.status >= 200) & (requests.status < 300) & (requests.due_s > kill_s)
        if recovered.any():
            firsts.append(float(requests.done_s[recovered].min()))
    return round(min(firsts) - kill_s, seconds_decimals) if firsts else None


def _offered_rps(samples: Sequence[Sample]) -> tuple[float, float | None]:
    """Peak and mean rate of requests due, all kinds: what the generator was asked to send."""
    if not samples:
        return 0.0, None
    due_s = np.array([s.due_s for s in samples], dtype=np.float64)
    _, per_bucket = np.unique(np.floor(due_s / bucket_s), return_counts=True)
    peak = float(per_bucket.max()) / bucket_s
    span_s = float(due_s.max() - due_s.min())
    return peak, (due_s.size / span_s if span_s > 0 else None)


def _generator_note(offered_peak: float, ceiling_rps: float, near_ceiling: bool, buyers_dropped: int) -> str:
    if not ceiling_rps > 0:  # NaN too: a ceiling that was never measured
        note = f"generator ceiling not measured; offered peak {offered_peak:,.0f} req/s"
    elif near_ceiling:
        note = (
            f"offered peak {offered_peak:,.0f} req/s is {offered_peak / ceiling_rps:.0%} of the generator's ceiling "
            f"{ceiling_rps:,.0f} req/s: the generator may have limited this run and its lag counts as latency"
        )
    else:
        note = (
            f"offered peak {offered_peak:,.0f} req/s is {offered_peak / ceiling_rps:.0%} of the generator's ceiling "
            f"{ceiling_rps:,.0f} req/s"
        )
    if buyers_dropped:
        note += f"; {buyers_dropped:,} buyers dropped by the generator (too many journeys in flight)"
    return note


def _timeline(holds: _Requests, confirms: _Requests) -> dict[str, Any]:
    answered_s = np.concatenate([holds.done_s, confirms.done_s])
    if answered_s.size == 0:
        return {"bucket_s": bucket_s, "t_s": [], "holds_decided": [], "holds_ok": [], "confirms_ok": [],
                "errors": [], "hold_p50_ms": [], "hold_p99_ms": []}
    first = min(0, math.floor(float(answered_s.min()) / bucket_s))
    buckets = math.floor(float(answered_s.max()) / bucket_s) - first + 1

    def bucket_of(requests: _Requests) -> npt.NDArray[np.int64]:
        return np.floor(requests.done_s / bucket_s).astype(np.int64) - first

    def per_bucket(requests: _Requests, mask: npt.NDArray[np.bool_]) -> list[int]:
        return [int(n) for n in np.bincount(bucket_of(requests)[mask], minlength=buckets)]

    hold_ok = holds.status == created_status
    hold_decided = hold_ok | (holds.status == conflict_status)
    confirm_ok = confirms.status == created_status
    hold_errors = per_bucket(holds, ~hold_decided)
    confirm_errors = per_bucket(confirms, ~confirm_ok)

    p50: list[float | None] = [None] * buckets
    p99: list[float | None] = [None] * buckets
    if len(holds):
        hold_bucket = bucket_of(holds)
        order = np.argsort(hold_bucket, kind="stable")
        present, starts = np.unique(hold_bucket[order], return_index=True)
        for bucket, latencies in zip(present, np.split(holds.latency_ms[order], starts[1:]), strict=True):
            cuts = np.percentile(latencies, [50.0, 99.0], method=percentile_method)
            p50[bucket], p99[bucket] = (round(float(cut), latency_decimals) for cut in cuts)

    return {
        "bucket_s": bucket_s,
        "t_s": [round((first + i) * bucket_s, seconds_decimals) for i in range(buckets)],
        "holds_decided": per_bucket(holds, hold_decided),
        "holds_ok": per_bucket(holds, hold_ok),
        "confirms_ok": per_bucket(confirms, confirm_ok),
        "errors": [h + c for h, c in zip(hold_errors, confirm_errors, strict=True)],
        "hold_p50_ms": p50,
        "hold_p99_ms": p99,
    }


def _utc(moment: dt.datetime) -> dt.datetime:
    # a naive time is taken to be UTC already, the only zone RunFacts allows
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


# --- output ------------------------------------------------------------------------------------------------------


def write_report(report: Mapping[str, Any], path: Path) -> None:
    """Indented JSON, but a list of plain values (the timeline's columns) on one line, so the file stays readable."""
    path.write_text(_to_json(report, 0) + "\n", encoding="utf-8")


def _to_json(value: Any, depth: int) -> str:
    indent = "  "
    inner = indent * (depth + 1)
    if isinstance(value, Mapping) and value:
        items = [f"{inner}{json.dumps(str(k))}: {_to_json(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent * depth + "}"
    if isinstance(value, list | tuple):
        if any(isinstance(v, Mapping | list | tuple) for v in value):
            return "[\n" + ",\n".join(inner + _to_json(v, depth + 1) for v in value) + "\n" + indent * depth + "]"
        return "[" + ", ".join(_to_json(v, depth + 1) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "null"  # JSON has no NaN; losing one figure beats losing the report at the end of a long run
    return json.dumps(value, allow_nan=False, default=str)


def _fmt(value: Any, suffix: str = "", decimals: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    if isinstance(value, float):
        return f"{value:,.{decimals}f}{suffix}"
    return f"{value}{suffix}"


def _verdict(report: Mapping[str, Any]) -> str:
    return "[bold green]PASSED[/]" if report.get("audit_passed") else "[bold red]FAILED[/]"


def _latency_line(latency: Mapping[str, Any]) -> str:
    return " / ".join(_fmt(latency.get(name), decimals=1) for name in ("p50", "p95", "p99", "max"))


def print_table(report: Mapping[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    title = (
        f"flash sale: {report['mode']}, {report['buyers']:,} buyers, "
        f"{report['seats']:,} seats + {report['ga_capacity']:,} GA over {report['arrival_seconds']} s"
    )
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value")
    table.add_row(
        "holds",
        f"{report['holds_attempted']:,} sent: {report['holds_ok']:,} ok, {report['holds_conflict']:,} conflict, "
        f"{report['holds_error']:,} error",
    )
    table.add_row(
        "holds/s decided (ok)",
        f"{_fmt(report['holds_per_s'])} ({_fmt(report.get('holds_ok_per_s'))})",
    )
    table.add_row("hold ms p50/p95/p99/max", _latency_line(report["hold_latency_ms"]))
    if report.get("platform_cpu_s") is not None:
        table.add_row(
            "platform CPU",
            f"{_fmt(report['platform_cpu_s'], ' s', 1)}: {_fmt(report.get('platform_cpu_us_per_hold_decided'))} us "
            f"per hold decided, {_fmt(report.get('platform_cpu_us_per_request'))} us per request; idle before "
            f"the sale {_fmt(report.get('platform_idle_cores'), ' cores', 2)}",
        )
    if report.get("platform_cpu_s_by_role"):
        table.add_row("platform CPU by role", ", ".join(
            f"{role} {seconds:.1f} s"
            for role, seconds in list(report["platform_cpu_s_by_role"].items())[:cpu_roles_shown_max]))
    table.add_row(
        "confirms",
        f"{report.get('confirms_attempted', report['confirms_ok'] + report['confirms_error']):,} sent: "
        f"{report['confirms_ok']:,} ok, {report['confirms_error']:,} error",
    )
    table.add_row("confirms/s", _fmt(report["confirms_per_s"]))
    table.add_row("confirm ms p50/p95/p99/max", _latency_line(report["confirm_latency_ms"]))
    if "paid_orders" in report:
        _checkout_rows(table, report)
    sellout_s = report["sellout_s"]
    table.add_row("sold out at", "not sold out" if sellout_s is None else _fmt(sellout_s, " s", 2))
    held_out_s = report.get("held_out_s")
    if held_out_s is not None:
        before = _fmt(report.get("holds_conflict_before_held_out"))
        table.add_row("all held at", f"{_fmt(held_out_s, ' s', 2)} ({before} hold 409s before)")
    if report.get("options", {}).get("buyers_pick") == "best":
        table.add_row("best 409s, seats left", f"{_fmt(report.get('best_refused_seats_left'))} (by the inventory's "
                      "count: fewer left in the zones asked than the buyer wanted)")
    table.add_row("sold (Postgres)", f"{_fmt(report['sold_seats_pg'])} seats + {_fmt(report['sold_ga_pg'])} GA")
    table.add_row(
        "audit",
        f"{_verdict(report)}  oversold {_fmt(report['oversold'])}, "
        f"lost acknowledged {_fmt(report['lost_acknowledged'])}, "
        f"redis/pg mismatch {_fmt(report['redis_pg_mismatch'])}, "
        f"orphaned holds {_fmt(report.get('orphaned_holds'))}",
    )
    if report.get("faults") is not None:
        table.add_row("faults", _faults_summary(report))
    if report["actor_kills"]:
        table.add_row("actor kills", _kills_summary(report))
    else:
        table.add_row("actor kills", "0")
    note_style = "yellow" if report.get("generator_near_ceiling") else "dim"
    table.add_row("generator", f"[{note_style}]{report.get('generator_note', '')}[/]")
    table.add_row("run", f"{report['started_at']}  commit {report['git_commit']}")
    console.print(table)


def _checkout_rows(table: Table, report: Mapping[str, Any]) -> None:
    checked = report.get("audit", {}).get("checkout", {})
    table.add_row("checkouts", f"{report['checkouts_attempted']:,} sent: {report['checkouts_ok']:,} ok; "
                  f"cards {report['cards_attempted']:,}; orders {_fmt(checked.get('orders_by_status'))}")
    table.add_row("checkout ms p50/p95/p99/max", _latency_line(report["checkout_latency_ms"]))
    table.add_row("paid orders/s", f"{_fmt(report['paid_per_s'], decimals=1)} ({report['paid_orders']:,} paid with "
                  f"tickets); {_fmt(report.get('platform_cpu_ms_per_paid_order'), ' ms', 2)} CPU per paid order")
    table.add_row("card -> tickets ms p50/p95/p99/max", _latency_line(report["card_to_tickets_ms"]))
    table.add_row("slow card -> tickets ms", _latency_line(report.get("slow_card_to_tickets_ms", {})))
    table.add_row("checkout audit", f"mismatch {_fmt(report.get('checkout_mismatch'))}: {_fmt(checked.get('counts'))}")


def print_comparison(
    reports: Mapping[str, Mapping[str, Any]], ratios: Mapping[str, float], console: Console | None = None
) -> None:
    console = console or Console()
    table = Table(title="flash sale: modes side by side", title_justify="left")
    table.add_column("figure", style="bold")
    for mode in reports:
        table.add_column(mode, justify="right")
    rows: list[tuple[str, Callable[[Mapping[str, Any]], str]]] = [
        ("holds/s decided", lambda r: _fmt(r["holds_per_s"])),
        ("holds ok", lambda r: _fmt(r["holds_ok"])),
        ("confirms/s", lambda r: _fmt(r["confirms_per_s"])),
        ("hold p50 ms", lambda r: _fmt(r["hold_latency_ms"].get("p50"), decimals=1)),
        ("hold p99 ms", lambda r: _fmt(r["hold_latency_ms"].get("p99"), decimals=1)),
        ("platform CPU us/hold decided", lambda r: _fmt(r.get("platform_cpu_us_per_hold_decided"))),
        ("sold out at s", lambda r: _fmt(r["sellout_s"], decimals=2)),
        ("audit", _verdict),
    ]
    if all("paid_orders" in r for r in reports.values()):
        rows[-1:-1] = [
            ("paid orders/s", lambda r: _fmt(r["paid_per_s"], decimals=1)),
            ("card->tickets p99 ms", lambda r: _fmt(r["card_to_tickets_ms"].get("p99"), decimals=1)),
            ("platform CPU ms/paid order", lambda r: _fmt(r.get("platform_cpu_ms_per_paid_order"), decimals=2)),
        ]
    for name, cell in rows:
        table.add_row(name, *(cell(report) for report in reports.values()))
    console.print(table)
    if ratios:
        ratio_table = Table(title="ratios", show_header=False, title_justify="left")
        ratio_table.add_column("ratio", style="bold")
        ratio_table.add_column("value", justify="right")
        for name, ratio in ratios.items():
            ratio_table.add_row(name, "-" if ratio is None or math.isnan(ratio) else f"{ratio:,.2f}x")
        console.print(ratio_table)


def _faults_summary(report: Mapping[str, Any]) -> str:
    """One line per fault: when it struck, when its target answered again, the first 2xx after, the 503s."""
    lines = [f"seed {report.get('faults_seed')}: {report.get('faults_schedule') or 'none'}"]
    for row in report["faults"]:
        if row.get("failure") or (row.get("started_s") is not None and row.get("back_s") is None):
            lines.append(f"[red]{row['fault']}: {row.get('failure') or 'never back'}[/]")
        elif row.get("started_s") is None:
            lines.append(f"{row['fault']}: not reached (the sale had ended)")
        else:
            lines.append(f"{row['fault']}: back at {_fmt(row.get('back_s'), ' s', 2)}, recovered "
                         f"{_fmt(row.get('recovery_s'), ' s', 2)} later; {row['errors_503']} x 503, "
                         f"{row['no_answer']} unanswered; ok/s {_fmt(row.get('ok_per_s_during'))} during, "
                         f"{_fmt(row.get('ok_per_s_after'))} after")
    return "\n".join(lines)


def _kills_summary(report: Mapping[str, Any]) -> str:
    """A line, however many kills: the full list is in the JSON (kills_s, kill_recovery_s)."""
    recovered = sorted(r for r in report.get("kill_recovery_s", []) if r is not None)
    never = report["actor_kills"] - len(recovered)
    if not recovered:
        return f"{report['actor_kills']}; [red]never[/] followed by a 2xx"
    median = statistics.median(recovered)
    line = (f"{report['actor_kills']}; back to a 2xx after median {_fmt(median, ' s', 2)}, "
            f"max {_fmt(recovered[-1], ' s', 2)}")
    actor = sorted(r for r in report.get("actor_recovery_s") or [] if r is not None)
    if actor:
        line += (f"; actor answering again after median {_fmt(statistics.median(actor), ' s', 2)}, "
                 f"max {_fmt(actor[-1], ' s', 2)}")
    return line + (f"; [red]{never} never[/] (no 2xx after them)" if never else "")


def print_soak(rows: Sequence[Mapping[str, Any]], console: Console | None = None) -> None:
    """loadtests/soak.py's table: one line per seed."""
    console = console or Console()
    table = Table(title="soak: one sale per fault seed", title_justify="left")
    columns = (("seed", "seed"), ("faults", "faults"), ("audit", "audit_passed"), ("oversold", "oversold"),
               ("lost", "lost_acknowledged"), ("faults failed", "faults_failed"), ("5xx", "server_errors"),
               ("503s", "errors_503"), ("recovery max s", "recovery_s_max"), ("holds/s", "holds_per_s"),
               ("confirms/s", "confirms_per_s"), ("CPU us/req", "platform_cpu_us_per_request"),
               ("gateway MB max", "gateway_rss_mb_max"))
    for title, _ in columns:
        table.add_column(title, justify="right")
    for row in rows:
        cells = [("PASSED" if row[name] else "[red]FAILED[/]") if name == "audit_passed"
                 else _fmt(row.get(name), decimals=2 if name == "recovery_s_max" else 0) for _, name in columns]
        table.add_row(*cells)
    console.print(table)
    for row in rows:
        console.print(f"seed {row['seed']}: {row['schedule'] or 'no faults'}")
