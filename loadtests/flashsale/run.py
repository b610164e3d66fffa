"""One flash sale end to end: platform, tenant and event, generator ceiling, the sale, the audit, the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import multiprocessing
import os
import platform as host
import queue as queues
import subprocess
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import asyncpg
import psutil
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from loadtests.flashsale import checkout_truth, faults, stack, truth
from loadtests.flashsale.audit import Facts, audit
from loadtests.flashsale.checkout_audit import audit_checkout
from loadtests.flashsale.cpu import CpuMeter
from loadtests.flashsale.faults import Injected
from loadtests.flashsale.generator import GeneratorJob, drain_s_max, run_ceiling, run_generator
from loadtests.flashsale.memory import GatewayRss
from loadtests.flashsale.plan import BuyerPlan, plan_buyers, share
from loadtests.flashsale.plot import plot_report
from loadtests.flashsale.report import RunFacts, build_report, print_table, write_report
from loadtests.flashsale.samples import NO_ANSWER, PAY, GeneratorOutcome
from loadtests.flashsale.scenario import GA_CODE, Scenario, event_body

if TYPE_CHECKING:
    from loadtests.flashsale.injector import Injector
    from loadtests.flashsale.killer import ActorKiller

REPORTS_DIR = Path("loadtests/reports")
fault_after_window_s = 5.0  # a fault's "rate after": over this long after its recovery
sale_start_lead_s = 3.0  # generator processes start (and import) before the first buyer is due
queue_wait_s = 0.5
results_queued_max = 1_024  # progress every 0.5 s per process, drained as it comes; progress is dropped when full
process_join_s_max = 30.0
ceiling_wait_s_max = 60.0
http_timeout_s = 30.0
idle_window_s = 2.0  # the platform's CPU with no buyer, measured just before the sale


@dataclass
class _Sale:
    """What one sale left to report: set up, driven and audited on a platform that has stopped since."""

    event_id: str
    ceiling_rps: float
    outcome: GeneratorOutcome
    chaos: _Chaos
    audited: dict[str, Any]
    platform_cpu_s: float
    idle_cores: float
    cpu_s_by_role: dict[str, float] = field(default_factory=dict)
    gateway_rss_mb: dict[str, Any] = field(default_factory=dict)  # loadtests/flashsale/memory.py; {} for --target


@dataclass
class _Chaos:
    kills_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    recoveries_s: list[float | None] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)  # --fault/--faults: what the injector did

    def failed(self, requested: bool) -> int:
        """Kills that failed or whose actor never answered again, plus one for a chaos run without a kill: such
        a run proves nothing about surviving kills."""
        unrecovered = sum(1 for r in self.recoveries_s if r is None)
        return len(self.failures) + unrecovered + int(requested and not self.kills_s)


def run_sale(scenario: Scenario) -> dict[str, Any]:
    """Runs the sale and returns its report (also written as JSON + PNG and printed)."""
    started_at = dt.datetime.now(dt.UTC)
    with stack.platform(scenario) as plat:
        sale = _sell(scenario, plat)
    report = build_report(RunFacts(
        mode=scenario.mode, buyers=scenario.buyers, seats=scenario.seats, ga_capacity=scenario.ga,
        arrival_seconds=scenario.arrival_seconds, options=scenario.options(), samples=sale.outcome.samples,
        kills_s=sale.chaos.kills_s, audit=sale.audited, generator_ceiling_rps=sale.ceiling_rps,
        started_at=started_at, git_commit=git_commit(), machine=machine(), buyers_dropped=sale.outcome.buyers_dropped,
    ))
    report |= {"event_id": sale.event_id, "buyers_saw_sold_out": sale.outcome.buyers_saw_sold_out,
               "journeys_cut_short": sale.outcome.journeys_cut_short, "actor_recovery_s": sale.chaos.recoveries_s,
               "best_refused_seats_left": sale.outcome.best_refused_seats_left}
    report |= _cpu_fields(sale.platform_cpu_s, report) | {"platform_idle_cores": round(sale.idle_cores, 3)}
    if sale.chaos.injected or scenario.faults_seed is not None:
        report |= _fault_fields(scenario, sale)
    report["gateway_rss_mb"] = sale.gateway_rss_mb or None
    report["platform_cpu_s_by_role"] = {role: round(s, 2) for role, s in sorted(
        sale.cpu_s_by_role.items(), key=lambda kv: -kv[1]) if s >= 0.01}
    _publish(report, scenario.report or REPORTS_DIR / f"flashsale-{scenario.mode}-{started_at:%Y%m%d-%H%M%S}.json")
    return report


def _sell(scenario: Scenario, plat: stack.Platform) -> _Sale:
    key = scenario.key or asyncio.run(stack.create_tenant(plat.database_url))[1]
    event_id, seat_ids = asyncio.run(_create_event(plat.url, key, scenario))
    org_id = asyncio.run(_event_org(plat.database_url, event_id))
    ceiling_rps = _ceiling(plat.url, scenario)
    simulator_before = asyncio.run(checkout_truth.simulator_stats(plat.paysim_url)) if scenario.checkout else {}
    cpu = CpuMeter(plat.pid)
    cpu.start()
    time.sleep(idle_window_s)
    idle_cores = cpu.seconds() / idle_window_s
    cpu.start()
    outcome, chaos, memory = _drive(scenario, plat, key, org_id, event_id, seat_ids, plan_buyers(scenario))
    cpu_s_by_role = cpu.seconds_by_role()
    platform_cpu_s = sum(cpu_s_by_role.values())
    audited = asyncio.run(_audit(scenario, plat, key, org_id, event_id, seat_ids, outcome))
    if scenario.checkout:
        audited |= asyncio.run(_audit_checkout(plat, org_id, event_id, outcome, simulator_before))
    audited |= {"kills_failed": chaos.failed(bool(scenario.kill_actor_every)), "kill_failures": chaos.failures[:20]}
    if chaos.injected or scenario.faults_seed is not None:
        audited |= _fault_audit(outcome, chaos)
    return _Sale(event_id, ceiling_rps, outcome, chaos, audited, platform_cpu_s, idle_cores, cpu_s_by_role, memory)


def _cpu_fields(platform_cpu_s: float, report: dict[str, Any]) -> dict[str, Any]:
    """The platform's CPU over the sale (loadtests/flashsale/cpu.py), and per request it answered: per hold
    decided (201 or 409) and per request of any kind, each counting all the platform's CPU (confirms included);
    with --checkout also per order paid with its tickets (everything the sale cost, holds and polls included)."""
    decided = report["holds_ok"] + report["holds_conflict"]
    answered = sum(n for per_status in report["statuses"].values() for status, n in per_status.items()
                   if status != str(NO_ANSWER))
    fields = {
        "platform_cpu_s": round(platform_cpu_s, 2),
        "platform_cpu_us_per_hold_decided": round(platform_cpu_s * 1e6 / decided) if decided else None,
        "platform_cpu_us_per_request": round(platform_cpu_s * 1e6 / answered) if answered else None,
    }
    if "paid_orders" in report:
        paid = report["paid_orders"]
        fields["platform_cpu_ms_per_paid_order"] = round(platform_cpu_s * 1e3 / paid, 2) if paid else None
    return fields


def _publish(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_report(report, path)
    plot_report(report, path.with_suffix(".png"))
    print_table(report)
    print(f"report: {path}  plot: {path.with_suffix('.png')}")


async def _create_event(url: str, key: str, scenario: Scenario) -> tuple[str, tuple[str, ...]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(url, headers=headers, timeout=aiohttp.ClientTimeout(http_timeout_s)) as http:
        async with http.post("/v1/events", json=event_body(scenario)) as created:
            if created.status != 201:
                raise RuntimeError(f"creating the event: HTTP {created.status}: {await created.text()}")
            event_id = str((await created.json())["id"])
        async with http.post(f"/v1/events/{event_id}/publish") as published:
            if published.status != 200:
                raise RuntimeError(f"publishing the event: HTTP {published.status}: {await published.text()}")
        seat_ids: tuple[str, ...] = ()
        if scenario.seats:
            async with http.get(f"/v1/events/{event_id}/seats") as seats:
                seat_ids = tuple((await seats.json())["seat_ids"])
        # every mode loads its inventory before the first buyer, so no mode's first holds pay for the load
        async with http.get(f"/v1/events/{event_id}/availability") as availability:
            if availability.status != 200:
                raise RuntimeError(f"the event's availability: HTTP {availability.status}")
    return event_id, seat_ids


async def _event_org(database_url: str, event_id: str) -> str:
    # The harness, like its truth readers (truth.py), connects as the URL's own user, outside row-level security.
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval("SELECT org_id FROM events WHERE id = $1", event_id))
    finally:
        await conn.close()


def _ceiling(url: str, scenario: Scenario) -> float:
    """The generator's own ceiling: every process at once, closed loop against GET /healthz."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue(results_queued_max)
    processes = [ctx.Process(target=run_ceiling, args=(url, scenario.connections, scenario.ceiling_seconds,
                                                         results, i)) for i in range(scenario.processes)]
    for p in processes:
        p.start()
    try:
        rates = [results.get(timeout=ceiling_wait_s_max)[2] for _ in processes]
    finally:
        for p in processes:
            p.join(process_join_s_max)
            if p.is_alive():
                p.kill()
    return float(sum(rates))


