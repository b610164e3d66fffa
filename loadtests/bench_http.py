"""End-to-end holds and confirms per second over HTTP against a running platform.

    python -m loadtests.bench_http --target http://127.0.0.1:8000 --key vk_... [--rate 10000] [--seconds 5]

Creates and publishes a dedicated event (seats + GA) through the API, then drives it open-loop from several
generator processes (aiohttp, keep-alive): holds at ``--rate`` per second for ``--seconds``, each buyer a distinct
seat or one GA unit, then confirms every hold it got at the same rate. Before the sale it measures the generator's
own ceiling against GET /healthz, so a result near that ceiling says the generator, not the platform, was the limit.
Latency is measured from each request's scheduled start, so queueing in the generator counts against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

in_flight_per_process_max = 512
request_timeout_s_max = 30.0


@dataclass
class Outcome:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    hold_ids: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    def merge(self, other: Outcome) -> None:
        self.statuses.update(other.statuses)
        self.latencies_ms += other.latencies_ms
        self.hold_ids += other.hold_ids
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)


@dataclass(frozen=True)
class Job:
    target: str
    key: str
    kind: str  # "health", "hold" or "confirm"
    event_id: str
    items: list[str]  # seat ids, "GA", or hold ids
    rate_per_s: float


def _request(job: Job, item: str, n: int) -> tuple[str, str, dict[str, object] | None]:
    if job.kind == "health":
        return "GET", "/healthz", None
    if job.kind == "confirm":
        return "POST", f"/v1/holds/{item}/confirm", {"order_ref": f"order-{item[-12:]}"}
    body: dict[str, object] = {"buyer_id": f"buyer-{n}-{item}"}
    body.update({"ticket_type": "GA", "quantity": 1} if item == "GA" else {"seats": [item]})
    return "POST", f"/v1/events/{job.event_id}/holds", body


async def _drive(job: Job) -> Outcome:
    outcome = Outcome()
    connector = aiohttp.TCPConnector(limit=in_flight_per_process_max)
    headers = {"Authorization": f"Bearer {job.key}"}
    timeout = aiohttp.ClientTimeout(total=request_timeout_s_max)
    gate = asyncio.Semaphore(in_flight_per_process_max)
    async with aiohttp.ClientSession(job.target, connector=connector, headers=headers, timeout=timeout) as http:
        started = time.perf_counter()

        async def one(n: int, item: str, due: float) -> None:
            method, path, body = _request(job, item, n)
            try:
                async with http.request(method, path, json=body) as answer:
                    payload = await answer.read()
                    outcome.statuses[answer.status] += 1
                    if job.kind == "hold" and answer.status == 201:
                        outcome.hold_ids.append(json.loads(payload)["hold_id"])
            except (TimeoutError, aiohttp.ClientError):
                outcome.statuses[0] += 1
            finally:
                gate.release()
            outcome.latencies_ms.append((time.perf_counter() - due) * 1000)

        tasks = []
        for n, item in enumerate(job.items):
            due = started + n / job.rate_per_s
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            tasks.append(asyncio.ensure_future(one(n, item, due)))
        await asyncio.gather(*tasks)
        outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _run_job(job: Job) -> Outcome:
    return asyncio.run(_drive(job))


def drive(jobs: list[Job]) -> Outcome:
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        parts = pool.map(_run_job, jobs)
    total = Outcome()
    for part in parts:
        total.merge(part)
    return total


def split(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts)]


def percentiles(latencies_ms: list[float]) -> dict[str, float]:
    if len(latencies_ms) < 2:
        return {}
    cuts = statistics.quantiles(latencies_ms, n=100)
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98], "max": max(latencies_ms)}


async def create_event(target: str, key: str, seats_rows: int, ga: int) -> tuple[str, list[str]]:
    body = {
        "name": "bench_http", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10, "dedicated": True,
        "seating": {"sections": [{"name": "A", "rows": [{"label": str(r), "seats": 1000}
                                                        for r in range(1, seats_rows + 1)]}]},
        "ticket_types": [
            {"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}},
            {"code": "GA", "kind": "ga", "capacity": ga, "price": {"amount_minor": 15000, "currency": "ZAR"}},
        ],
    }
    async with aiohttp.ClientSession(target, headers={"Authorization": f"Bearer {key}"}) as http:
        async with http.post("/v1/events", json=body) as created:
            assert created.status == 201, await created.text()
            event_id = (await created.json())["id"]
        async with http.post(f"/v1/events/{event_id}/publish") as published:
            assert published.status == 200, await published.text()
        async with http.get(f"/v1/events/{event_id}/seats") as seats:
            seat_ids = (await seats.json())["seat_ids"]
    return event_id, seat_ids


def report(name: str, outcome: Outcome, ok_status: int) -> str:
    ok = outcome.statuses[ok_status]
    cuts = percentiles(outcome.latencies_ms)
    return (f"{name}: {ok / outcome.elapsed_s:,.0f}/s ok ({ok} of {sum(outcome.statuses.values())}; "
            f"statuses {dict(outcome.statuses)}); latency ms p50 {cuts.get('p50', 0):.1f} "
            f"p95 {cuts.get('p95', 0):.1f} p99 {cuts.get('p99', 0):.1f} max {cuts.get('max', 0):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="http://127.0.0.1:8000")
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=float, default=10_000, help="offered requests/s, all processes together")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    per_process_rate = args.rate / args.processes

    ceiling = drive([Job(args.target, args.key, "health", "", ["-"] * (count // args.processes),
                         per_process_rate * 4) for _ in range(args.processes)])
    print(report("generator ceiling (GET /healthz, offered 4x)", ceiling, 200))

    event_id, seat_ids = asyncio.run(create_event(args.target, args.key, -(-count // 2 // 1000), count))
    items = [seat_ids[i // 2] if i % 2 == 0 else "GA" for i in range(count)]
    holds = drive([Job(args.target, args.key, "hold", event_id, part, per_process_rate)
                   for part in split(items, args.processes)])
    print(report(f"holds (offered {args.rate:,.0f}/s for {args.seconds}s)", holds, 201))
    confirms = drive([Job(args.target, args.key, "confirm", event_id, part, per_process_rate)
                      for part in split(holds.hold_ids, args.processes)])
    print(report("confirms", confirms, 201))


if __name__ == "__main__":
    main()
