"""Small flash sales with faults mid-sale (`python -m loadtests.flashsale --fault ...`), each on a platform the
harness starts like `make up` (embedded Postgres and Redis, supervised by `voelgoed up`), each followed by the
full audit: nothing oversold, no acknowledged sale lost, Redis and Postgres consistent after the recovery, no
5xx but 503, every 503 with Retry-After, every fault injected and its target back.

Each fault is placed where the sale is busy (buyers arrive over 8 s) and the buyers' retries (about 7.5 s of
them) outlast it, so the sale also shows the platform working again by itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.services
harness_s_max = 420.0
SALE = ["--buyers", "600", "--seats", "150", "--ga", "150", "--arrival-seconds", "8", "--think-seconds", "0.5",
        "--confirm-ratio", "1", "--retry", "3", "--gateway-workers", "2", "--processes", "1", "--connections", "64",
        "--ceiling-seconds", "0.5", "--no-progress"]


def _sale(args: list[str], report: Path) -> dict[str, Any]:
    command = [sys.executable, "-m", "loadtests.flashsale", *SALE, *args, "--report", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=harness_s_max, env=dict(os.environ))
    assert report.exists(), f"no report; exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(report.read_text())
    result["_exit"] = done.returncode
    return result


def _assert_survived(report: dict[str, Any], kinds: set[str]) -> None:
    audit = report["audit"]
    assert report["oversold"] == 0 and report["lost_acknowledged"] == 0, audit
    assert report["redis_pg_mismatch"] == 0 and audit["endpoint_pg_mismatch"] == 0, audit
    assert audit["orphaned_holds"] == 0 and audit["faults_failed"] == 0, (audit, report["faults"])
    assert audit["server_errors"] == 0 and audit["unavailable_without_retry_after"] == 0, report["statuses"]
    assert report["audit_passed"] is True and report["_exit"] == 0
    assert {row["kind"] for row in report["faults"]} == kinds
    for row in report["faults"]:
        assert row["started_s"] is not None and row["back_s"] is not None, row
    assert report["sold_seats_pg"] + report["sold_ga_pg"] > 0


def test_a_sale_survives_postgres_killed_and_stalled(tmp_path: Path) -> None:
    # the second kill lands while uvicorn starts the killed worker again: soak seed 4 (gateway-kill@12.9,
    # postgres-kill@16.3) stopped the whole gateway, since that worker's start-up needed Postgres
    report = _sale(["--fault", "postgres-kill@1.5:1.5", "--fault", "gateway-kill@3.5", "--fault", "postgres-kill@4:2",
                    "--fault", "postgres-stall@6.8:1.5"], tmp_path / "pg.json")
    _assert_survived(report, {"postgres-kill", "gateway-kill", "postgres-stall"})
    killed = report["faults"][0]
    assert killed["back_s"] - killed["started_s"] >= 1.5  # held down for its D by the keep-down file
    # confirms in flight answered 503 (or lost their connection) and succeeded when retried
    assert killed["errors_503"] + killed["no_answer"] > 0 and killed["recovery_s"] is not None
    assert report["confirms_ok"] == report["audit"]["acknowledged_sales"] > 0


def test_a_sale_survives_redis_restarted_empty(tmp_path: Path) -> None:
    report = _sale(["--fault", "redis-wipe@2:1"], tmp_path / "redis.json")
    _assert_survived(report, {"redis-wipe"})
    assert report["faults"][0]["recovery_s"] is not None
    assert report["confirms_ok"] == report["audit"]["acknowledged_sales"] > 0


def test_a_checkout_sale_survives_gateway_workers_killed(tmp_path: Path) -> None:
    report = _sale(["--checkout", "--declined", "0.1", "--fault", "gateway-kill@2", "--fault", "gateway-kill@5"],
                   tmp_path / "gateway.json")
    _assert_survived(report, {"gateway-kill"})
    checked = report["audit"]["checkout"]
    assert report["checkout_mismatch"] == 0 and set(checked["counts"].values()) == {0}, checked
    assert report["paid_orders"] == checked["captures"] > 0  # retried checkouts and cards paid once each
