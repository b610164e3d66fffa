"""Checkout end to end against a running platform (`make up`), audited: buyers hold one GA ticket each, check out,
pay with one of the simulator's cards (a mix: success, declined, slow), wait for their tickets, and some ask for
their money back.

    python -m loadtests.bench_checkout --orders 300 --concurrency 32       # reads .voelgoed/ (demo key, URLs)
    python -m loadtests.bench_checkout --declined 0.1 --slow 0.05 --refunds 0.1

Each buyer: ``POST /v1/events/{id}/holds`` -> ``POST /v1/holds/{id}/checkout`` -> ``POST confirm_url`` (the card) ->
``GET /v1/orders/{id}`` every ``poll_s`` until it is paid with its ticket (or failed, for a declined card) -> for a
refunding buyer, ``POST /v1/orders/{id}/refunds``. It prints paid orders per second (first card to last ticket),
the latency from card submission to tickets issued (p50, p99: the buyer's clock at the card against the order's
``tickets_issued_at`` in Postgres, one machine's clock, so the polling's interval adds nothing and can stay slow
enough not to load the platform), the orders not settled,
and the CPU the platform spent per paid order (psutil over the processes of the data folder: gateway workers, the
simulator, Redis, Postgres and Ray's, the benchmark itself excluded).

Then the audit, once the outbox is drained (Postgres from the data folder, the simulator's own counters): paid
orders == orders with their tickets issued == live sales + refunded ones; one code per sold ticket; every capture
at the simulator matched by a paid order; every refund asked for done at the simulator; every ledger transaction
of the event's orders balanced and the org's ledger verified; no outbox row left undone. ``audit_passed`` says all
held. The flash-sale harness's ``--checkout`` mode (``python -m loadtests.flashsale --checkout``) runs the same
journey as an open-loop sale with seats, and against the baselines too (``python -m loadtests.compare --checkout``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from loadtests.flashsale import checkout_truth
from loadtests.flashsale.cards import card_of

poll_s = 0.25  # the buyers' polling: slow, so that it costs the platform little (latency is from Postgres)
order_wait_s_max = 60.0
request_timeout_s = 30.0


def _platform_processes(data_dir: Path) -> list[psutil.Process]:
    runtime = json.loads((data_dir / "runtime.json").read_text())
    roots = [runtime.get(k) for k in ("gateway_pid", "paysim_pid", "redis_pid")]
    found: dict[int, psutil.Process] = {}
    for pid in filter(None, roots):
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        for p in [process, *process.children(recursive=True)]:
            found[p.pid] = p
    marks = [str(data_dir.resolve()), str(runtime.get("ray_temp_dir", "")) or "\0"]
    for p in psutil.process_iter(["cmdline"]):
        line = " ".join(p.info["cmdline"] or ())
        if any(m in line for m in marks):
            # with its children: Postgres's backends, where the queries' CPU goes, name no data folder
            for q in [p, *p.children(recursive=True)]:
                found[q.pid] = q
    found.pop(psutil.Process().pid, None)
    return list(found.values())


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for p in processes:
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class Tally:
    card_at: dict[str, float] = field(default_factory=dict)  # order id -> wall clock when its card was posted
    paid: list[str] = field(default_factory=list)  # order ids
    failed: list[str] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    unsettled: int = 0


async def _buyer(http: httpx.AsyncClient, event_id: str, n: int, card: str, refund: bool, tally: Tally) -> None:
    held = await http.post(f"/v1/events/{event_id}/holds",
                           json={"buyer_id": f"buyer-{n}", "ticket_type": "GA", "quantity": 1})  # fmt: skip
    if held.status_code != 201:
        tally.unsettled += 1
        return
    made = await http.post(f"/v1/holds/{held.json()['hold_id']}/checkout",
                           json={"buyer": {"email": f"b{n}@example.com", "name": f"Buyer {n}"}})  # fmt: skip
    if made.status_code != 201:
        tally.unsettled += 1
        return
    order = made.json()
    started = time.monotonic()
    tally.card_at[order["order_id"]] = time.time()
    paid = await http.post(order["payment"]["confirm_url"], json={"card_number": card})
    if paid.status_code != 200:
        tally.unsettled += 1
        return
    deadline = started + order_wait_s_max
    while time.monotonic() < deadline:
        found = (await http.get(f"/v1/orders/{order['order_id']}")).json()
        if found["status"] == "paid" and found["tickets"]:
            tally.paid.append(order["order_id"])
            if refund:
                asked = await http.post(f"/v1/orders/{order['order_id']}/refunds", json={"reason": "bench"})
                if asked.status_code == 201:
                    tally.refunded.append(order["order_id"])
            return
        if found["status"] == "failed":
            tally.failed.append(order["order_id"])
            return
        await asyncio.sleep(poll_s)
    tally.unsettled += 1


async def run(api_url: str, key: str, args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=request_timeout_s, limits=limits) as http:
        body = {"name": "Checkout bench", "starts_at": "2027-12-31T18:00:00Z", "hold_ttl_s": 600,
                "max_tickets_per_buyer": 1,
                "ticket_types": [{"code": "GA", "kind": "ga", "capacity": args.orders,
                                  "price": {"amount_minor": 15000, "currency": "ZAR"}}]}  # fmt: skip
        event = await http.post("/v1/events", json=body)
        event.raise_for_status()
        event_id = event.json()["id"]
        (await http.post(f"/v1/events/{event_id}/publish")).raise_for_status()
        processes = _platform_processes(data_dir)
        sim_before = await _sim_stats(data_dir)
        me = psutil.Process()
        cpu_before, own_before, started = _cpu_s(processes), _cpu_s([me]), time.monotonic()
        tally = Tally()
        gate = asyncio.Semaphore(args.concurrency)
        refund_every = round(1 / args.refunds) if args.refunds > 0 else 0

        async def one(n: int) -> None:
            async with gate:
                card = card_of(n, args.declined, args.slow)
                await _buyer(http, event_id, n, card, bool(refund_every) and n % refund_every == 0, tally)

        await asyncio.gather(*(one(n) for n in range(args.orders)))
        elapsed, cpu = time.monotonic() - started, _cpu_s(processes) - cpu_before
        own = _cpu_s([me]) - own_before
    paid = len(tally.paid)
    ordered = sorted(await _card_to_tickets_s(data_dir, tally))
    report: dict[str, Any] = {
        "orders": args.orders, "paid": paid, "failed": len(tally.failed), "refunds_asked": len(tally.refunded),
        "not_settled": tally.unsettled, "elapsed_s": round(elapsed, 2),
        "paid_per_s": round(paid / elapsed, 1) if elapsed else 0.0,
        "card_to_tickets_p50_ms": round(1000 * statistics.median(ordered), 1) if ordered else None,
        "card_to_tickets_p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1)
        if ordered else None,
        "platform_cpu_ms_per_paid_order": round(1000 * cpu / paid, 2) if paid else None,
        "platform_processes": len(processes),
        # the load generator's own CPU (this process): on a small machine it competes with the platform
        "generator_cpu_ms_per_paid_order": round(1000 * own / paid, 2) if paid else None,
    }  # fmt: skip
    report["audit"] = await _audit(data_dir, event_id, tally, sim_before)
    report["audit_passed"] = all(report["audit"]["checks"].values())
    return report


async def _card_to_tickets_s(data_dir: Path, tally: Tally) -> list[float]:
    runtime = json.loads((data_dir / "runtime.json").read_text())
    conn = await asyncpg.connect(runtime["database_url"])
    try:
        rows = await conn.fetch("SELECT id, extract(epoch FROM tickets_issued_at) AS issued FROM orders"
                                " WHERE id = ANY($1::text[]) AND tickets_issued_at IS NOT NULL", tally.paid)
    finally:
        await conn.close()
    return [float(row["issued"]) - tally.card_at[row["id"]] for row in rows]


async def _sim_stats(data_dir: Path) -> dict[str, Any]:
    runtime = json.loads((data_dir / "runtime.json").read_text())
    return await checkout_truth.simulator_stats(runtime["paysim_url"])


async def _audit(data_dir: Path, event_id: str, tally: Tally, sim_before: dict[str, Any]) -> dict[str, Any]:
    """What Postgres and the simulator say happened, once the outbox has finished (bounded wait)."""
    runtime = json.loads((data_dir / "runtime.json").read_text())
    await checkout_truth.drain(runtime["database_url"], event_id)
    owed = await checkout_truth.owed(runtime["database_url"], event_id)
    conn = await asyncpg.connect(runtime["database_url"])
    try:
        row = await conn.fetchrow(_AUDIT_SQL, event_id)
    finally:
        await conn.close()
    sim = await _sim_stats(data_dir)
    captures = sim["captures"] - sim_before["captures"]
    sim_refunds = sim["refunds"] - sim_before["refunds"]
    facts = {**dict(row), "outbox_undone": owed, "sim_captures": captures, "sim_refunds": sim_refunds}
    paid, refunded = len(tally.paid), len(tally.refunded)
    checks = {
        "paid_orders_have_tickets": facts["issued_orders"] == paid,
        "one_sale_per_paid_order": facts["sales"] == paid,
        "one_code_per_sold_ticket": facts["codes"] == facts["tickets"] == paid,
        "refunded_orders_as_asked": facts["refunded_orders"] == refunded,
        "refunded_tickets_cancelled": facts["live_tickets"] == paid - refunded,
        "captures_match_paid_orders": captures == paid,
        "refunds_done_at_the_provider": sim_refunds == refunded == facts["refunds_done"],
        "ledger_balanced": facts["unbalanced_transactions"] == 0,
        "outbox_drained": owed == 0,
    }
    return {"facts": facts, "checks": checks}


_AUDIT_SQL = """
SELECT
  (SELECT count(*) FROM orders WHERE event_id = $1 AND tickets_issued_at IS NOT NULL) AS issued_orders,
  (SELECT count(*) FROM orders WHERE event_id = $1 AND status = 'refunded') AS refunded_orders,
  (SELECT count(*) FROM sales WHERE event_id = $1) AS sales,
  (SELECT count(*) FROM tickets WHERE event_id = $1) AS tickets,
  (SELECT count(*) FROM tickets WHERE event_id = $1 AND status = 'live') AS live_tickets,
  (SELECT count(*) FROM ticket_codes c JOIN orders o ON o.id = c.order_id WHERE o.event_id = $1) AS codes,
  (SELECT count(*) FROM order_refunds f JOIN orders o ON o.id = f.order_id
    WHERE o.event_id = $1 AND f.status = 'done') AS refunds_done,
  (SELECT count(*) FROM (SELECT t.id FROM ledger_transactions t JOIN orders o ON o.id = t.order_id
    JOIN ledger_entries e ON e.transaction_id = t.id WHERE o.event_id = $1
    GROUP BY t.id HAVING sum(e.amount_minor) <> 0) AS x) AS unbalanced_transactions
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=".voelgoed", type=Path)
    parser.add_argument("--api-url", default=None, help="default: from the data folder (make up's)")
    parser.add_argument("--key", default=None, help="an owner key; default: the demo org's (demo.json)")
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--declined", type=float, default=0.0, help="share of buyers paying with the declined card")
    parser.add_argument("--slow", type=float, default=0.0, help="share paying with the slow card (5 s)")
    parser.add_argument("--refunds", type=float, default=0.0, help="share of paid buyers who ask for a refund")
    args = parser.parse_args()
    demo = json.loads((args.data_dir / "demo.json").read_text())
    runtime = json.loads((args.data_dir / "runtime.json").read_text())
    api_url = args.api_url or runtime.get("api_url") or "http://127.0.0.1:8000"
    report = asyncio.run(run(api_url, args.key or demo["api_key"], args, args.data_dir))
    print(json.dumps(report, indent=2, default=str))
    raise SystemExit(0 if report["audit_passed"] else 1)


if __name__ == "__main__":
    main()
