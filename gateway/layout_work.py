"""Reading and writing a big seating layout runs off the event loop, and boundedly.

A 100,000-seat layout takes seconds of pure Python to read (engine/catalog/layouts.py, layout_csv.py) or to
render, which on the event loop would stall every other request of the process. In a worker thread the loop
keeps serving (the interpreter switches threads every few milliseconds); at most ``layout_jobs_running_max`` run
at once per process, and past ``layout_jobs_max`` running and waiting a request answers 503 with Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import InfrastructureError

layout_jobs_running_max = 1
layout_jobs_max = 8  # running and waiting, per process

T = TypeVar("T")


class LayoutWorkBusy(InfrastructureError):
    code = "layout_work_busy"
    default_message = "too many layouts are being read or written; retry shortly"


class LayoutWork:
    def __init__(self, *, running_max: int = layout_jobs_running_max, jobs_max: int = layout_jobs_max) -> None:
        self._slots = asyncio.Semaphore(running_max)
        self._jobs = 0
        self._jobs_max = jobs_max

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._jobs >= self._jobs_max:
            raise LayoutWorkBusy()
        self._jobs += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._jobs -= 1


LAYOUT_WORK = LayoutWork()
