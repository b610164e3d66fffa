"""The wall clock the actor shells read: injected, so tests move time instead of sleeping through it.

The core never reads a clock (engine/ takes ``now`` as an argument); the shells read this one, epoch seconds, and
hand it in. Hold expiry compares against it, so it must be the same epoch clock every shell of an event uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]  # epoch seconds

wall_clock: Clock = time.time
