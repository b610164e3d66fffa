"""One flash sale's parameters: the command line of `python -m loadtests.flashsale`, and the event it sells."""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtests.flashsale import faults

MODES = ("engine", "postgres", "redis-lua")
PICKS = ("seats", "best")  # buyers pick seats from the map, or ask the inventory for the best ones of a zone
ARRIVALS = ("poisson", "uniform")
seats_per_row = 50  # a realistic hall: rows of 50, sections of 100 rows
rows_per_section = 100
hold_ttl_s_default = 120  # long enough that a confirm queued behind an overloaded sale does not find its hold gone
max_tickets_per_buyer = 10
generator_processes_default = 2
connections_per_process_default = 256
retries_max = 20
ticket_price_minor = 30_000
ga_price_minor = 15_000
currency = "ZAR"
SEATED_CODE = "SEAT"
GA_CODE = "GA"


@dataclass(frozen=True)
class Scenario:
    mode: str = "engine"
    buyers: int = 100_000
    seats: int = 20_000
    ga: int = 0
    arrival_seconds: float = 10.0
    arrivals: str = "poisson"
    confirm_ratio: float = 1.0
    abandon_ratio: float = 0.0  # the rest (1 - confirm - abandon) release their hold explicitly
    retry: int = 2  # a buyer refused with 409 (or 503) tries again up to this many times
    tickets_max: int = 2  # each buyer wants 1..tickets_max seats or units
    think_s: float = 0.5  # mean pause between a hold and its confirm or release (exponential)
    hold_ttl_s: int = hold_ttl_s_default
    gateway_workers: int = 2
    processes: int = generator_processes_default
    connections: int = connections_per_process_default  # keep-alive connections per generator process
    seed: int = 1
    kill_actor_every: float = 0.0  # seconds; 0: never
    report: Path | None = None
    target: str | None = None
    key: str | None = None
    database_url: str | None = None
    redis_url: str | None = None
    ray_address: str | None = None
    ceiling_seconds: float = 2.0
    hold_keys: bool = True  # holds carry an Idempotency-Key, so a retried hold is never a second one
    buyers_pick: str = "seats"  # a PICKS member
    progress: bool = True
    keep_logs: bool = False  # the started platform's data folder (its logs) is kept, not removed, after the run
    checkout: bool = False  # confirming buyers check out and pay with a card instead of POST /confirm
    declined_ratio: float = 0.0  # of the paying buyers: the simulator's declined card
    slow_ratio: float = 0.0  # of the paying buyers: the slow card (succeeds after a delay)
    paysim_url: str | None = None  # with --target and --checkout: the payment simulator, for the audit
    fault: tuple[str, ...] = ()  # --fault KIND@AT[:D] (loadtests/flashsale/faults.py), each given
    faults_seed: int | None = None  # --faults SEED: a schedule drawn from it, beside the given ones
    kill_gateway_every: float = 0.0  # seconds; 0: never (a gateway-kill fault every so often over the arrivals)
    extra: dict[str, Any] = field(default_factory=dict)

    def fault_plan(self) -> tuple[faults.Fault, ...]:
        """The faults given and those drawn from ``faults_seed`` (over the arrivals), in time order."""
        given = [faults.parse(spec) for spec in self.fault]
        if self.kill_gateway_every:
            count = min(faults.schedule_faults_max, int(self.arrival_seconds // self.kill_gateway_every))
            given += [faults.Fault(faults.GATEWAY_KILL, round(self.kill_gateway_every * (n + 1), 3))
                      for n in range(count)]
        drawn = faults.schedule(self.faults_seed, self.arrival_seconds, faults.kinds_for(self.mode, self.checkout)
                                ) if self.faults_seed is not None else ()
        return tuple(sorted([*given, *drawn], key=lambda fault: fault.at_s))

    @property
    def release_ratio(self) -> float:
        return max(0.0, 1.0 - self.confirm_ratio - self.abandon_ratio)

    @property
    def capacity(self) -> int:
        return self.seats + self.ga

    def options(self) -> dict[str, Any]:
        """The scenario as plain JSON values, minus the key."""
        values = asdict(self)
        values.pop("key")
        values.pop("extra")
        return {name: str(value) if isinstance(value, Path) else value for name, value in values.items()}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.flashsale",
        description="Run one flash sale end to end against the platform (or a baseline), audit it from Postgres "
        "and Redis, and write a JSON report, a table and a PNG plot.",
    )
    p.add_argument("--mode", choices=MODES, default="engine", help="the engine, or a baseline serving the same routes")
    p.add_argument("--buyers", type=_positive_int, default=100_000)
    p.add_argument("--seats", type=_non_negative_int, default=20_000, help="reserved seats on sale")
    p.add_argument("--ga", type=_non_negative_int, default=0, help="general-admission units on sale")
    p.add_argument("--arrival-seconds", type=_positive_float, default=10.0, help="buyers arrive over this long")
    p.add_argument("--arrivals", choices=ARRIVALS, default="poisson", help="arrival process (open loop)")
    p.add_argument("--confirm-ratio", type=_ratio, default=1.0, help="share of holds that are confirmed")
    p.add_argument("--abandon-ratio", type=_ratio, default=0.0, help="share of holds left to expire")
    p.add_argument("--retry", type=_retries, default=2,
                   help="tries after a 409 (on other seats) or after a 503 or no answer (the same request)")
    p.add_argument("--tickets-max", type=_positive_int, default=2, help="each buyer wants 1..N tickets")
    p.add_argument("--think-seconds", dest="think_s", type=_non_negative_float, default=0.5,
                   help="mean pause between hold and confirm/release")
    p.add_argument("--hold-ttl-s", type=_positive_int, default=hold_ttl_s_default)
    p.add_argument("--gateway-workers", type=_positive_int, default=2)
    p.add_argument("--processes", type=_positive_int, default=generator_processes_default,
                   help="load-generator processes")
    p.add_argument("--connections", type=_positive_int, default=connections_per_process_default,
                   help="keep-alive connections per generator process")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--kill-actor-every", type=_non_negative_float, default=0.0, metavar="SECONDS",
                   help="kill the event's inventory actor this often during the sale (engine mode)")
    p.add_argument("--report", type=Path, default=None, help="JSON report path (a .png plot is written beside it)")
    p.add_argument("--target", default=None, help="URL of a platform that already runs (else one is started)")
    p.add_argument("--key", default=None, help="an API key of the target (needs events:write and inventory:*)")
    p.add_argument("--database-url", default=None, help="Postgres: audited with --target; else used instead of "
                   "an embedded one")
    p.add_argument("--redis-url", default=None, help="Redis: as --database-url")
    p.add_argument("--ray-address", default=None, help="with --target: the Ray cluster, for --kill-actor-every")
    p.add_argument("--ceiling-seconds", type=_positive_float, default=2.0,
                   help="how long to measure the generator's own ceiling")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress display")
    p.add_argument("--keep-logs", action="store_true",
                   help="keep the started platform's data folder (gateway, Ray, Postgres logs) after the run")
    p.add_argument("--buyers-pick", choices=PICKS, default="seats",
                   help="seats: buyers pick free seats from the live map; best: they ask for the best 1..tickets-max "
                   "seats of a zone (best_available holds; engine mode)")
    p.add_argument("--no-hold-keys", dest="hold_keys", action="store_false",
                   help="holds without an Idempotency-Key (cheaper; a hold retried after 503 may then be a second)")
    p.add_argument("--checkout", action="store_true",
                   help="confirming buyers check out (POST /v1/holds/{id}/checkout), pay with a simulator card and "
                   "wait for their tickets; the audit adds orders, captures and the ledger")
    p.add_argument("--declined", dest="declined_ratio", type=_ratio, default=0.0,
                   help="with --checkout: share of paying buyers whose card is declined")
    p.add_argument("--slow", dest="slow_ratio", type=_ratio, default=0.0,
                   help="with --checkout: share of paying buyers whose card succeeds slowly (5 s)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND@AT[:D]",
                   help="break KIND at AT seconds into the sale for D seconds (repeatable): " + ", ".join(faults.KINDS))
    p.add_argument("--kill-gateway-every", type=_non_negative_float, default=0.0, metavar="SECONDS",
                   help="SIGKILL a gateway worker this often during the arrivals (gateway-kill faults)")
    p.add_argument("--faults", dest="faults_seed", type=int, default=None, metavar="SEED",
                   help="a random schedule of faults drawn from SEED over the arrivals (printed in the report; the "
                   "same seed replays it)")
    p.add_argument("--paysim-url", default=None, help="with --target and --checkout: the payment simulator's URL "
                   "(its /_sim/stats counts the captures)")
    return p


