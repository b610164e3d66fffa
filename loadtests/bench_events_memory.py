"""Memory of 1,000 events on sale at once: all Ray worker processes together (goal: under 4 GiB).

    python -m loadtests.bench_events_memory [--events 1000] [--hosts 4]

Publishes N events (--seats seats + --ga GA units each; 100 + 100 by default), activates each on its
inventory host through the gateway's own client (rendezvous placement), places a hold in every event, then
sums the memory of every Ray worker process (`ray::*`): RSS, and PSS, which counts shared pages once and so is
the honest total. Run it with no other Ray on the machine: every `ray::*` process is counted.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time

import psutil

from engine.ids import hold_id_for
from engine.inventory.commands import Hold, Ok
from gateway.inventory_client import RayInventoryClient
from loadtests.bench_rig import RAY_NAMESPACE, add_rig_arguments, published_event, start_rig, stop_rig
from voelgoed.settings import Settings

activation_concurrency_max = 50
mib = 1024 * 1024


def ray_worker_memory() -> tuple[int, float, float]:
    count, rss, pss = 0, 0.0, 0.0
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::"):
            info = process.memory_full_info()
            count += 1
            rss += info.rss / mib
            pss += info.pss / mib
    return count, rss, pss


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_rig_arguments(parser)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--hosts", type=int, default=4)
    parser.add_argument("--seats", type=int, default=100, help="seats per event (whole rows of up to 1,000)")
    parser.add_argument("--ga", type=int, default=100, help="GA capacity per event")
    args = parser.parse_args()
    rig = await start_rig(args.server_url, args.redis_url)
    settings = Settings(rig.database_url, rig.redis_url, ray_namespace=RAY_NAMESPACE, inventory_hosts=args.hosts)
    client = RayInventoryClient(settings)
    await client.start()
    try:
        started = time.perf_counter()
        event_ids = [
            await published_event(rig, seats=args.seats, ga=args.ga, dedicated=False) for _ in range(args.events)
        ]
        created_s = time.perf_counter() - started
        gate = asyncio.Semaphore(activation_concurrency_max)

        async def open_sale(event_id: str) -> bool:
            async with gate:
                await client.activate(rig.org_id, event_id, dedicated=False)
                hold_id = hold_id_for(event_id, secrets.token_hex(10))
                hold = Hold(hold_id, hold_id, "b", seats=("S-1-1",))
                result = await client.submit(rig.org_id, event_id, hold, dedicated=False)
                return isinstance(result, Ok)

        started = time.perf_counter()
        held = await asyncio.gather(*(open_sale(e) for e in event_ids))
        activated_s = time.perf_counter() - started
        await asyncio.sleep(2)  # let idle workers settle
        count, rss, pss = ray_worker_memory()
        print(f"events on sale: {sum(held)}/{args.events} ({args.seats} seats + {args.ga} GA each) "
              f"on {args.hosts} hosts (created in {created_s:.1f}s, activated + one hold each in {activated_s:.1f}s)")
        print(f"Ray worker processes: {count}; RSS total {rss:,.0f} MiB; PSS total {pss:,.0f} MiB "
              f"(goal: under 4,096 MiB)")
    finally:
        await client.close()
        await stop_rig(rig, args.server_url)


if __name__ == "__main__":
    asyncio.run(main())
