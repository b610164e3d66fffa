"""Quotes per second over HTTP, with wrk: POST /v1/events/{id}/quote on a priced event.

    python -m loadtests.bench_quote                                  # its own gateway, Postgres and Redis
    python -m loadtests.bench_quote --target http://127.0.0.1:8000 --key vk_...   # a running platform

Without ``--target`` it starts what a quote needs, as ``make up`` runs it: embedded Postgres and Redis (in a
temporary folder), migrations, an org with an owner key, and the real gateway app under uvicorn with ``--workers``
processes (2, like ``make up``). No Ray: a quote never calls the inventory, so the gateway gets a client that
refuses every inventory call. Then, either way, it creates a priced event through the API (a price tier, a fee per
ticket, a percent fee per order, an added tax) and a promo code with ``max_uses`` (so quotes check its live-use
count: read from Redis at most once a second per gateway process), and runs wrk (``--runs`` times, after a
warm-up) against one quote body: two ticket types and the promo code (``--no-promo``: without it). It prints each
run's quotes/s, p50/p99 latency, non-2xx answers and (own gateway only) the gateway's CPU time per quote, then the
medians. wrk must be on PATH (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.http_protocol import HTTP_PROTOCOL

gateway_start_s_max = 60.0
request_timeout_s = 10.0

QUOTE_ITEMS = [{"ticket_type": "GA", "quantity": 2}, {"ticket_type": "VIP", "quantity": 1}]


def create_app() -> Any:
    """The gateway app with an inventory that is never asked (uvicorn --factory)."""
    from gateway.app import create_app as gateway_app
    from voelgoed.settings import Settings

    return gateway_app(Settings.from_env(), inventory=_NoInventory())


class _NoInventory:
    async def submit(self, org_id: str, event_id: str, command: Any, *, dedicated: bool) -> Any:
        raise RuntimeError("the quote benchmark's gateway has no inventory")

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        return None

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Run:
    quotes_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    gateway_cpu_us_per_quote: float | None = None  # our own gateway only: its processes' CPU time / requests


def _cpu_s(root_pid: int | None) -> float | None:
    """CPU seconds (user + system) of a process and its children so far; None without one."""
    if root_pid is None:
        return None
    import psutil

    root = psutil.Process(root_pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _call(target: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(target + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=request_timeout_s) as answer:
        return json.loads(answer.read() or b"{}")  # type: ignore[no-any-return]


def priced_event(target: str, key: str) -> str:
    money = {"currency": "ZAR"}
    event = _call(target, key, "POST", "/v1/events", {
        "name": "Quote bench",
        "starts_at": "2030-12-31T18:00:00Z",
        "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10,
        "ticket_types": [
            {"code": "GA", "kind": "ga", "capacity": 10_000, "price": {"amount_minor": 15_000, **money},
             "price_tiers": [{"until": "2099-01-01T00:00:00Z", "price": {"amount_minor": 12_000, **money}}]},
            {"code": "VIP", "kind": "ga", "capacity": 500, "price": {"amount_minor": 45_000, **money}},
        ],
        "fees": [{"code": "BOOKING", "per": "ticket", "amount_minor": 500},
                 {"code": "SERVICE", "per": "order", "percent_bp": 250}],
        "tax": {"code": "VAT", "rate_bp": 1_500, "included": False},
    })
    event_id: str = event["id"]
    _call(target, key, "POST", f"/v1/events/{event_id}/promo-codes",
          {"code": "BENCH10", "percent_off_bp": 1_000, "max_uses": 1_000})
    _call(target, key, "POST", f"/v1/events/{event_id}/publish")
    return event_id


def wrk_script(directory: Path, key: str, body: dict[str, Any]) -> Path:
    script = directory / "quote.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(body))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return script


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match is not None, text
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def run_wrk(
    url: str, script: Path, *, threads: int, connections: int, seconds: int, gateway_pid: int | None = None
) -> Run:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    cpu_before = _cpu_s(gateway_pid)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    cpu_after = _cpu_s(gateway_pid)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and requests:
        cpu_us = (cpu_after - cpu_before) / requests * 1e6
    return Run(rate, p50, p99, requests, int(errors.group(1)) if errors else 0, cpu_us)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_platform(workers: int) -> Iterator[tuple[str, str, int]]:
    """(target, owner key, gateway pid) of a gateway of our own on embedded Postgres and Redis, stopped
    afterwards."""
    from persistence.migrate import migrate
    from voelgoed import embedded

    root = Path(tempfile.mkdtemp(prefix="vg-quote-bench-", dir="/tmp"))
    postgres = embedded.EmbeddedPostgres.start(root / "postgres")
    redis = embedded.EmbeddedRedis.start(root / "redis", append_only=False)
    gateway: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(migrate(postgres.url))
        key = asyncio.run(_new_org(postgres.url))
        port = _free_port()
        env = dict(os.environ, VOELGOED_DATABASE_URL=postgres.url, VOELGOED_REDIS_URL=redis.url,
                   VOELGOED_DATA_DIR=str(root / "data"), VOELGOED_SESSION_SECRET="bench-" + "x" * 40)
        gateway = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "loadtests.bench_quote:create_app", "--factory", "--workers",
             str(workers), "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--no-proxy-headers",
             "--http", HTTP_PROTOCOL, "--log-level", "critical"],
            env=env, start_new_session=True,
        )
        target = f"http://127.0.0.1:{port}"
        _wait_healthy(target, gateway)
        yield target, key, gateway.pid
    finally:
        if gateway is not None:
            gateway.terminate()
            try:
                gateway.wait(timeout=15)
            except subprocess.TimeoutExpired:
                gateway.kill()
        redis.stop()
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _new_org(database_url: str) -> str:
    from persistence.access.orgs import create_org
    from persistence.db import connect

    conn = await connect(database_url)
    try:
        _, key = await create_org(conn, "quote bench")
    finally:
        await conn.close()
    return key


def _wait_healthy(target: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + gateway_start_s_max
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}")
        try:
            with urllib.request.urlopen(target + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the gateway did not answer /healthz within {gateway_start_s_max} s")


def bench(target: str, key: str, args: argparse.Namespace, gateway_pid: int | None = None) -> dict[str, Any]:
    event_id = priced_event(target, key)
    body: dict[str, Any] = {"buyer_id": "bench-buyer", "items": QUOTE_ITEMS}
    if not args.no_promo:
        body["promo_code"] = "bench10"
    sample = _call(target, key, "POST", f"/v1/events/{event_id}/quote", body)
    assert sample["total_minor"] == sum(
        line["amount_minor"] for line in sample["lines"] if not line.get("included", False)
    ), sample
    url = f"{target}/v1/events/{event_id}/quote"
    with tempfile.TemporaryDirectory() as directory:
        script = wrk_script(Path(directory), key, body)
        run_wrk(url, script, threads=args.threads, connections=args.connections, seconds=args.warmup_seconds)
        # The machine's state, in the same session: GET /healthz (no auth, no Redis) with the same wrk settings.
        plain = Path(directory) / "get.lua"
        plain.write_text('wrk.method = "GET"\n')
        health = run_wrk(f"{target}/healthz", plain, threads=args.threads, connections=args.connections,
                         seconds=args.seconds, gateway_pid=gateway_pid)
        health_cpu = "" if health.gateway_cpu_us_per_quote is None else (
            f"  gateway CPU {health.gateway_cpu_us_per_quote:.0f} us/request"
        )
        print(f"GET /healthz: {health.quotes_per_s:,.0f} requests/s  p99 {health.p99_ms:.2f} ms{health_cpu}")
        runs = [
            run_wrk(url, script, threads=args.threads, connections=args.connections, seconds=args.seconds,
                    gateway_pid=gateway_pid)
            for _ in range(args.runs)
        ]
    for n, run in enumerate(runs, 1):
        cpu_us = run.gateway_cpu_us_per_quote
        cpu = "" if cpu_us is None else f"  gateway CPU {cpu_us:.0f} us/quote"
        print(f"run {n}: {run.quotes_per_s:,.0f} quotes/s  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms  "
              f"{run.requests:,} requests, {run.non_2xx} non-2xx{cpu}")
    cpus = [r.gateway_cpu_us_per_quote for r in runs if r.gateway_cpu_us_per_quote is not None]
    result = {
        "quotes_per_s_median": statistics.median(r.quotes_per_s for r in runs),
        "p99_ms_median": statistics.median(r.p99_ms for r in runs),
        "p50_ms_median": statistics.median(r.p50_ms for r in runs),
        "non_2xx_total": sum(r.non_2xx for r in runs),
        "gateway_cpu_us_per_quote_median": statistics.median(cpus) if cpus else None,
        "runs": len(runs),
        "seconds": args.seconds,
        "connections": args.connections,
        "threads": args.threads,
        "promo": not args.no_promo,
        "healthz_per_s": health.quotes_per_s,
        "healthz_cpu_us": health.gateway_cpu_us_per_quote,
        "sample_quote": sample,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "sample_quote"}))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", help="a running gateway, e.g. http://127.0.0.1:8000 (needs --key)")
    parser.add_argument("--key", help="an API key with events:write and events:read")
    parser.add_argument("--workers", type=int, default=2, help="gateway workers of our own platform")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup-seconds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-promo", action="store_true", help="quote without the promo code (no use-count read)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not on PATH (Debian: apt-get install wrk)")
    if args.target:
        if not args.key:
            sys.exit("--target needs --key")
        bench(args.target.rstrip("/"), args.key, args)
        return
    with own_platform(args.workers) as (target, key, pid):
        bench(target, key, args, pid)


if __name__ == "__main__":
    main()