def _drive(scenario: Scenario, plat: stack.Platform, key: str, org_id: str, event_id: str,
           seat_ids: tuple[str, ...], plans: list[BuyerPlan]) -> tuple[GeneratorOutcome, _Chaos, dict[str, Any]]:
    """The sale driven to its end: the buyers' outcome, what was broken meanwhile, the gateway's memory."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue(results_queued_max)
    plan = scenario.fault_plan()
    killer = _killer(scenario, plat, org_id, event_id, any(fault.kind == faults.ACTOR_KILL for fault in plan))
    if killer is not None:
        killer.connect()
    injector = _injector(scenario, plat, plan, killer)
    rss = GatewayRss(plat.data_dir) if plat.data_dir is not None else None
    if rss is not None:
        rss.start()
    t0 = time.monotonic() + sale_start_lead_s
    jobs = [GeneratorJob(i, plat.url, key, event_id, seat_ids, part, t0, scenario.retry, scenario.connections,
                         scenario.hold_keys, scenario.buyers_pick, scenario.checkout, scenario.declined_ratio,
                         scenario.slow_ratio)
            for i, part in enumerate(share(plans, scenario.processes))]
    processes = [ctx.Process(target=run_generator, args=(job, results)) for job in jobs]
    for p in processes:
        p.start()
    if killer is not None:
        if scenario.kill_actor_every:
            killer.start(t0)
        else:
            killer.timed_from(t0)
    if injector is not None:
        injector.start(t0)
    try:
        outcome = _collect(scenario, results, len(jobs), t0)
    except BaseException:
        for p in processes:  # interrupted: the generators stop now, not after their journeys
            p.terminate()
        raise
    finally:
        if injector is not None:
            injector.stop()
        if killer is not None:
            killer.stop()
        memory = rss.stop() if rss is not None else {}
        for p in processes:
            p.join(process_join_s_max)
            if p.is_alive():
                p.kill()
    injected = list(injector.injected) if injector is not None else []
    if killer is None:
        return outcome, _Chaos(injected=injected), memory
    return outcome, _Chaos(list(killer.kills_s), list(killer.failures), list(killer.recoveries_s), injected), memory


def _killer(scenario: Scenario, plat: stack.Platform, org_id: str, event_id: str, for_faults: bool
            ) -> ActorKiller | None:
    if not (scenario.kill_actor_every or for_faults):
        return None
    if plat.ray_address is None:
        raise RuntimeError("killing the actor needs the platform's Ray address")
    from loadtests.flashsale.killer import ActorKiller  # Ray is heavy: only the chaos runs join the cluster

    every_s = scenario.kill_actor_every or faults.fault_at_s_max  # for the injector only: kill_once
    return ActorKiller(plat.ray_address, plat.ray_namespace, org_id, event_id, every_s)


def _injector(scenario: Scenario, plat: stack.Platform, plan: tuple[faults.Fault, ...], killer: ActorKiller | None
              ) -> Injector | None:
    if not plan:
        return None
    from loadtests.flashsale.injector import Injector

    if plat.data_dir is None and any(fault.kind != faults.ACTOR_KILL for fault in plan):
        raise RuntimeError("faults other than actor-kill need a platform the harness started")
    return Injector(plan, plat.data_dir or Path(), plat.database_url, plat.redis_url, plat.paysim_url,
                    killer.kill_once if killer is not None else None, scenario.seed)


def _fault_audit(outcome: GeneratorOutcome, chaos: _Chaos) -> dict[str, Any]:
    """What a run with faults must also show: every fault injected and its target back; while a store was away,
    503 with Retry-After, never another 5xx (from the platform: the simulator's answers to cards are not its)."""
    return {
        "faults_mode": True,
        "faults_failed": sum(1 for i in chaos.injected
                             if i.failure is not None or (i.started_s is not None and i.back_s is None)),
        # a fault due while buyers were still answered but never injected (a run that broke nothing proves nothing)
        "faults_not_reached": sum(1 for i in chaos.injected if i.started_s is None and i.failure is None
                                  and i.fault.at_s <= max((s.done_s for s in outcome.samples), default=0.0)),
        "server_errors": sum(1 for s in outcome.samples if s.status >= 500 and s.status != 503 and s.kind != PAY),
        "unavailable_without_retry_after": outcome.unavailable_without_retry_after,
    }


def _fault_fields(scenario: Scenario, sale: _Sale) -> dict[str, Any]:
    """The schedule as run (``--fault`` specs replay it) and each fault's figures (loadtests/flashsale/faults.py
    ``summary``) from the buyers' answers."""
    answers = [faults.Answer(s.kind, s.due_s, s.done_s, s.status) for s in sale.outcome.samples]
    rows = [faults.summary(injected, answers, fault_after_window_s) for injected in sale.chaos.injected]
    for row, injected in zip(rows, sale.chaos.injected, strict=True):
        row["notes"] = injected.notes
    return {"faults_seed": scenario.faults_seed, "faults_schedule": " ".join(str(i.fault) for i in sale.chaos.injected),
            "faults": rows, "faults_failed": sale.audited.get("faults_failed"),
            "faults_not_reached": sale.audited.get("faults_not_reached"),
            "server_errors": sale.audited.get("server_errors"),
            "unavailable_without_retry_after": sale.audited.get("unavailable_without_retry_after")}


def _collect(scenario: Scenario, results: Any, parts: int, t0: float) -> GeneratorOutcome:
    """Shows live progress and gathers each process's outcome; bounded by the sale's longest possible run."""
    deadline = t0 + scenario.arrival_seconds + drain_s_max + process_join_s_max
    outcome, progress, done = GeneratorOutcome(), {}, 0
    with _progress_display(scenario) as display:
        task = display.add_task("buyers", total=scenario.buyers, status="") if display else None
        while done < parts and time.monotonic() < deadline:
            try:
                kind, index, value = results.get(timeout=queue_wait_s)
            except queues.Empty:
                continue
            if kind == "done":
                outcome.merge(value)
                done += 1
            else:
                progress[index] = value
            if display is not None and task is not None:
                _show(display, task, progress)
    if done < parts:
        raise RuntimeError(f"only {done} of {parts} generator processes reported within the sale's time bound")
    return outcome


def _progress_display(scenario: Scenario) -> AbstractContextManager[Progress | None]:
    if not scenario.progress:
        return nullcontext(None)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn())


