"""Kills the sale's inventory actor on a schedule, the way a crashed worker process would go (Ray restarts it).

Runs on a thread of the harness's main process, which joins the platform's Ray cluster only for this.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import ray

from actors.placement import dedicated_name
from voelgoed.embedded import RAY_ENV

log = logging.getLogger(__name__)

kill_call_s_max = 10.0


class ActorKiller:
    def __init__(self, ray_address: str, namespace: str, org_id: str, event_id: str, every_s: float,
                 t0: float) -> None:
        self._address, self._namespace = ray_address, namespace
        self._name = dedicated_name(org_id, event_id)  # the harness's events are dedicated: one actor each
        self._every_s, self._t0 = every_s, t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actor-killer", daemon=True)
        self.kills_s: list[float] = []
        self.failures: list[str] = []

    def start(self) -> None:
        os.environ.update(RAY_ENV)
        ray.init(address=self._address, namespace=self._namespace, log_to_driver=False, ignore_reinit_error=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(kill_call_s_max * 2)
        ray.shutdown()

    def _run(self) -> None:
        due = self._t0 + self._every_s
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            self._kill_once()
            # a kill that overran its slot skips the slots it missed rather than firing them back to back
            missed = max(0.0, time.monotonic() - due) // self._every_s
            due += self._every_s * (1 + missed)

    def _kill_once(self) -> None:
        try:
            handle = ray.get_actor(self._name, namespace=self._namespace)
            ray.kill(handle, no_restart=False)
            self.kills_s.append(time.monotonic() - self._t0)
        except Exception as error:  # a kill that failed is reported (and fails the audit); the sale goes on
            self.failures.append(f"{type(error).__name__}: {error}")
            log.warning("killing %s failed: %s", self._name, error)
