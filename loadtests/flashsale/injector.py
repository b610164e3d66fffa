"""Carries a fault schedule (loadtests/flashsale/faults.py) out against the processes the harness started.

Runs on a thread of the harness's main process, one fault at a time in schedule order, each at its time after
the sale's start. What it breaks it finds through the platform's runtime.json (the pids `voelgoed up` wrote:
Postgres, Redis, the gateway's uvicorn master, the simulator) and it never touches anything else. After each
fault it waits (bounded) for the target to answer again, so the report can say when it came back:
Postgres by a new connection and `SELECT 1`, Redis by PING, the gateway by its worker count, the simulator by
its stats route, the actor by ActorKiller's own probe.

A dead embedded store is restarted by `voelgoed up` (voelgoed/store_supervision.py); the injector writes the
store's keep-down file before the kill, so the restart comes D seconds later (and, for redis-wipe, empty).
A stalled (SIGSTOPped) process is always continued, also when the sale is interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import redis

from loadtests.flashsale import faults as f
from loadtests.flashsale.faults import Fault, Injected
from voelgoed import store_supervision
from voelgoed.private_files import read_json
from voelgoed.settings import RUNTIME_FILE_NAME

log = logging.getLogger(__name__)

back_wait_s_max = 60.0  # a target not answering by then is reported as never back (the audit fails the run)
probe_s_max = 1.0
probe_poll_s = 0.05
probes_max = int(back_wait_s_max / probe_poll_s)  # with the time cap: each probe may itself take probe_s_max
join_slack_s = 10.0  # stop()'s wait for a fault under way, past its longest stall and back-wait
http_s_max = 5.0
_GATEWAY_WORKER_MARK = "spawn_main"


class Injector:
    def __init__(self, plan: tuple[Fault, ...], data_dir: Path, database_url: str, redis_url: str, paysim_url: str,
                 actor_kill: Callable[[], float | None] | None, seed: int) -> None:
        self._plan, self._data_dir = plan, data_dir
        self._database_url, self._redis_url, self._paysim_url = database_url, redis_url, paysim_url
        self._actor_kill = actor_kill  # kills the event's actor, returns its recovery seconds (None: never)
        self._rng = random.Random(seed)  # which gateway worker: replayed with the schedule
        self._t0 = 0.0
        self._stop = threading.Event()
        self._stopped: list[psutil.Process] = []  # SIGSTOPped and not yet continued
        self._want_workers = 0  # the gateway's worker count before a gateway-kill: whole again at that count
        self._victims: set[int] = set()  # gateway workers killed (a pid not to count as a worker again)
        self._thread = threading.Thread(target=self._run, name="fault-injector", daemon=True)
        self.injected = [Injected(fault) for fault in plan]

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread.start()

    def stop(self) -> None:
        """The sale has ended: faults not yet due are skipped; a fault under way finishes (bounded)."""
        self._stop.set()
        try:
            if self._thread.is_alive():
                self._thread.join(back_wait_s_max + f.fault_duration_s_max + join_slack_s)
        finally:  # whatever interrupts the wait, nothing the injector stopped stays stopped
            self._continue_stopped()

    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _run(self) -> None:
        for injected in self.injected:
            if self._stop.wait(max(0.0, injected.fault.at_s - self._now())):
                return
            try:
                self._inject(injected)
            except Exception as error:  # reported (and failing the audit); the sale goes on
                injected.failure = f"{type(error).__name__}: {error}"
                log.warning("fault %s failed: %s", injected.fault, error)
            finally:
                self._continue_stopped()

    def _inject(self, injected: Injected) -> None:
        kind, duration_s = injected.fault.kind, injected.fault.duration_s
        if kind in (f.POSTGRES_KILL, f.REDIS_KILL, f.REDIS_WIPE):
            store = store_supervision.POSTGRES if kind == f.POSTGRES_KILL else store_supervision.REDIS
            store_supervision.keep_down(self._data_dir, store, duration_s, empty=kind == f.REDIS_WIPE)
            try:
                self._signal_store(store, signal.SIGKILL)
            except BaseException:  # not killed: the file must not act on the store's next, real, death
                store_supervision.keep_down_path(self._data_dir, store).unlink(missing_ok=True)
                raise
            injected.started_s = self._now()
            injected.ended_s = injected.started_s + duration_s
        elif kind in (f.POSTGRES_STALL, f.PAYSIM_DOWN):
            self._stall(injected, self._postgres_processes if kind == f.POSTGRES_STALL else self._paysim_processes)
        elif kind == f.GATEWAY_KILL:
            self._kill_gateway_worker(injected)
        elif kind == f.ACTOR_KILL:
            self._kill_actor(injected)
            return
        else:
            self._slow_paysim(injected)
        injected.back_s = self._wait_back(kind, injected)

    # ---- the targets ------------------------------------------------------------------------------------------

    def _runtime(self) -> dict[str, Any]:
        return read_json(self._data_dir / RUNTIME_FILE_NAME)

    def _postgres_processes(self) -> list[psutil.Process]:
        pid = self._runtime().get("postgres_pid")
        assert isinstance(pid, int), "runtime.json names no postgres_pid: not an embedded Postgres"
        postmaster = psutil.Process(pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def _redis_processes(self) -> list[psutil.Process]:
        pid = self._runtime().get("redis_pid")
        assert isinstance(pid, int), "runtime.json names no redis_pid: not an embedded Redis"
        return [psutil.Process(pid)]

    def _paysim_processes(self) -> list[psutil.Process]:
        pid = self._runtime().get("paysim_pid")
        assert isinstance(pid, int), "runtime.json names no paysim_pid"
        return [psutil.Process(pid)]

    def _gateway_workers(self) -> list[psutil.Process]:
        pid = self._runtime().get("gateway_pid")
        assert isinstance(pid, int), "runtime.json names no gateway_pid"
        return [p for p in psutil.Process(pid).children()
                if _GATEWAY_WORKER_MARK in " ".join(_cmdline(p))]

    def _signal_store(self, store: str, signum: signal.Signals) -> None:
        processes = self._postgres_processes() if store == store_supervision.POSTGRES else self._redis_processes()
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)

    # ---- the faults -------------------------------------------------------------------------------------------

    def _stall(self, injected: Injected, processes: Callable[[], list[psutil.Process]]) -> None:
        stalled = processes()
        for process in stalled:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.suspend()
                self._stopped.append(process)
        injected.started_s = self._now()
        time.sleep(injected.fault.duration_s)  # not cut short by the sale's end: the stall is the fault
        self._continue_stopped()
        injected.ended_s = self._now()

    def _continue_stopped(self) -> None:
        while self._stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._stopped.pop().resume()

    def _kill_gateway_worker(self, injected: Injected) -> None:
        workers = self._gateway_workers()
        assert workers, "the gateway has no worker processes to kill"
        self._want_workers = len(workers)
        victim = sorted(workers, key=lambda p: p.pid)[self._rng.randrange(len(workers))]
        victim.kill()
        with contextlib.suppress(psutil.TimeoutExpired):
            victim.wait(probe_s_max)  # gone before the worker count is probed: its successor is what counts
        self._victims.add(victim.pid)
        injected.started_s = injected.ended_s = self._now()
        injected.notes.append(f"killed gateway worker pid {victim.pid} of {len(workers)}")

    def _kill_actor(self, injected: Injected) -> None:
        assert self._actor_kill is not None, "actor-kill needs the platform's Ray (engine mode)"
        injected.started_s = injected.ended_s = self._now()
        recovery_s = self._actor_kill()
        injected.back_s = None if recovery_s is None else injected.started_s + recovery_s

    def _slow_paysim(self, injected: Injected) -> None:
        field = "response_delay_s" if injected.fault.kind == f.PAYSIM_SLOW else "webhook_delay_s"
        delay_s = f.paysim_slow_s if injected.fault.kind == f.PAYSIM_SLOW else f.paysim_late_s
        self._paysim_faults({field: delay_s})
        injected.started_s = self._now()
        try:
            time.sleep(injected.fault.duration_s)
        finally:
            self._paysim_faults({field: 0.0})
        injected.ended_s = self._now()

    def _paysim_faults(self, changes: dict[str, float]) -> None:
        answer = httpx.post(f"{self._paysim_url}/_sim/faults", json=changes, timeout=http_s_max + f.paysim_slow_s)
        answer.raise_for_status()

    # ---- back again -------------------------------------------------------------------------------------------

    def _wait_back(self, kind: str, injected: Injected) -> float | None:
        """When the target answered again: probed from the end of the fault's D (a restart allowed, SIGCONT) for
        at most ``back_wait_s_max``; None when it never did."""
        probe = {f.POSTGRES_KILL: self._postgres_answers, f.POSTGRES_STALL: self._postgres_answers,
                 f.REDIS_KILL: self._redis_answers, f.REDIS_WIPE: self._redis_answers,
                 f.GATEWAY_KILL: self._gateway_whole}.get(kind, self._paysim_answers)
        ended_s = injected.ended_s if injected.ended_s is not None else self._now()
        deadline = self._t0 + ended_s + back_wait_s_max
        for _ in range(probes_max):
            if time.monotonic() >= deadline:
                break
            with contextlib.suppress(Exception):
                if probe():
                    return self._now()
            time.sleep(probe_poll_s)
        return None

    def _postgres_answers(self) -> bool:
        async def probe() -> bool:
            conn = await asyncpg.connect(self._database_url, timeout=probe_s_max)
            try:
                return bool(await conn.fetchval("SELECT 1", timeout=probe_s_max) == 1)
            finally:
                await conn.close(timeout=probe_s_max)

        return asyncio.run(probe())

    def _redis_answers(self) -> bool:
        client = redis.Redis.from_url(self._redis_url, socket_timeout=probe_s_max, socket_connect_timeout=probe_s_max)
        try:
            return bool(client.ping())
        finally:
            client.close()

    def _gateway_whole(self) -> bool:
        workers = [p for p in self._gateway_workers() if p.pid not in self._victims]
        return len(workers) >= self._want_workers

    def _paysim_answers(self) -> bool:
        return httpx.get(f"{self._paysim_url}/_sim/stats", timeout=probe_s_max).status_code == 200


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []
