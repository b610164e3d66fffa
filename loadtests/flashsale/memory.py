"""The gateway's resident memory through a sale: its uvicorn master and workers, summed, sampled on a thread.

Queues in the gateway are bounded, so its memory must stay bounded however long a store is away (a Postgres
stall holds requests in flight up to their bounds); the report's ``gateway_rss_mb`` shows it: at the sale's
start, its peak and at the end. Only for a platform the harness started (runtime.json names the gateway's pid).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import psutil

from voelgoed.private_files import read_json
from voelgoed.settings import RUNTIME_FILE_NAME

sample_s = 0.5
stop_wait_s_max = 2.0  # for the sampling thread to end
_MB = 1024 * 1024


class GatewayRss:
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gateway-rss", daemon=True)
        self.samples_mb: list[float] = []

    def start(self) -> None:
        self.samples_mb.append(self._rss_mb())
        self._thread.start()

    def stop(self) -> dict[str, float | None]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(stop_wait_s_max)
        self.samples_mb.append(self._rss_mb())
        return {"start": round(self.samples_mb[0], 1), "max": round(max(self.samples_mb), 1),
                "end": round(self.samples_mb[-1], 1)}

    def _run(self) -> None:
        while not self._stop.wait(sample_s):
            self.samples_mb.append(self._rss_mb())

    def _rss_mb(self) -> float:
        pid = read_json(self._data_dir / RUNTIME_FILE_NAME).get("gateway_pid")
        if not isinstance(pid, int):
            return 0.0
        total = 0
        with contextlib.suppress(psutil.NoSuchProcess):
            master = psutil.Process(pid)
            for process in [master, *master.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss
        return total / _MB
