"""`voelgoed up`'s store supervision on real processes: an embedded Postgres or Redis killed with SIGKILL comes back
at the same address with its data (or empty, when a keep-down file asks), runtime.json names the new pid, and a
store that cannot be restarted ends supervision with StoreRestartFailed after the attempt cap."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import redis

from tests.bounded_wait import until
from voelgoed import embedded, store_supervision
from voelgoed.private_files import read_json
from voelgoed.settings import RUNTIME_FILE_NAME

back_s_max = 30.0  # a kill seen within 0.5 s, Postgres' crash recovery, and slack for a loaded machine


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Under /tmp, not pytest's tmp_path: Postgres' system user must traverse every parent folder."""
    path = Path(tempfile.mkdtemp(prefix="vg-sup-", dir=embedded.RAY_TEMP_ROOT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def postgres(short_tmp: Path) -> Iterator[embedded.EmbeddedPostgres]:
    server = embedded.EmbeddedPostgres.start(short_tmp / "pg")
    yield server
    server.stop()


@pytest.fixture
def redis_server(short_tmp: Path) -> Iterator[embedded.EmbeddedRedis]:
    server = embedded.EmbeddedRedis.start(short_tmp / "redis", append_only=True)
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def supervising(
    stores: list[store_supervision.SupervisedStore], data_dir: Path, runtime: dict[str, Any]
) -> AsyncIterator[asyncio.Task[None]]:
    halt = asyncio.Event()
    task = asyncio.create_task(store_supervision.supervise(stores, data_dir, runtime, halt))
    try:
        yield task
    finally:
        halt.set()
        await asyncio.wait_for(asyncio.wait([task]), timeout=back_s_max)


def kill_with_children(pid: int) -> list[int]:
    """SIGKILL a process and everything under it, the parent first so it starts nothing new."""
    process = psutil.Process(pid)
    children = process.children(recursive=True)
    for victim in (process, *children):
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.kill()
    return [pid, *(child.pid for child in children)]


def runtime_pid(data_dir: Path, key: str) -> object:
    return read_json(data_dir / RUNTIME_FILE_NAME).get(key)


async def test_a_killed_postgres_comes_back_with_its_committed_rows(
    postgres: embedded.EmbeddedPostgres, short_tmp: Path
) -> None:
    conn = await asyncpg.connect(postgres.url)
    await conn.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('committed before the kill')")
    await conn.close()
    first_pid = postgres.pid
    assert first_pid is not None
    runtime: dict[str, Any] = {"postgres_pid": first_pid}

    async with supervising([store_supervision.supervised_postgres(postgres)], short_tmp, runtime):
        killed = kill_with_children(first_pid)
        assert len(killed) > 1  # the backends (checkpointer, writer, ...) died too
        await until(lambda: runtime_pid(short_tmp, "postgres_pid") not in (None, first_pid), within_s=back_s_max)

    new_pid = postgres.pid
    assert new_pid != first_pid
    assert runtime_pid(short_tmp, "postgres_pid") == new_pid
    assert postgres.is_alive()
    conn = await asyncpg.connect(postgres.url)  # the same URL: the socket is back in pgdata
    try:
        assert await conn.fetchval("SELECT value FROM kept") == "committed before the kill"
    finally:
        await conn.close()


async def test_redis_kept_down_then_back_empty_on_the_same_port(
    redis_server: embedded.EmbeddedRedis, short_tmp: Path
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("lost", "on purpose")
    first_pid, port = redis_server.pid, redis_server.port
    runtime: dict[str, Any] = {"redis_pid": first_pid}
    keep_path = store_supervision.keep_down_path(short_tmp, store_supervision.REDIS)

    async with supervising([store_supervision.supervised_redis(redis_server)], short_tmp, runtime):
        store_supervision.keep_down(short_tmp, store_supervision.REDIS, 1.0, empty=True)
        down_until = store_supervision.parse_keep_down(read_json(keep_path))
        assert down_until is not None
        os.kill(first_pid, signal.SIGKILL)
        while time.time() < down_until.down_until_s - 0.05:
            assert redis_server.pid == first_pid, "restarted before the keep-down file allowed it"
            await asyncio.sleep(0.05)
        await until(lambda: runtime_pid(short_tmp, "redis_pid") not in (None, first_pid), within_s=back_s_max)

    try:
        assert redis_server.port == port
        assert redis_server.pid == runtime_pid(short_tmp, "redis_pid")
        assert client.ping()  # the old client reconnects to the same URL
        assert client.get("lost") is None
        assert client.dbsize() == 0
        assert not keep_path.exists()
    finally:
        client.close()


async def test_redis_killed_without_a_keep_down_file_comes_back_with_its_data(
    redis_server: embedded.EmbeddedRedis, short_tmp: Path
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.set("kept", "through the kill")
    # redis-server writes the append-only file before it replies, and a SIGKILL loses nothing the kernel was
    # given (fsync matters only for a machine crash): the key is on disk now, which this checks rather than trusts.
    assert b"through the kill" in (redis_server.directory / "appendonly.aof").read_bytes()
    first_pid = redis_server.pid
    runtime: dict[str, Any] = {"redis_pid": first_pid}

    async with supervising([store_supervision.supervised_redis(redis_server)], short_tmp, runtime):
        os.kill(first_pid, signal.SIGKILL)
        await until(lambda: runtime_pid(short_tmp, "redis_pid") not in (None, first_pid), within_s=back_s_max)

    try:
        assert client.get("kept") == b"through the kill"
    finally:
        client.close()


async def test_a_store_that_cannot_be_restarted_ends_supervision_after_the_attempt_cap(
    redis_server: embedded.EmbeddedRedis,
    postgres: embedded.EmbeddedPostgres,
    short_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[bool] = []

    def refuse(self: embedded.EmbeddedRedis, *, empty: bool) -> None:
        attempts.append(empty)
        raise RuntimeError("port taken, say")

    monkeypatch.setattr(embedded.EmbeddedRedis, "restart", refuse)
    monkeypatch.setattr(store_supervision, "store_restart_attempts_max", 3)
    monkeypatch.setattr(store_supervision, "store_restart_backoff_s", 0.05)
    halt = asyncio.Event()
    supervisor = asyncio.create_task(
        store_supervision.supervise(
            [store_supervision.supervised_postgres(postgres), store_supervision.supervised_redis(redis_server)],
            short_tmp, {}, halt,
        )
    )  # fmt: skip
    os.kill(redis_server.pid, signal.SIGKILL)

    with pytest.raises(store_supervision.StoreRestartFailed, match=r"Redis died and did not come back \(3 attempts"):
        await asyncio.wait_for(supervisor, timeout=back_s_max)
    assert attempts == [False, False, False]
    assert halt.is_set(), "the healthy store's watcher was halted too, so supervision ended as a whole"
    assert postgres.is_alive()
