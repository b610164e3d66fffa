"""Waiting for a state of this process (a stand-in called, a queue filled) instead of sleeping a guessed while:
the test neither passes vacuously on a slow machine nor hangs when the state never comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

state_wait_s_max = 5.0
state_poll_s = 0.001


async def until(condition: Callable[[], bool], *, within_s: float = state_wait_s_max) -> None:
    """Return once ``condition()`` holds; AssertionError if it still does not after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not the case after {within_s} s: {condition}")
        await asyncio.sleep(state_poll_s)
