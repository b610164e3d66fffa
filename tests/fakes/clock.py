"""A clock that moves only when the test moves it: the actor shells' wall clock (actors.clock.Clock), or a
monotonic timer (the gateway caches' TTLs)."""

from __future__ import annotations

import time


class FakeClock:
    """Seconds, starting at ``start`` (by default the real epoch time, so ids and timestamps stay plausible)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock for expiry only moves forward")
        self._now += seconds
