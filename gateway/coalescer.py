"""Request coalescing: one queue per event, at most one actor call in flight per event per process.

When no batch is in flight a command goes at once; otherwise it waits and goes with the others when the in-flight
batch returns (up to ``batch_commands_max`` per call), after lingering ``batch_linger_s`` while commands are
still arriving, since each actor call costs milliseconds of CPU whatever its size. The queue is bounded: when
full, the caller gets InventoryBusy (503 + Retry-After) and nothing is applied. A command waits at most
``submit_wait_s_max``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from engine import limits
from engine.commands import Command, Result
from gateway.errors import InventoryBusy, InventoryUnavailable
from gateway.metrics import BATCH_COMMANDS, QUEUE_DEPTH

queue_commands_max = 20_000
submit_wait_s_max = 30.0
batch_linger_s = 0.003  # measured: 2,776 vs 2,257 holds/s with 0 (wrk, 64 connections, one run each)
batch_commands_max = 2_048
assert batch_commands_max <= limits.batch_commands_max

SendBatch = Callable[[Sequence[Command]], Awaitable[list[Result]]]


class Coalescer:
    def __init__(
        self, send: SendBatch, *, queue_max: int = queue_commands_max, batch_max: int = batch_commands_max
    ) -> None:
        self._send = send
        self._queue_max = queue_max
        self._batch_max = batch_max
        self._waiting: list[tuple[Command, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return len(self._waiting)

    @property
    def idle(self) -> bool:
        return not self._waiting and (self._drainer is None or self._drainer.done())

    async def submit(self, command: Command, wait_s_max: float = submit_wait_s_max) -> Result:
        """The command's result. Past ``wait_s_max`` (or if the caller goes away) a command still queued is
        withdrawn, so nothing is applied; one already sent may still apply, which its id makes safe to retry."""
        if len(self._waiting) >= self._queue_max:
            raise InventoryBusy()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        entry = (command, future)
        self._waiting.append(entry)
        QUEUE_DEPTH.inc()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        try:
            async with asyncio.timeout(wait_s_max):
                return await future
        except TimeoutError:
            self._withdraw(entry)
            raise InventoryUnavailable() from None
        except asyncio.CancelledError:
            self._withdraw(entry)
            raise

    def _withdraw(self, entry: tuple[Command, asyncio.Future[Result]]) -> None:
        # O(1): the entry stays queued with its future cancelled, and the drain skips it unsent.
        entry[1].cancel()

    async def _drain(self) -> None:
        while self._waiting:
            taken = self._waiting[: self._batch_max]
            del self._waiting[: self._batch_max]
            QUEUE_DEPTH.dec(len(taken))
            batch = [entry for entry in taken if not entry[1].done()]
            if not batch:
                continue
            BATCH_COMMANDS.observe(len(batch))
            try:
                results = await self._send([command for command, _ in batch])
            except Exception as error:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
            if self._waiting and len(self._waiting) < self._batch_max:
                # Under load, let the next batch fill a little: an actor call costs milliseconds of CPU on both
                # sides whatever its size, so fewer, fuller calls leave more CPU for requests.
                await asyncio.sleep(batch_linger_s)
