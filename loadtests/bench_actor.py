"""Commands per second through one event actor's batch call, without HTTP, write-through included.

    python -m loadtests.bench_actor [--batch 2048] [--runs 5]
    python -m loadtests.bench_actor --mode best [--seats 20000] [--quantity-max 4] [--rounds 3] [--runs 3]

Each run sends batches of holds (seats and GA, one per buyer) straight to a dedicated inventory actor and waits
for each answer, so the figure includes Ray serialization, the core and the Redis pipeline. A second phase
confirms held holds in batches, so it includes the fenced Postgres commit too (confirmed sales/s).

``--mode best``: best-available holds (engine/inventory/best_available.py) on the flash sale's hall (sections of
100 rows of 50 seats, each section a zone): each buyer asks for 1..quantity-max seats in one zone, zones in turn,
until the hall is 90 % held; then every hold is released (not timed) and the next round fills it again. The
figure is best-available holds answered per second, each one picked and held inside the actor's batch.
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
from engine.inventory.best_available import BestRequest
from engine.inventory.commands import Command, Confirm, Hold, HoldView, Ok, Release
from loadtests.bench_rig import (
    RAY_NAMESPACE,
    Rig,
    add_rig_arguments,
    median_and_runs,
    published_event,
    start_rig,
    stop_rig,
)
from loadtests.flashsale.scenario import seating_sections

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


best_fill_ratio = 0.9  # a round of best-available holds stops when this share of the hall is held


def best_holds(event_id: str, zones: list[str], seats: int, quantity_max: int, round_: int) -> list[Command]:
    """Buyers asking for 1..quantity_max best seats, zones in turn, until ``best_fill_ratio`` of the hall."""
    commands: list[Command] = []
    asked = 0
    n = 0
    while True:
        quantity = n % quantity_max + 1
        if asked + quantity > seats * best_fill_ratio:
            return commands
        hold_id = hold_id_for(event_id, secrets.token_hex(10))
        request = BestRequest(quantity, zones[n // quantity_max % len(zones)])  # each zone: every quantity
        commands.append(Hold(hold_id, hold_id, f"buyer-{round_}-{n}", best_available=request))
        asked += quantity
        n += 1


async def best_run(rig: Rig, batch: int, seats: int, quantity_max: int, rounds: int) -> tuple[float, float]:
    """(best-available holds/s over the rounds, seconds of the untimed first call that built the index)."""
    sections = seating_sections(seats)
    zones = [section["name"] for section in sections]
    event_id = await published_event(rig, seats=seats, ga=0, dedicated=True, sections=sections)
    actor = InventoryHost.options(  # type: ignore[attr-defined]
        name=dedicated_name(rig.org_id, event_id), namespace=RAY_NAMESPACE, **INVENTORY_ACTOR_OPTIONS
    ).remote(rig.database_url, rig.redis_url)
    await actor.activate.remote(rig.org_id, event_id)
    # The first best-available hold of an incarnation builds its index, and each zone's filter on first use:
    # one pass over the seats each, outside the timed rounds (and reported apart).
    warm: list[Command] = [
        Hold(h, h, f"warm-{z}", best_available=BestRequest(1, zone))
        for z, zone in enumerate(zones) for h in [hold_id_for(event_id, secrets.token_hex(10))]
    ]
    started = time.perf_counter()
    await call(actor, rig, event_id, warm)
    warm_s = time.perf_counter() - started
    await call(actor, rig, event_id, [Release(f"release:{c.hold_id}", c.hold_id) for c in warm])
    held_total, elapsed_s = 0, 0.0
    for round_ in range(rounds):
        commands = best_holds(event_id, zones, seats, quantity_max, round_)
        started = time.perf_counter()
        held: list[str] = []
        for b in range(0, len(commands), batch):
            results = await call(actor, rig, event_id, commands[b : b + batch])
            held += [r.value.hold_id for r in results if isinstance(r, Ok) and isinstance(r.value, HoldView)]
        elapsed_s += time.perf_counter() - started
        assert len(held) == len(commands), f"only {len(held)} of {len(commands)} best-available holds succeeded"
        held_total += len(held)
        releases: list[Command] = [Release(f"release:{h}", h) for h in held]
        for b in range(0, len(releases), batch):
            await call(actor, rig, event_id, releases[b : b + batch])
    ray.kill(actor, no_restart=True)
    return held_total / elapsed_s, warm_s


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_rig_arguments(parser)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mode", choices=("holds", "best"), default="holds",
                        help="holds: seat and GA holds, then confirms; best: best-available holds")
    parser.add_argument("--seats", type=int, default=20_000, help="best: the hall's seats")
    parser.add_argument("--quantity-max", type=int, default=4, help="best: each buyer asks for 1..N seats")
    parser.add_argument("--rounds", type=int, default=3, help="best: fills of the hall per run")
    args = parser.parse_args()
    rig = await start_rig(args.server_url, args.redis_url)
    try:
        if args.mode == "best":
            best = [await best_run(rig, args.batch, args.seats, args.quantity_max, args.rounds)
                    for _ in range(args.runs)]
        else:
            figures = [await one_run(rig, args.batch, args.batches) for _ in range(args.runs)]
    finally:
        await stop_rig(rig, args.server_url)
    if args.mode == "best":
        print(f"mode=best batch={args.batch} seats={args.seats} quantity=1..{args.quantity_max} "
              f"rounds={args.rounds} runs={args.runs}")
        print(f"best-available holds/s through one actor: {median_and_runs([b for b, _ in best])}")
        print(f"first call ({len(seating_sections(args.seats))} holds, builds the index), ms: "
              f"{median_and_runs([w * 1000 for _, w in best])}")
        return
    print(f"batch={args.batch} batches={args.batches} runs={args.runs}")
    print(f"hold commands/s through one actor:  {median_and_runs([h for h, _ in figures])}")
    print(f"confirmed (committed) sales/s:       {median_and_runs([s for _, s in figures])}")


if __name__ == "__main__":
    asyncio.run(main())
