"""A wall clock (actors.clock.Clock) that moves only when the test moves it."""

from __future__ import annotations

import time


class FakeClock:
    """Epoch seconds, starting at ``start`` (by default the real time, so ids and timestamps stay plausible)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a wall clock for expiry only moves forward")
        self._now += seconds
