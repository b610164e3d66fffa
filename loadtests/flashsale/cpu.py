"""The CPU the platform spends during a sale: every process on the machine except the harness's own (itself and
its load generators), summed by psutil over the sale's window.

Rates move with a noisy shared machine; the CPU a request costs moves much less, so the report gives it beside
the rates. The platform's processes are not all descendants of `voelgoed up` (Postgres daemonizes), hence
"everything but the harness" rather than "the platform's process tree"; run a benchmark on an otherwise quiet
machine. A process that ends inside the window loses its share; one that starts inside it counts whole.

``seconds_by_role`` splits the same sum by what each process is (``role_of``: the gateway's workers, each Ray
actor class, Postgres, Redis, the payment simulator, Ray's own daemons), so a report says where the CPU went.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import psutil

Snapshot = dict[tuple[int, float], tuple[str, float]]  # (pid, create time) -> (role, CPU seconds: user + system)

_RAY_DAEMONS = {"raylet": "ray:raylet", "gcs_server": "ray:gcs"}
_PYTHON_ROLES = (  # a mark in a Python process's command line -> its role; the first that matches
    ("uvicorn", "gateway"), ("gateway", "gateway"), ("paysim", "paysim"), ("voelgoed.cli", "voelgoed-up"),
    ("dashboard", "ray:dashboard"), ("log_monitor", "ray:daemons"), ("monitor.py", "ray:daemons"),
    ("ray/_private", "ray:daemons"), ("runtime_env", "ray:daemons"),
    ("multiprocessing", "gateway"),  # uvicorn's spawned workers: last, after Ray's own spawned processes
)


def role_of(name: str, cmdline: Sequence[str]) -> str:
    """What a process is, from its name and command line: ``ray::<actor class>`` for a Ray worker (by its
    process title, ``ray::IDLE`` when it holds no actor), ``postgres``, ``redis``, ``gateway``, ``paysim``,
    Ray's daemons, else ``other:<name>``."""
    title = cmdline[0] if cmdline else name
    if title.startswith("ray::"):
        return title.split(".", 1)[0].split(" ", 1)[0]
    if name in ("postgres", "postmaster") or title.startswith("postgres"):
        return "postgres"
    if name.startswith("redis-server") or "redis-server" in title:
        return "redis"
    if name in _RAY_DAEMONS:
        return _RAY_DAEMONS[name]
    line = " ".join(cmdline)
    if name.startswith("python") or "python" in title:
        for mark, role in _PYTHON_ROLES:
            if mark in line:
                return role
    return f"other:{name}"


@dataclass
class CpuMeter:
    platform_pid: int | None  # `voelgoed up`, a child of the harness whose tree is the platform's
    _start: Snapshot | None = None

    def start(self) -> None:
        self._start = self._snapshot()

    def seconds(self) -> float:
        """The platform's CPU seconds since ``start``."""
        assert self._start is not None, "start() first"
        return sum(self.seconds_by_role().values())

    def seconds_by_role(self) -> dict[str, float]:
        """The same CPU seconds by ``role_of`` each process (its role at the end of the window)."""
        assert self._start is not None, "start() first"
        by_role: dict[str, float] = defaultdict(float)
        for key, (role, cpu) in self._snapshot().items():
            by_role[role] += cpu - self._start.get(key, ("", 0.0))[1]
        return dict(by_role)

    def _snapshot(self) -> Snapshot:
        excluded = self._harness_pids()
        snapshot: Snapshot = {}
        for process in psutil.process_iter(["pid", "create_time", "cpu_times", "name", "cmdline"]):
            info = process.info
            times = info.get("cpu_times")
            if info["pid"] in excluded or times is None:
                continue
            role = role_of(info.get("name") or "", info.get("cmdline") or ())
            snapshot[(info["pid"], info["create_time"])] = (role, times.user + times.system)
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
