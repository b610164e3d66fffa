"""Kills the sale's inventory actor on a schedule, the way a crashed worker process would go (Ray restarts it).

Runs on a thread of the harness's main process, which joins the platform's Ray cluster only for this. After each
kill it asks the actor to activate the event until it answers: the seconds from the kill to that answer are the
actor's recovery (restart plus rebuild from Postgres and Redis), which the buyers' own latencies cannot show
when they wait in a backlog anyway.
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
recovery_wait_s_max = 60.0
recovery_probe_s_max = 5.0
recovery_poll_s = 0.05


class ActorKiller:
    def __init__(self, ray_address: str, namespace: str, org_id: str, event_id: str, every_s: float) -> None:
        self._address, self._namespace = ray_address, namespace
        self._name = dedicated_name(org_id, event_id)  # the harness's events are dedicated: one actor each
        self._org_id, self._event_id = org_id, event_id
        self._every_s, self._t0 = every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="actor-killer", daemon=True)
        self.kills_s: list[float] = []
        self.failures: list[str] = []
        # per kill, unless the sale ended while waiting; None when the actor did not answer within the bound.
        # The next kill waits for this answer: a slot that passes meanwhile is skipped.
        self.recoveries_s: list[float | None] = []

    def connect(self) -> None:
        """Joins the cluster: done before the generators start, so a failure leaves nothing running."""
        os.environ.update(RAY_ENV)
        ray.init(address=self._address, namespace=self._namespace, log_to_driver=False, ignore_reinit_error=True)

    def start(self, t0: float) -> None:
        """Kills every ``every_s`` from ``t0`` (the sale's start, time.monotonic()) on."""
        self._t0 = t0
        self._thread.start()

    def kill_once(self) -> float | None:
        """One kill now (the fault injector's actor-kill, loadtests/flashsale/injector.py): the seconds until the
        actor answered again; None when the kill failed or it never did."""
        kills = len(self.kills_s)
        self._kill_once()
        if len(self.kills_s) == kills or len(self.recoveries_s) < len(self.kills_s):
            return None
        return self.recoveries_s[-1]

    def timed_from(self, t0: float) -> None:
        """Kill times count from ``t0`` (the sale's start) without a schedule of its own (``kill_once`` only)."""
        self._t0 = t0

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(kill_call_s_max * 2)
        if not self._thread.is_alive():  # a thread stuck in a Ray call keeps Ray; the process exit ends both
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
            killed_wall = time.time()
            ray.kill(handle, no_restart=False)
            killed = time.monotonic()
            self.kills_s.append(killed - self._t0)
        except Exception as error:  # a kill that failed is reported (and fails the audit); the sale goes on
            self.failures.append(f"{type(error).__name__}: {error}")
            log.warning("killing %s failed: %s", self._name, error)
            return
        recovered = self._await_recovery(handle, killed, killed_wall)
        if recovered is not None or not self._stop.is_set():  # a wait cut short by the sale's end says nothing
            self.recoveries_s.append(recovered)

    def _await_recovery(self, handle: object, killed: float, killed_wall: float) -> float | None:
        """Seconds from the kill until an incarnation started after it has the event open again (the old one may
        still answer for a moment: ray.kill takes effect asynchronously); None past the bound."""
        deadline = killed + recovery_wait_s_max
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                activate = handle.activate  # type: ignore[attr-defined]
                if self._started_at(handle) > killed_wall and ray.get(
                    activate.remote(self._org_id, self._event_id), timeout=recovery_probe_s_max
                ):
                    return round(time.monotonic() - killed, 3)
            except Exception:  # still restarting: ask again
                pass
            time.sleep(recovery_poll_s)
        return None

    @staticmethod
    def _started_at(handle: object) -> float:
        """When the answering incarnation started (wall clock, this machine); 0 when none answers."""
        try:
            ping = handle.ping  # type: ignore[attr-defined]
            return float(ray.get(ping.remote(), timeout=recovery_probe_s_max)["started_at"])
        except Exception:  # dead or restarting
            return 0.0
