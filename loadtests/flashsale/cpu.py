"""The CPU the platform spends during a sale: every process on the machine except the harness's own (itself and
its load generators), summed by psutil over the sale's window.

Rates move with a noisy shared machine; the CPU a request costs moves much less, so the report gives it beside
the rates. The platform's processes are not all descendants of `voelgoed up` (Postgres daemonizes), hence
"everything but the harness" rather than "the platform's process tree"; run a benchmark on an otherwise quiet
machine. A process that ends inside the window loses its share; one that starts inside it counts whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

Snapshot = dict[tuple[int, float], float]  # (pid, create time) -> CPU seconds (user + system)


@dataclass
class CpuMeter:
    platform_pid: int | None  # `voelgoed up`, a child of the harness whose tree is the platform's
    _start: Snapshot | None = None

    def start(self) -> None:
        self._start = self._snapshot()

    def seconds(self) -> float:
        """The platform's CPU seconds since ``start``."""
        assert self._start is not None, "start() first"
        end = self._snapshot()
        return sum(cpu - self._start.get(key, 0.0) for key, cpu in end.items())

    def _snapshot(self) -> Snapshot:
        excluded = self._harness_pids()
        snapshot: Snapshot = {}
        for process in psutil.process_iter(["pid", "create_time", "cpu_times"]):
            info = process.info
            times = info.get("cpu_times")
            if info["pid"] in excluded or times is None:
                continue
            snapshot[(info["pid"], info["create_time"])] = times.user + times.system
        return snapshot

    def _harness_pids(self) -> set[int]:
        harness = psutil.Process(os.getpid())
        platform: set[int] = set()
        if self.platform_pid is not None:
            try:
                root = psutil.Process(self.platform_pid)
                platform = {root.pid, *(p.pid for p in root.children(recursive=True))}
            except psutil.NoSuchProcess:
                pass
        return {harness.pid, *(p.pid for p in harness.children(recursive=True))} - platform
