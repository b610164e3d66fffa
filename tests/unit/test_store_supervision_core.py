"""The pure parts of store supervision: the keep-down file's format and reading, the keep-down cap, the restart
caps; and `up`'s serving loop ending with exit-1 material (StartupFailed) when a store is lost."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from pathlib import Path
from typing import Any, cast

import pytest

from voelgoed import store_supervision, up
from voelgoed.startup_failure import StartupFailed
from voelgoed.store_supervision import KeepDown, keep_down_s_max, parse_keep_down, restart_not_before_s


def test_keep_down_writes_the_documented_format_for_this_user_only(tmp_path: Path) -> None:
    before = time.time()
    store_supervision.keep_down(tmp_path, store_supervision.REDIS, 2.5, empty=True)
    path = tmp_path / "faults" / "redis.json"
    assert store_supervision.keep_down_path(tmp_path, store_supervision.REDIS) == path
    record = json.loads(path.read_text())
    assert set(record) == {"down_until", "empty"}
    assert before + 2.5 <= record["down_until"] <= time.time() + 2.5
    assert record["empty"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert parse_keep_down(record) == KeepDown(down_until_s=record["down_until"], empty=True)


def test_keep_down_refuses_unknown_stores_and_an_empty_postgres(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown store"):
        store_supervision.keep_down_path(tmp_path, "mysql")
    with pytest.raises(ValueError, match="only Redis"):
        store_supervision.keep_down(tmp_path, store_supervision.POSTGRES, 1.0, empty=True)
    assert not (tmp_path / "faults" / "postgres.json").exists()


@pytest.mark.parametrize(
    "record",
    [{}, {"down_until": "soon"}, {"down_until": True}, {"down_until": None}, {"empty": True}],
)
def test_a_malformed_keep_down_file_is_no_keep_down(record: dict[str, Any]) -> None:
    assert parse_keep_down(record) is None


def test_empty_is_true_only_when_it_says_true() -> None:
    assert parse_keep_down({"down_until": 5}) == KeepDown(5.0, empty=False)
    assert parse_keep_down({"down_until": 5, "empty": "yes"}) == KeepDown(5.0, empty=False)


def test_the_keep_down_time_is_capped_from_when_the_death_was_seen() -> None:
    seen = 1_000.0
    assert restart_not_before_s(None, seen) == seen
    assert restart_not_before_s(KeepDown(seen + 3.0, empty=False), seen) == seen + 3.0
    assert restart_not_before_s(KeepDown(seen - 3.0, empty=False), seen) == seen  # already past: at once
    stale = KeepDown(seen + 10 * keep_down_s_max, empty=False)
    assert restart_not_before_s(stale, seen) == seen + keep_down_s_max


def test_restart_attempts_stop_at_the_attempt_cap_and_at_the_time_cap() -> None:
    attempts_max = store_supervision.store_restart_attempts_max
    assert store_supervision.may_attempt_again(1, 0.0)
    assert not store_supervision.may_attempt_again(attempts_max, 0.0)
    late = store_supervision.store_restart_s_max - store_supervision.store_restart_backoff_s + 0.1
    assert not store_supervision.may_attempt_again(1, late)


class _RunningGateway:
    returncode = None

    def poll(self) -> int | None:
        return None


async def test_up_stops_serving_with_a_startup_failure_when_a_store_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_supervision, "store_restart_backoff_s", 0.0)
    monkeypatch.setattr(store_supervision, "supervise_poll_s", 0.01)
    monkeypatch.setattr(up, "serve_poll_s", 0.01)

    def refuse(_empty: bool) -> None:
        raise RuntimeError("no")

    dead = store_supervision.SupervisedStore(
        store=store_supervision.REDIS, label="Redis", is_alive=lambda: False, pid=lambda: 1,
        restart=refuse, log=tmp_path / "redis.log",
    )  # fmt: skip
    gateway = cast("Any", _RunningGateway())

    with pytest.raises(StartupFailed, match="Redis died and did not come back"):
        await asyncio.wait_for(up._serve_until_stopped(gateway, asyncio.Event(), tmp_path, [dead], {}), timeout=5.0)
