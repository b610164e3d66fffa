"""Commands per second through one event actor's batch call, without HTTP, write-through included.

    python -m loadtests.bench_actor [--batch 2048] [--runs 5]

Each run sends batches of holds (seats and GA, one per buyer) straight to a dedicated inventory actor and waits
for each answer, so the figure includes Ray serialization, the core and the Redis pipeline. A second phase
confirms held holds in batches, so it includes the fenced Postgres commit too (confirmed sales/s).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
from typing import Any

import ray

from actors.inventory_host import INVENTORY_ACTOR_OPTIONS, InventoryHost
from actors.placement import dedicated_name
from actors.wire import decode_results, encode_commands
from engine.ids import hold_id_for
from engine.inventory.commands import Command, Confirm, Hold, HoldView, Ok
from loadtests.bench_rig import (
    RAY_NAMESPACE,
    Rig,
    add_rig_arguments,
    median_and_runs,
    published_event,
    start_rig,
    stop_rig,
)

# Confirms carry a caller as the gateway's do, so the commit writes audit entries of real size.
BENCH_CONFIRMER = "key:key_bench"
BENCH_IP = "203.0.113.7"


def hold_batch(event_id: str, start: int, size: int) -> list[Command]:
    commands: list[Command] = []
    for n in range(start, start + size):
        hold_id = hold_id_for(event_id, secrets.token_hex(10))
        if n % 2:
            commands.append(Hold(hold_id, hold_id, f"buyer-{n}", ticket_type="GA", quantity=1))
        else:
            commands.append(Hold(hold_id, hold_id, f"buyer-{n}", seats=(f"S-{n // 2000 + 1}-{n // 2 % 1000 + 1}",)))
    return commands


async def call(actor: Any, rig: Rig, event_id: str, commands: list[Command]) -> list[Any]:
    reply = await actor.apply.remote(rig.org_id, event_id, encode_commands(commands))
    return decode_results(reply.results)


async def one_run(rig: Rig, batch: int, batches: int) -> tuple[float, float]:
    seats = -(-batch * batches // 2 // 1000) * 1000
    event_id = await published_event(rig, seats=seats, ga=batch * batches, dedicated=True)
    actor = InventoryHost.options(  # type: ignore[attr-defined]
        name=dedicated_name(rig.org_id, event_id), namespace=RAY_NAMESPACE, **INVENTORY_ACTOR_OPTIONS
    ).remote(rig.database_url, rig.redis_url)
    await actor.activate.remote(rig.org_id, event_id)
    prepared = [hold_batch(event_id, b * batch, batch) for b in range(batches)]
    started = time.perf_counter()
    held: list[str] = []
    for commands in prepared:
        results = await call(actor, rig, event_id, commands)
        held += [r.value.hold_id for r in results if isinstance(r, Ok) and isinstance(r.value, HoldView)]
    holds_per_s = len(held) / (time.perf_counter() - started)
    assert len(held) == batch * batches, f"only {len(held)} holds succeeded"
    confirms = [Confirm(f"c-{h}", h, f"order-{h}", BENCH_CONFIRMER, BENCH_IP) for h in held]
    started = time.perf_counter()
    sold = 0
    for b in range(0, len(confirms), batch):
        results = await call(actor, rig, event_id, list(confirms[b : b + batch]))
        sold += sum(isinstance(r, Ok) for r in results)
    sales_per_s = sold / (time.perf_counter() - started)
    ray.kill(actor, no_restart=True)
    return holds_per_s, sales_per_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_rig_arguments(parser)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rig = await start_rig(args.server_url, args.redis_url)
    try:
        figures = [await one_run(rig, args.batch, args.batches) for _ in range(args.runs)]
    finally:
        await stop_rig(rig, args.server_url)
    print(f"batch={args.batch} batches={args.batches} runs={args.runs}")
    print(f"hold commands/s through one actor:  {median_and_runs([h for h, _ in figures])}")
    print(f"confirmed (committed) sales/s:       {median_and_runs([s for _, s in figures])}")


if __name__ == "__main__":
    asyncio.run(main())
