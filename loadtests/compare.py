"""`python -m loadtests.compare`: the engine and both baselines on the same scenario, in one run, side by side.

Takes every option of `python -m loadtests.flashsale` (but --mode, --target and --report), runs each mode
--runs times interleaved, the order rotating each round (engine, postgres, redis-lua; then postgres, redis-lua,
engine; ...), so drift on a shared machine touches all modes alike, and writes one JSON with every run's report,
each mode's medians, and the ratios engine_vs_postgres and engine_vs_redis_lua of holds_per_s and confirms_per_s
(medians over the runs that passed their audit: a run that oversold or lost a sale has no speed worth quoting).
With --checkout every mode serves the same checkout path (our gateway's orders, payments, ledger and tickets, the
simulator's cards) over its own inventory, and paid_per_s is compared too.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import statistics
import sys
from pathlib import Path
from typing import Any

MODES = ("engine", "postgres", "redis-lua")
RATIO_FIELDS = ("holds_per_s", "confirms_per_s")
# Medians reported beside the rates: what a request costs the platform survives a noisy machine best.
MEDIAN_FIELDS = (*RATIO_FIELDS, "platform_cpu_us_per_hold_decided", "platform_cpu_us_per_request",
                 "platform_idle_cores")
# --checkout: the paid orders' rate, their latency from card to tickets, and what a paid order costs
CHECKOUT_RATIO_FIELDS = ("paid_per_s",)
CHECKOUT_MEDIAN_FIELDS = (*CHECKOUT_RATIO_FIELDS, "card_to_tickets_ms.p50", "card_to_tickets_ms.p99",
                          "platform_cpu_ms_per_paid_order")
runs_max = 20


def main() -> int:
    from loadtests.flashsale.plot import plot_comparison
    from loadtests.flashsale.report import print_comparison
    from loadtests.flashsale.run import REPORTS_DIR, run_sale
    from loadtests.flashsale.scenario import check, from_args, parser

    args, report_path = _arguments(parser())
    base = from_args(args)
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = report_path or REPORTS_DIR / f"compare-{stamp}.json"
    for n in range(args.runs):
        for mode in MODES[n % len(MODES):] + MODES[:n % len(MODES)]:
            scenario = dataclasses.replace(base, mode=mode, kill_actor_every=0.0,
                                           report=out.with_name(f"{out.stem}-{mode}-{n + 1}.json"))
            check(scenario)
            runs[mode].append(run_sale(scenario))
    ratio_fields = RATIO_FIELDS + (CHECKOUT_RATIO_FIELDS if base.checkout else ())
    median_fields = MEDIAN_FIELDS + (CHECKOUT_MEDIAN_FIELDS if base.checkout else ())
    medians = {mode: {name: _median(reports, name) for name in median_fields} for mode, reports in runs.items()}
    ratios = {
        f"engine_vs_{other.replace('-', '_')}": {name: _ratio(medians["engine"][name], medians[other][name])
                                                 for name in ratio_fields}
        for other in ("postgres", "redis-lua")
    }
    result = {"scenario": base.options(), "runs": args.runs, "medians": medians, "ratios": ratios,
              "reports": {mode: reports[-1] for mode, reports in runs.items()}, "all_runs": runs}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    plot_comparison(result["reports"], out.with_suffix(".png"))
    print_comparison(result["reports"], {f"{k} {f}": v for k, fields in ratios.items() for f, v in fields.items()
                                         if v is not None})
    print(f"comparison: {out}  plot: {out.with_suffix('.png')}")
    return 0 if all(r["audit_passed"] for reports in runs.values() for r in reports) else 1


def _arguments(p: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path | None]:
    p.prog = "python -m loadtests.compare"
    p.add_argument("--runs", type=int, default=1, help=f"runs of each mode, interleaved (1..{runs_max})")
    args = p.parse_args()
    if args.target or args.mode != "engine" or args.kill_actor_every:
        p.error("compare starts each mode itself: no --target, --mode or --kill-actor-every")
    if args.fault or args.faults_seed is not None:
        p.error("compare runs no faults (a seed would draw each mode another schedule): use loadtests.soak")
    if not 1 <= args.runs <= runs_max:
        p.error(f"--runs must be 1..{runs_max}")
    report_path, args.report = args.report, None
    return args, report_path


def _median(reports: list[dict[str, Any]], name: str) -> float | None:
    """Over the runs that passed their audit; a dotted name reads a nested figure (card_to_tickets_ms.p99)."""
    values = [v for r in reports if r.get("audit_passed") and (v := _figure(r, name)) is not None]
    return statistics.median(values) if values else None


def _figure(report: dict[str, Any], name: str) -> Any:
    value: Any = report
    for part in name.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _ratio(engine: float | None, other: float | None) -> float | None:
    return round(engine / other, 2) if engine is not None and other else None


if __name__ == "__main__":
    sys.exit(main())
