"""argon2 jobs run off the loop and are bounded: past the cap a login answers 503 at once instead of queueing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.password_work import PasswordChecksBusy
from gateway.thread_work import ThreadWork
from tests.bounded_wait import until


async def test_jobs_past_the_cap_are_refused_and_the_count_comes_back() -> None:
    started, release = threading.Event(), threading.Event()

    def runs_until_released() -> bool:
        started.set()
        return release.wait(5.0)

    work = ThreadWork(running_max=1, jobs_max=2, busy=PasswordChecksBusy)
    first = asyncio.ensure_future(work.run(runs_until_released))
    second = asyncio.ensure_future(work.run(lambda: "queued"))
    # Both tasks take their first step before this test resumes (they were scheduled first): once the first job
    # runs, the second is waiting for the slot, so the cap is reached.
    await until(started.is_set)
    with pytest.raises(PasswordChecksBusy) as busy:
        await work.run(lambda: "refused")
    assert busy.value.status == 503 and busy.value.headers["Retry-After"]
    release.set()
    assert await first is True and await second == "queued"

    def fails() -> None:
        raise ValueError("argon2 said no")

    for _ in range(3):  # a failing job gives its place back
        with pytest.raises(ValueError):
            await work.run(fails)
    assert await work.run(lambda: 7) == 7
