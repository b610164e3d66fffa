"""Blocking work off the event loop, boundedly: at most ``running_max`` jobs run in worker threads at once, and
past ``jobs_max`` running and waiting a new one is refused at once with the caller's 503 (Retry-After), never
queued without end. Each kind of work (password hashing, layout files) has its own bounds and its own refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import InfrastructureError

T = TypeVar("T")


class ThreadWork:
    def __init__(self, *, running_max: int, jobs_max: int, busy: type[InfrastructureError]) -> None:
        self._slots = asyncio.Semaphore(running_max)
        self._jobs = 0
        self._jobs_max = jobs_max
        self._busy = busy

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._jobs >= self._jobs_max:
            raise self._busy()
        self._jobs += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._jobs -= 1
