"""Faults mid-sale, as data: what to break, when and for how long; a seeded random schedule of them; and what the
buyers' answers say about each one afterwards (pure: the harness's injector, loadtests/flashsale/injector.py,
carries a schedule out against the processes it started).

A fault is ``KIND@AT[:D]``: at AT seconds after the sale's start, break KIND for D seconds.

- ``postgres-kill``: the postmaster and its backends SIGKILLed; `voelgoed up` restarts it after D s (its
  keep-down file, voelgoed/store_supervision.py); crash recovery runs on that start.
- ``postgres-stall``: every Postgres process SIGSTOPped for D s, then SIGCONTed: connections hang, none fail.
- ``redis-kill``: redis-server SIGKILLed, restarted by `voelgoed up` after D s from its append-only file (written
  before each reply, so a process kill loses nothing: its cost is the clients' broken connections).
- ``redis-wipe``: the same, restarted empty: every hold and cached key gone (data loss).
- ``gateway-kill``: one uvicorn worker SIGKILLed (D unused); uvicorn starts another, its in-flight requests fail.
- ``actor-kill``: the event's inventory actor killed (Ray restarts it; D unused).
- ``paysim-down``: the payment simulator SIGSTOPped for D s: its calls hang, its webhooks wait (--checkout).
- ``paysim-slow``: for D s the simulator answers every API call ``paysim_slow_s`` late (--checkout).
- ``paysim-late``: for D s the simulator's webhooks leave ``paysim_late_s`` late (--checkout).

``schedule`` draws faults from a seed: the same seed, the same schedule, so a failing run is replayed exactly
with ``--faults SEED`` (the buyers' plan has its own ``--seed``). Faults never overlap: each starts after the
one before has ended and its store answered again, plus a gap.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

POSTGRES_KILL = "postgres-kill"
POSTGRES_STALL = "postgres-stall"
REDIS_KILL = "redis-kill"
REDIS_WIPE = "redis-wipe"
GATEWAY_KILL = "gateway-kill"
ACTOR_KILL = "actor-kill"
PAYSIM_DOWN = "paysim-down"
PAYSIM_SLOW = "paysim-slow"
PAYSIM_LATE = "paysim-late"
KINDS = (POSTGRES_KILL, POSTGRES_STALL, REDIS_KILL, REDIS_WIPE, GATEWAY_KILL, ACTOR_KILL, PAYSIM_DOWN, PAYSIM_SLOW,
         PAYSIM_LATE)
STORE_KINDS = frozenset({POSTGRES_KILL, POSTGRES_STALL, REDIS_KILL, REDIS_WIPE})
PAYSIM_KINDS = frozenset({PAYSIM_DOWN, PAYSIM_SLOW, PAYSIM_LATE})
INSTANT_KINDS = frozenset({GATEWAY_KILL, ACTOR_KILL})  # D means nothing: the platform restarts them itself

fault_at_s_max = 3_600.0
fault_duration_s_max = 60.0  # a stall longer than the gateway's request bounds says nothing more
paysim_slow_s = 1.0  # paysim-slow: each API answer this late
paysim_late_s = 3.0  # paysim-late: each webhook this late
schedule_faults_max = 1_000
# a drawn schedule: first fault after schedule_start_s, then a gap drawn in [gap_s_min, gap_s_max] after each
# fault's end; durations drawn in [duration_s_min, duration_s_max]
schedule_start_s = 1.0
gap_s_min, gap_s_max = 1.0, 4.0
duration_s_min, duration_s_max = 0.5, 3.0
span_s_min = 1e-3  # a fault's "during" span, at least (a rate over nothing is no rate)
recovery_s_assumed = 2.0  # the schedule's guess of how long a store takes to answer again after its D


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    at_s: float
    duration_s: float = 0.0

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind
        assert 0.0 <= self.at_s <= fault_at_s_max and 0.0 <= self.duration_s <= fault_duration_s_max, self

    def __str__(self) -> str:
        if self.kind in INSTANT_KINDS:
            return f"{self.kind}@{self.at_s:g}"
        return f"{self.kind}@{self.at_s:g}:{self.duration_s:g}"


class BadFault(ValueError):
    pass


def parse(text: str) -> Fault:
    """``KIND@AT[:D]`` (seconds), e.g. ``postgres-kill@3:2`` or ``gateway-kill@5``."""
    kind, _, when = text.strip().partition("@")
    if kind not in KINDS:
        raise BadFault(f"{text!r}: the kind is one of {', '.join(KINDS)}")
    at, _, duration = when.partition(":")
    try:
        at_s, duration_s = float(at), float(duration) if duration else 0.0
    except ValueError:
        raise BadFault(f"{text!r}: write KIND@AT[:D], seconds") from None
    if not (0.0 <= at_s <= fault_at_s_max and 0.0 <= duration_s <= fault_duration_s_max):
        raise BadFault(f"{text!r}: AT within 0..{fault_at_s_max:g} s, D within 0..{fault_duration_s_max:g} s")
    if kind not in INSTANT_KINDS and duration_s <= 0.0:
        raise BadFault(f"{text!r}: {kind} needs a duration D > 0")
    return Fault(kind, at_s, duration_s)


def schedule(seed: int, within_s: float, kinds: Sequence[str]) -> tuple[Fault, ...]:
    """Faults of ``kinds`` from ``schedule_start_s`` until ``within_s`` seconds after the sale's start, one after
    another, drawn from ``seed`` alone."""
    assert kinds and set(kinds) <= set(KINDS), kinds
    rng = random.Random(seed)
    faults: list[Fault] = []
    at_s = schedule_start_s + rng.uniform(0.0, gap_s_min)
    while round(at_s, 1) < within_s and len(faults) < schedule_faults_max:  # rounded: as the report prints it
        kind = rng.choice(list(kinds))
        duration_s = 0.0 if kind in INSTANT_KINDS else round(rng.uniform(duration_s_min, duration_s_max), 1)
        faults.append(Fault(kind, round(at_s, 1), duration_s))
        settled_s = duration_s + (recovery_s_assumed if kind in STORE_KINDS else 0.0)
        at_s += settled_s + rng.uniform(gap_s_min, gap_s_max)
    return tuple(faults)


def kinds_for(mode: str, checkout: bool) -> tuple[str, ...]:
    """What a drawn schedule may break: the baselines have no inventory actor; the simulator only with --checkout;
    the redis-lua baseline keeps its inventory only in Redis, so a wipe loses its sales (not a fault it claims to
    survive)."""
    return tuple(k for k in KINDS if (k != ACTOR_KILL or mode == "engine") and (k not in PAYSIM_KINDS or checkout)
                 and (k != REDIS_WIPE or mode != "redis-lua"))


def overlapping(faults: Iterable[Fault]) -> list[str]:
    """Pairs of given faults on the same target whose spans overlap (the injector runs one per target at once)."""
    spans: dict[str, list[Fault]] = {}
    for fault in sorted(faults, key=lambda f: f.at_s):
        spans.setdefault(_target_of(fault.kind), []).append(fault)
    problems = []
    for chain in spans.values():
        for before, after in itertools.pairwise(chain):
            if after.at_s < before.at_s + before.duration_s:
                problems.append(f"{before} and {after} overlap")
    return problems


def _target_of(kind: str) -> str:
    return kind.split("-", 1)[0]


@dataclass(slots=True)
class Injected:
    """What the injector did for one fault (seconds since the sale's start, the harness's monotonic clock)."""

    fault: Fault
    started_s: float | None = None  # when it broke the target; None: never (failed, or the sale had ended)
    ended_s: float | None = None  # when it let the target come back (restart allowed, SIGCONT, delay off)
    back_s: float | None = None  # when the target answered again (a store's connect or PING); None: never
    failure: str | None = None  # why the injection failed: counted by the audit
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Answer:
    """One buyer request's answer, as the fault summary needs it (kind: a loadtests/flashsale/samples.py KIND)."""

    kind: str
    due_s: float
    done_s: float
    status: int


