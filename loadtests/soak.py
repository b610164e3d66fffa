"""`python -m loadtests.soak`: K flash sales in a row, each under the fault schedule of its own seed
(`--faults SEED`, loadtests/flashsale/faults.py), tabulated; exits 1 when any run's audit failed.

Takes every option of `python -m loadtests.flashsale` (but --target and --faults; --report names the soak's own
JSON, each seed's report goes beside it), plus --seeds K and
--first-seed N: the runs use seeds N, N+1, ..., N+K-1. Each run starts its own platform (faults break the
processes the harness started) and writes its own report beside the soak's JSON; a failed seed is printed with
the command that replays it exactly (same options, same seed).

    python -m loadtests.soak --seeds 20 --buyers 5000 --seats 1000 --arrival-seconds 20
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import shlex
import sys
from pathlib import Path
from typing import Any

seeds_max = 1_000
error_chars_max = 500  # of a seed's run that raised, in its row


def main() -> int:
    from loadtests.flashsale.report import print_soak
    from loadtests.flashsale.run import REPORTS_DIR, run_sale
    from loadtests.flashsale.scenario import check, from_args, parser

    args, report_path, replay = _arguments(parser())
    base = from_args(args)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = report_path or REPORTS_DIR / f"soak-{stamp}.json"
    rows: list[dict[str, Any]] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        scenario = dataclasses.replace(base, faults_seed=seed, report=out.with_name(f"{out.stem}-seed{seed}.json"))
        try:
            check(scenario)
            rows.append(soak_row(seed, run_sale(scenario)))
        except (Exception, SystemExit) as error:  # a run that could not finish fails its seed, not the soak
            rows.append({"seed": seed, "schedule": "", "faults": 0, "audit_passed": False,
                         "error": f"{type(error).__name__}: {error}"[:error_chars_max]})
        replays = _write(out, base.options(), rows, replay)  # after every seed: a soak cut short keeps its rows
    print_soak(rows)
    for command in replays.values():
        print(f"replay: {command}")
    print(f"soak: {out}")
    return 1 if replays else 0


def _write(out: Path, scenario: dict[str, Any], rows: list[dict[str, Any]], replay: str) -> dict[int, str]:
    failed = [row for row in rows if not row["audit_passed"]]
    replays = {row["seed"]: f"python -m loadtests.flashsale {replay} --faults {row['seed']}" for row in failed}
    result = {"scenario": scenario, "seeds": [row["seed"] for row in rows], "rows": rows,
              "failed_seeds": [row["seed"] for row in failed], "replay": replays}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    return replays


def soak_row(seed: int, report: dict[str, Any]) -> dict[str, Any]:
    """One seed's line of the soak's table, from its run's report."""
    faults = report.get("faults") or []
    recoveries = [row["recovery_s"] for row in faults if row.get("recovery_s") is not None]
    audit = report.get("audit", {})
    return {
        "seed": seed, "schedule": report.get("faults_schedule", ""), "faults": len(faults),
        "audit_passed": bool(report.get("audit_passed")), "oversold": report.get("oversold"),
        "lost_acknowledged": report.get("lost_acknowledged"), "redis_pg_mismatch": report.get("redis_pg_mismatch"),
        "orphaned_holds": report.get("orphaned_holds"), "faults_failed": audit.get("faults_failed"),
        "server_errors": audit.get("server_errors"), "errors_503": sum(row.get("errors_503", 0) for row in faults),
        "recovery_s_max": max(recoveries, default=None), "holds_per_s": report.get("holds_per_s"),
        "confirms_per_s": report.get("confirms_per_s"), "paid_per_s": report.get("paid_per_s"),
        "platform_cpu_us_per_request": report.get("platform_cpu_us_per_request"),
        "gateway_rss_mb_max": (report.get("gateway_rss_mb") or {}).get("max"),
    }


def _arguments(p: argparse.ArgumentParser) -> tuple[argparse.Namespace, Path | None, str]:
    p.prog = "python -m loadtests.soak"
    p.add_argument("--seeds", type=int, default=20, help=f"how many seeds to run (1..{seeds_max})")
    p.add_argument("--first-seed", type=int, default=1, help="the first seed; the others follow it")
    argv = sys.argv[1:]
    args = p.parse_args(argv)
    if args.target or args.faults_seed is not None:
        p.error("soak starts each run's platform and draws each run's faults: no --target or --faults")
    if not 1 <= args.seeds <= seeds_max:
        p.error(f"--seeds must be 1..{seeds_max}")
    report_path, args.report = args.report, None
    return args, report_path, shlex.join(_without_soak_options(argv))


def _without_soak_options(argv: list[str]) -> list[str]:
    """The flashsale options of this soak (its own --seeds, --first-seed and --report dropped): a seed's replay."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in ("--seeds", "--first-seed", "--report"):
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


if __name__ == "__main__":
    sys.exit(main())