def _show(display: Progress, task: Any, progress: dict[int, dict[str, int]]) -> None:
    total = {name: sum(p[name] for p in progress.values())
             for name in ("buyers_started", "holds_ok", "holds_answered", "confirms_ok", "errors", "saw_sold_out")}
    display.update(task, completed=total["buyers_started"], status=(
        f"holds {total['holds_ok']:,} ok / {total['holds_answered']:,} answered  "
        f"confirms {total['confirms_ok']:,}  errors {total['errors']:,}  saw sold out {total['saw_sold_out']:,}"
    ))


async def _audit(scenario: Scenario, plat: stack.Platform, key: str, org_id: str, event_id: str,
                 seat_ids: tuple[str, ...], outcome: GeneratorOutcome) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(plat.url, headers=headers, timeout=aiohttp.ClientTimeout(http_timeout_s)) as http:
        async def open_orders() -> int:  # --checkout: what the holds of orders still pending payment keep
            return await checkout_truth.held_for_open_orders(plat.database_url, event_id) if scenario.checkout else 0

        settle_s = await truth.settle(http, event_id, scenario.hold_ttl_s, open_orders)
        held_for_open_orders = await open_orders()
        tickets = await truth.live_tickets(plat.database_url, event_id)
        store = await truth.store_view(scenario.mode, plat.database_url, plat.redis_url, org_id, event_id)
        endpoint = await truth.endpoint_view(http, event_id)
    facts = Facts(
        seat_ids=seat_ids, ga_capacity={GA_CODE: scenario.ga} if scenario.ga else {}, tickets=tickets,
        acked=outcome.sales, store=store, endpoint=endpoint, store_is_redis=scenario.mode != "postgres",
        released_hold_ids=outcome.released_hold_ids, abandoned_hold_ids=outcome.abandoned_hold_ids,
        refused_hold_ids=outcome.refused_hold_ids, held_for_open_orders=held_for_open_orders,
    )
    return audit(facts) | {
        "settle_s": round(settle_s, 3),
        "abandoned_holds": len(outcome.abandoned_hold_ids),
        "released_holds": len(outcome.released_hold_ids),
        "unreadable_answers": outcome.unreadable_answers,
    }


async def _audit_checkout(plat: stack.Platform, org_id: str, event_id: str, outcome: GeneratorOutcome,
                          simulator_before: dict[str, Any]) -> dict[str, Any]:
    """Once the holds have ended (_audit settled them): the outbox drained, then orders, sales, ledger and the
    simulator's captures compared (loadtests/flashsale/checkout_audit.py)."""
    drain_s = await checkout_truth.drain(plat.database_url, event_id)
    simulator_after = await checkout_truth.simulator_stats(plat.paysim_url)
    facts = await checkout_truth.checkout_facts(plat.database_url, org_id, event_id, outcome.cards,
                                                simulator_before, simulator_after)
    checked = audit_checkout(facts)
    checked |= {"drain_s": round(drain_s, 3), "orders_unsettled": outcome.orders_unsettled,
                "orders_seen_failed": len(outcome.orders_failed), "orders_seen_refunded": len(outcome.orders_refunded)}
    return {"checkout_mode": True, "checkout_mismatch": checked["checkout_mismatch"], "checkout": checked}


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": _memory_gib(),
            "python": host.python_version(), "system": host.platform(), "hostname": host.node()}


def _memory_gib() -> float:
    return round(psutil.virtual_memory().total / 2**30, 1)
