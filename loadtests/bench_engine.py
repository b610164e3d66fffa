"""Micro-benchmark of the pure inventory core, and of shipping one batch across the Ray boundary.

    python -m loadtests.bench_engine [--batch 1000] [--batches 20] [--runs 5]

Engine: each run applies ``batches`` batches of ``batch`` Hold commands (half single seats, half one GA unit, one
buyer each) to a fresh Inventory, with and without the drain that follows every batch in the actor. Commands are
built before the clock starts. Serialization: one batch of Hold commands plus their results, pickled and
unpickled as engine dataclasses (stdlib pickle and Ray's cloudpickle, which Ray uses for actor arguments), and as
actors.wire (msgpack of tuples; encode + cloudpickle + decode), which is how the actor path ships them.
Medians of ``runs``.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from ray import cloudpickle

from actors.wire import decode_commands, decode_results, encode_commands, encode_results
from engine.ids import hold_id_for
from engine.inventory.commands import Command, Hold, Result
from engine.inventory.machine import Inventory, InventorySpec

EVENT_ID = "evt_" + "5e" * 16
seats_per_row = 1_000
pickle_protocol = 5  # what Ray uses
repeats_per_serialization_run = 20
NOW = 1_000.0


def spec(seats: int) -> InventorySpec:
    seat_ids = tuple(f"S-{n // seats_per_row + 1}-{n % seats_per_row + 1}" for n in range(seats))
    return InventorySpec(EVENT_ID, seat_ids, "SEAT", (("GA", 1_000_000),), 600, 10)


def hold_commands(count: int, first: int = 0) -> list[Command]:
    """Alternating seat and GA holds, each by its own buyer, so none is refused."""
    commands: list[Command] = []
    for n in range(first, first + count):
        hold_id = hold_id_for(EVENT_ID, f"{n:020x}")
        if n % 2:
            commands.append(Hold(hold_id, hold_id, f"buyer-{n}", ticket_type="GA", quantity=1))
        else:
            seat = n // 2
            commands.append(Hold(hold_id, hold_id, f"buyer-{n}", (f"S-{seat // seats_per_row + 1}-{seat % 1000 + 1}",)))
    return commands


def engine_run(batch: int, batches: int, *, drain: bool) -> float:
    """Commands per second over ``batches`` batches applied to one fresh inventory."""
    inventory = Inventory(spec(batch * batches // 2 + 1))
    prepared = [hold_commands(batch, k * batch) for k in range(batches)]
    start = time.perf_counter()
    for commands in prepared:
        results = inventory.apply(commands, NOW)
        if drain:
            inventory.drain_changes()
    elapsed = time.perf_counter() - start
    assert all(r.__class__.__name__ == "Ok" for r in results), "a benchmark hold was refused"
    return batch * batches / elapsed


def batch_and_results(batch: int) -> tuple[list[Command], list[Result]]:
    commands = hold_commands(batch)
    return commands, Inventory(spec(batch)).apply(commands, NOW)


def round_trip_ms(payload_of: Callable[[], Any], dumps: Callable[[Any], bytes],
                  loads: Callable[[bytes], Any]) -> tuple[float, int]:
    """Milliseconds to build, dump and load one payload (mean of a few repeats), and its size."""
    start = time.perf_counter()
    for _ in range(repeats_per_serialization_run):
        data = dumps(payload_of())
        loads(data)
    return (time.perf_counter() - start) * 1_000 / repeats_per_serialization_run, len(data)


def serialization_cases(batch: int) -> dict[str, tuple[Callable[[], Any], Callable[[Any], bytes],
                                                      Callable[[bytes], Any]]]:
    commands, results = batch_and_results(batch)

    def wire_loads(data: bytes) -> Any:
        rows, result_rows = cloudpickle.loads(data)
        return decode_commands(rows), decode_results(result_rows)

    return {
        "dataclasses, stdlib pickle": (
            lambda: (commands, results), lambda p: pickle.dumps(p, pickle_protocol), pickle.loads,
        ),
        "dataclasses, ray cloudpickle": (
            lambda: (commands, results), lambda p: cloudpickle.dumps(p, pickle_protocol), cloudpickle.loads,
        ),
        "actors.wire msgpack, cloudpickle": (
            lambda: (encode_commands(commands), encode_results(results)),
            lambda p: cloudpickle.dumps(p, pickle_protocol),
            wire_loads,
        ),
    }


def median_of(values: Sequence[float], unit: str, digits: int = 0) -> str:
    runs = ", ".join(f"{v:,.{digits}f}" for v in values)
    return f"median {statistics.median(values):,.{digits}f} {unit} (runs: {runs})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    print(f"engine: {args.batches} batches of {args.batch} holds (half seats, half GA) per run, {args.runs} runs")
    for drain in (False, True):
        rates = [engine_run(args.batch, args.batches, drain=drain) for _ in range(args.runs)]
        label = "apply + drain_changes" if drain else "apply only"
        print(f"  {label:<22} {median_of(rates, 'commands/s')}")

    print(f"serialization: one batch of {args.batch} Hold commands + their Ok(HoldView) results, dump + load")
    for name, (payload_of, dumps, loads) in serialization_cases(args.batch).items():
        timings = [round_trip_ms(payload_of, dumps, loads) for _ in range(args.runs)]
        size = timings[0][1]
        print(f"  {name:<32} {median_of([ms for ms, _ in timings], 'ms/batch', 2)}, {size:,} bytes")


if __name__ == "__main__":
    main()
