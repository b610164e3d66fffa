from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], *, within_s: float = 15.0) -> T:
    """Poll ``probe`` until ``ok`` holds (bounded); returns the last value, which the caller asserts on."""
    deadline = time.monotonic() + within_s
    value = await probe()
    while not ok(value) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        value = await probe()
    return value