def from_args(args: argparse.Namespace) -> Scenario:
    values = {name: value for name, value in vars(args).items() if name in Scenario.__dataclass_fields__}
    values["fault"] = tuple(values.get("fault", ()))
    scenario = Scenario(**values)
    check(scenario)
    return scenario


def check(scenario: Scenario) -> None:
    """Refuses what cannot run, before anything starts."""
    problems = []
    if scenario.capacity == 0:
        problems.append("nothing on sale: give --seats and/or --ga")
    if scenario.confirm_ratio + scenario.abandon_ratio > 1.0 + 1e-9:
        problems.append("--confirm-ratio + --abandon-ratio must be at most 1")
    if scenario.tickets_max > max_tickets_per_buyer:
        problems.append(f"--tickets-max must be at most {max_tickets_per_buyer}")
    if scenario.target and not scenario.key:
        problems.append("--target needs --key")
    if scenario.target and not (scenario.database_url and scenario.redis_url):
        problems.append("--target needs --database-url and --redis-url (the audit reads the stores)")
    if scenario.kill_actor_every and scenario.mode != "engine":
        problems.append("--kill-actor-every applies to --mode engine only (the baselines have no actor)")
    if scenario.buyers_pick == "best" and scenario.mode != "engine":
        problems.append("--buyers-pick best applies to --mode engine only (the baselines hold named seats)")
    if scenario.buyers_pick == "best" and not scenario.seats:
        problems.append("--buyers-pick best needs --seats")
    if scenario.declined_ratio + scenario.slow_ratio > 1.0 + 1e-9:
        problems.append("--declined + --slow must be at most 1")
    if (scenario.declined_ratio or scenario.slow_ratio) and not scenario.checkout:
        problems.append("--declined and --slow apply to --checkout only")
    if scenario.checkout and scenario.target and not scenario.paysim_url:
        problems.append("--checkout with --target needs --paysim-url")
    if scenario.kill_actor_every and scenario.target and not scenario.ray_address:
        problems.append("--kill-actor-every with --target needs --ray-address")
    problems += _fault_problems(scenario)
    if problems:
        raise SystemExit("flashsale: " + "; ".join(problems))