# the requests whose answers show a fault's cost and its recovery: those that need what it broke (holds do not
# need Postgres; confirms and checkouts do)
_NEEDS = {"postgres": ("confirm", "checkout"), "redis": ("hold", "confirm", "checkout"),
          "gateway": ("hold", "confirm", "checkout"), "actor": ("hold", "confirm", "checkout"), "paysim": ("pay",)}


def summary(injected: Injected, answers: Sequence[Answer], after_window_s: float) -> dict[str, object]:
    """One fault's figures from the answers to the requests that need its target (``_NEEDS``): the time from the
    target's return to the first 2xx of such a request due after it (recovery_s), the 503s and unanswered ones
    from the fault's start until then, and their rate of 2xx answers during the fault and over
    ``after_window_s`` after the recovery."""
    needs = _NEEDS[_target_of(injected.fault.kind)]
    answers = [a for a in answers if a.kind in needs]
    row: dict[str, object] = {"fault": str(injected.fault), "kind": injected.fault.kind,
                              "started_s": _round(injected.started_s), "ended_s": _round(injected.ended_s),
                              "back_s": _round(injected.back_s), "failure": injected.failure}
    if injected.started_s is None:
        return row | {"recovery_s": None, "errors_503": 0, "no_answer": 0, "ok_per_s_during": None,
                      "ok_per_s_after": None}
    start = injected.started_s
    back = injected.back_s if injected.back_s is not None else injected.ended_s
    first_ok = min((a.done_s for a in answers if 200 <= a.status < 300 and back is not None and a.due_s >= back),
                   default=None)
    until = first_ok if first_ok is not None else max((a.done_s for a in answers), default=start)
    troubled = [a for a in answers if start <= a.done_s <= until]
    during_s = max(span_s_min, (back if back is not None else until) - start)
    ok_during = sum(1 for a in answers if 200 <= a.status < 300 and start <= a.done_s < start + during_s)
    after_from = first_ok if first_ok is not None else until
    ok_after = sum(1 for a in answers if 200 <= a.status < 300 and after_from <= a.done_s < after_from + after_window_s)
    return row | {
        "recovery_s": _round(first_ok - back) if first_ok is not None and back is not None else None,
        "errors_503": sum(1 for a in troubled if a.status == 503),
        "no_answer": sum(1 for a in troubled if a.status == 0),
        "ok_per_s_during": round(ok_during / during_s, 1),
        "ok_per_s_after": round(ok_after / after_window_s, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
