"""The coalescer batches while a call is in flight, keeps order, bounds its queue and fails a batch whole."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine.inventory.commands import Command, Ok, Release, Result
from gateway.coalescer import Coalescer
from gateway.inventory_errors import InventoryBusy, InventoryUnavailable
from tests.bounded_wait import until


class GatedSender:
    """A stand-in actor: records each batch and answers only when the test opens the gate."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()

    async def __call__(self, commands: Sequence[Command]) -> list[Result]:
        self.batches.append([c.cmd_id for c in commands])
        await self.gate.wait()
        return [Ok(c.cmd_id) for c in commands]  # type: ignore[arg-type]


async def submit_in_turn(coalescer: Coalescer, sender: GatedSender, count: int) -> list[asyncio.Future[Result]]:
    """The first command is sent at once; the others arrive while it is in flight."""
    tasks = [asyncio.ensure_future(coalescer.submit(Release("c0", "h")))]
    await until(lambda: len(sender.batches) == 1)
    tasks += [asyncio.ensure_future(coalescer.submit(Release(f"c{i}", "h"))) for i in range(1, count)]
    await asyncio.sleep(0)
    return tasks


async def test_first_command_goes_alone_and_the_rest_wait_for_one_batch() -> None:
    sender = GatedSender()
    coalescer = Coalescer(sender)
    tasks = await submit_in_turn(coalescer, sender, 5)
    assert sender.batches == [["c0"]]
    assert coalescer.depth == 4
    sender.gate.set()
    results = await asyncio.gather(*tasks)
    assert sender.batches == [["c0"], ["c1", "c2", "c3", "c4"]]
    assert [r.value for r in results] == [f"c{i}" for i in range(5)]  # type: ignore[union-attr]
    assert coalescer.idle


async def test_batches_are_capped() -> None:
    sender = GatedSender()
    coalescer = Coalescer(sender, batch_max=2)
    tasks = await submit_in_turn(coalescer, sender, 5)
    sender.gate.set()
    await asyncio.gather(*tasks)
    assert [len(b) for b in sender.batches] == [1, 2, 2]


async def test_full_queue_refuses_without_sending() -> None:
    sender = GatedSender()
    coalescer = Coalescer(sender, queue_max=3)
    tasks = await submit_in_turn(coalescer, sender, 4)  # c0 is in flight, c1..c3 wait: the queue is full
    with pytest.raises(InventoryBusy):
        await coalescer.submit(Release("late", "h"))
    sender.gate.set()
    await asyncio.gather(*tasks)
    assert all("late" not in batch for batch in sender.batches)


async def test_a_failed_call_fails_its_batch_and_later_batches_still_go() -> None:
    calls = 0

    async def flaky(commands: Sequence[Command]) -> list[Result]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("actor gone")
        return [Ok(None) for _ in commands]

    coalescer = Coalescer(flaky)
    first = asyncio.ensure_future(coalescer.submit(Release("a", "h")))
    await until(lambda: calls == 1)
    second = asyncio.ensure_future(coalescer.submit(Release("b", "h")))
    with pytest.raises(RuntimeError):
        await first
    assert await second == Ok(None)


async def test_a_command_past_its_wait_is_withdrawn_unsent() -> None:
    sender = GatedSender()
    coalescer = Coalescer(sender)
    first = asyncio.ensure_future(coalescer.submit(Release("c0", "h")))
    await until(lambda: len(sender.batches) == 1)
    with pytest.raises(InventoryUnavailable):
        await coalescer.submit(Release("late", "h"), wait_s_max=0.05)
    sender.gate.set()
    await first
    assert all("late" not in batch for batch in sender.batches)