def _fault_problems(scenario: Scenario) -> list[str]:
    try:
        plan = scenario.fault_plan()
    except faults.BadFault as error:
        return [f"--fault {error}"]
    kinds = {fault.kind for fault in plan}
    problems = faults.overlapping(plan)
    if scenario.target and kinds - {faults.ACTOR_KILL}:
        problems.append("--fault/--faults break only the processes of a platform the harness starts (no --target)")
    if faults.ACTOR_KILL in kinds and scenario.kill_actor_every:
        problems.append("actor-kill faults and --kill-actor-every kill the same actor: give one of them")
    if faults.ACTOR_KILL in kinds and scenario.mode != "engine":
        problems.append("actor-kill applies to --mode engine only")
    if kinds & faults.PAYSIM_KINDS and not scenario.checkout:
        problems.append("the simulator's faults apply to --checkout only")
    if kinds & faults.STORE_KINDS and (scenario.database_url or scenario.redis_url):
        problems.append("store faults break the embedded Postgres and Redis: no --database-url/--redis-url")
    return problems


def event_body(scenario: Scenario, now: dt.datetime | None = None) -> dict[str, Any]:
    """A dedicated event (its own inventory actor, as a hot sale gets) with the scenario's seats and GA."""
    starts_at = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(days=30)
    types: list[dict[str, Any]] = []
    body: dict[str, Any] = {
        "name": f"Flash sale {scenario.mode} {scenario.buyers} buyers",
        "starts_at": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hold_ttl_s": scenario.hold_ttl_s,
        "max_tickets_per_buyer": max_tickets_per_buyer,
        "dedicated": True,
        "ticket_types": types,
    }
    if scenario.seats:
        body["seating"] = {"sections": seating_sections(scenario.seats)}
        types.append({"code": SEATED_CODE, "kind": "seated",
                      "price": {"amount_minor": ticket_price_minor, "currency": currency}})
    if scenario.ga:
        types.append({"code": GA_CODE, "kind": "ga", "capacity": scenario.ga,
                      "price": {"amount_minor": ga_price_minor, "currency": currency}})
    return body


def seating_sections(seats: int) -> list[dict[str, Any]]:
    rows = [min(seats_per_row, seats - start) for start in range(0, seats, seats_per_row)]
    return [
        {"name": f"S{n + 1}", "rows": [{"label": str(r + 1), "seats": count}
                                       for r, count in enumerate(rows[start:start + rows_per_section])]}
        for n, start in enumerate(range(0, len(rows), rows_per_section))
    ]


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _retries(raw: str) -> int:
    value = _non_negative_int(raw)
    if value > retries_max:
        raise argparse.ArgumentTypeError(f"at most {retries_max}")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _ratio(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value
