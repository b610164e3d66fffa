"""argon2 runs off the event loop, and boundedly: each hash or check holds a core and ~19 MiB for tens of
milliseconds, so a burst of logins (from many addresses, each within its own budget) must neither starve the event
loop nor queue without end. Past ``password_jobs_max`` jobs in a process, a login answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.errors import InfrastructureError

password_jobs_running_max = 2  # the machine's cores: more at once only share them
password_jobs_max = 256  # running and waiting, per process

T = TypeVar("T")


class PasswordChecksBusy(InfrastructureError):
    code = "password_checks_busy"
    default_message = "too many password checks are waiting; retry shortly"


class PasswordWork:
    def __init__(self, *, running_max: int = password_jobs_running_max, jobs_max: int = password_jobs_max) -> None:
        self._slots = asyncio.Semaphore(running_max)
        self._jobs = 0
        self._jobs_max = jobs_max

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        if self._jobs >= self._jobs_max:
            raise PasswordChecksBusy()
        self._jobs += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._jobs -= 1


PASSWORDS = PasswordWork()
