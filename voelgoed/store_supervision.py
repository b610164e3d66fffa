"""Keeping `voelgoed up`'s embedded Postgres and Redis alive: a store that died is started again, at the same address.

Why: the platform rides out a store outage (the gateway answers 503 meanwhile, its pools and the Ray actors
reconnect by themselves), but nothing brought an embedded store back, so one crash, or one `kill -9` of the
fault-injecting load-test harness, left a local run without a database until it was restarted by hand. Only the
embedded stores are watched: a store given by URL is not ours to restart.

Bounded, like every retry here: at most ``store_restart_attempts_max`` attempts, ``store_restart_backoff_s``
apart, no new attempt after ``store_restart_s_max``; then `up` stops with exit 1 (StoreRestartFailed is a
StartupFailed) instead of serving for ever without its database.

Fault injection: an injector that wants a store to stay down for a while, or Redis to come back empty (data loss),
writes a keep-down file (``keep_down``) before it kills the store. The file is read when the death is seen, so one
that is present while the store lives only applies to its next death.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voelgoed.embedded import EmbeddedPostgres, EmbeddedRedis
from voelgoed.private_files import read_json, write_private_json, write_private_text
from voelgoed.settings import RUNTIME_FILE_NAME
from voelgoed.startup_failure import StartupFailed

POSTGRES = "postgres"
REDIS = "redis"
STORES = (POSTGRES, REDIS)
FAULTS_DIR_NAME = "faults"
supervise_poll_s = 0.5
store_restart_attempts_max = 5
store_restart_backoff_s = 1.0
store_restart_s_max = 60.0  # no attempt starts later than this after the first; one in flight has its own bound
keep_down_s_max = 300.0  # from when the death is seen: a forgotten keep-down file cannot keep a store down for ever
failure_chars_max = 500  # of a failed attempt's error in the log line (Redis's include its log's tail)


class StoreRestartFailed(StartupFailed):
    """An embedded store died and did not come back within the bounds: `up` stops, exit 1."""


# ---- the keep-down file (the functional core, and the functions a fault injector imports)


@dataclass(frozen=True)
class KeepDown:
    down_until_s: float  # unix wall-clock time before which the store stays down
    empty: bool  # Redis only: come back without its data


def keep_down_path(data_dir: Path, store: str) -> Path:
    if store not in STORES:
        raise ValueError(f"unknown store {store!r}: one of {STORES}")
    return data_dir / FAULTS_DIR_NAME / f"{store}.json"


def keep_down(data_dir: Path, store: str, down_s: float, *, empty: bool = False) -> None:
    """Ask the supervisor to leave ``store`` down for ``down_s`` after its next death (write this, then kill).
    empty (Redis only): it then comes back with no data, as after a disk loss."""
    if empty and store != REDIS:
        raise ValueError("only Redis can be asked to come back empty")
    path = keep_down_path(data_dir, store)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private_text(path, json.dumps(keep_down_record(time.time() + down_s, empty=empty)))


def keep_down_record(down_until_s: float, *, empty: bool) -> dict[str, Any]:
    return {"down_until": down_until_s, "empty": empty}


def parse_keep_down(record: Mapping[str, Any]) -> KeepDown | None:
    """None for an absent or malformed file ({} from read_json): the store is then restarted at once."""
    down_until = record.get("down_until")
    if isinstance(down_until, bool) or not isinstance(down_until, int | float):
        return None
    return KeepDown(down_until_s=float(down_until), empty=record.get("empty") is True)


def restart_not_before_s(keep: KeepDown | None, seen_s: float) -> float:
    """Wall-clock time from which a store whose death was seen at seen_s may be restarted."""
    if keep is None:
        return seen_s
    return max(seen_s, min(keep.down_until_s, seen_s + keep_down_s_max))


def may_attempt_again(attempts_made: int, elapsed_s: float) -> bool:
    """Another restart attempt fits both caps (it starts after one more backoff)."""
    return attempts_made < store_restart_attempts_max and elapsed_s + store_restart_backoff_s <= store_restart_s_max


# ---- the shell


@dataclass(frozen=True)
class SupervisedStore:
    """What the supervisor needs of one embedded store; built by ``supervised_postgres`` / ``supervised_redis``."""

    store: str  # POSTGRES or REDIS: its keep-down file and its runtime.json keys
    label: str  # as the log lines name it
    is_alive: Callable[[], bool]
    pid: Callable[[], int | None]
    restart: Callable[[bool], None]  # blocking, bounded; the argument: come back empty
    log: Path

    @property
    def pid_key(self) -> str:
        return f"{self.store}_pid"


def supervised_postgres(postgres: EmbeddedPostgres) -> SupervisedStore:
    return SupervisedStore(
        store=POSTGRES,
        label="Postgres",
        is_alive=postgres.is_alive,
        pid=lambda: postgres.pid,
        restart=lambda _empty: postgres.restart(),  # empty is for Redis; Postgres keeps its data
        log=postgres.log,
    )


def supervised_redis(redis: EmbeddedRedis) -> SupervisedStore:
    return SupervisedStore(
        store=REDIS,
        label="Redis",
        is_alive=redis.is_alive,
        pid=lambda: redis.pid,
        restart=lambda empty: redis.restart(empty=empty),
        log=redis.log,
    )


async def supervise(
    stores: Sequence[SupervisedStore], data_dir: Path, runtime: dict[str, Any], halt: asyncio.Event
) -> None:
    """Watch every store until ``halt`` is set; restart each that dies, and record its new pid in ``runtime``
    (rewriting <data_dir>/runtime.json). Raises StoreRestartFailed for a store that does not come back; the
    others are then halted too (``halt`` is set), each after the attempt it has in flight."""
    watchers = [asyncio.create_task(_watch(store, data_dir, runtime, halt)) for store in stores]
    if not watchers:
        return
    done, pending = await asyncio.wait(watchers, return_when=asyncio.FIRST_EXCEPTION)
    if pending:
        # A restart runs in a thread that cannot be cancelled: the others finish theirs, or `up` would stop a
        # store while it is being started.
        halt.set()
        await asyncio.wait(pending)
    for watcher in done:
        watcher.result()


async def _watch(store: SupervisedStore, data_dir: Path, runtime: dict[str, Any], halt: asyncio.Event) -> None:
    while not halt.is_set():
        if not store.is_alive():
            await _bring_back(store, data_dir, runtime, halt)
        await _pause(halt, supervise_poll_s)


async def _bring_back(store: SupervisedStore, data_dir: Path, runtime: dict[str, Any], halt: asyncio.Event) -> None:
    seen = time.monotonic()
    keep_path = keep_down_path(data_dir, store.store)
    keep = parse_keep_down(read_json(keep_path))
    now_s = time.time()
    hold_s = restart_not_before_s(keep, now_s) - now_s
    died = f"embedded {store.label} died (pid {store.pid()})"
    if hold_s > 0:
        _say(f"{died}; keeping it down for {hold_s:.1f} s, as {keep_path} asks")
        if await _pause(halt, hold_s):
            return
        _say(f"restarting embedded {store.label} (attempt 1 of {store_restart_attempts_max})")
    else:
        _say(f"{died}; restarting it (attempt 1 of {store_restart_attempts_max})")
    if not await _restart_bounded(store, keep is not None and keep.empty, halt):
        return
    keep_path.unlink(missing_ok=True)
    runtime[store.pid_key] = store.pid()
    write_private_json(data_dir / RUNTIME_FILE_NAME, runtime)
    _say(f"embedded {store.label} is back (pid {store.pid()}) after {time.monotonic() - seen:.1f} s")


async def _restart_bounded(store: SupervisedStore, empty: bool, halt: asyncio.Event) -> bool:
    """True once it runs again; False when halted between attempts; StoreRestartFailed when the caps run out."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            await asyncio.to_thread(store.restart, empty)
            return True
        except Exception as error:  # whatever stopped this attempt, the caps decide whether another one comes
            failure = f"{type(error).__name__}: {error}"[-failure_chars_max:]
        elapsed_s = time.monotonic() - started
        if not may_attempt_again(attempts, elapsed_s):
            raise StoreRestartFailed(
                f"embedded {store.label} died and did not come back ({attempts} attempts in {elapsed_s:.1f} s; "
                f"the last failed with {failure}); see {store.log}"
            )
        _say(
            f"restarting embedded {store.label} failed ({failure}); "
            f"retrying in {store_restart_backoff_s:.1f} s (attempt {attempts + 1} of {store_restart_attempts_max})"
        )
        if await _pause(halt, store_restart_backoff_s):
            return False


async def _pause(halt: asyncio.Event, seconds: float) -> bool:
    """Sleep, or less if halted; True when halted."""
    try:
        await asyncio.wait_for(halt.wait(), timeout=max(seconds, 0.0))
    except TimeoutError:
        return False
    return True


def _say(line: str) -> None:
    print(f"voelgoed up: {line}", flush=True)
