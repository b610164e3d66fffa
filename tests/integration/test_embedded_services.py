"""The embedded services `make up` and the suite run on: each starts, answers, keeps its data, and stops
without leaving a process behind."""

from __future__ import annotations

import json
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from gateway.routes.catalog.models import EventCreate
from voelgoed import embedded
from voelgoed.demo import demo_event_body
from voelgoed.private_files import read_json, write_private_json


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """Under /tmp, not pytest's tmp_path: Postgres' system user must traverse every parent folder."""
    path = Path(tempfile.mkdtemp(prefix="vg-embedded-", dir=embedded.RAY_TEMP_ROOT))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _accepts_tcp(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((embedded.LOCALHOST, port)) == 0


async def test_postgres_answers_keeps_its_data_across_restarts_and_stops(short_tmp: Path) -> None:
    server = embedded.EmbeddedPostgres.start(short_tmp / "pg")
    try:
        conn = await asyncpg.connect(server.url)
        await conn.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')")
        assert int(await conn.fetchval("SHOW max_connections")) >= embedded.postgres_connections_max
        await conn.close()
    finally:
        server.stop()
    first_pid = server.pid
    assert first_pid is None or _gone(first_pid)

    again = embedded.EmbeddedPostgres.start(short_tmp / "pg")
    pid = again.pid
    try:
        conn = await asyncpg.connect(again.url)
        assert await conn.fetchval("SELECT value FROM kept") == "still here"
        await conn.close()
    finally:
        again.stop()
    assert pid is not None and _gone(pid)


def test_redis_answers_keeps_its_data_across_restarts_and_stops(short_tmp: Path) -> None:
    server = embedded.EmbeddedRedis.start(short_tmp / "redis", append_only=True)
    assert server.port != 6379
    client = redis.Redis.from_url(server.url)
    client.set("kept", "still here")
    client.close()
    server.stop()
    assert _gone(server.pid)
    assert not _accepts_tcp(server.port)

    again = embedded.EmbeddedRedis.start(short_tmp / "redis", append_only=True)
    try:
        client = redis.Redis.from_url(again.url)
        assert client.get("kept") == b"still here"
        client.close()
    finally:
        again.stop()
    assert _gone(again.pid)


def test_two_redis_servers_get_their_own_ports(short_tmp: Path) -> None:
    first = embedded.EmbeddedRedis.start(short_tmp / "a", append_only=False)
    second = embedded.EmbeddedRedis.start(short_tmp / "b", append_only=False)
    try:
        assert first.port != second.port
        a, b = redis.Redis.from_url(first.url), redis.Redis.from_url(second.url)
        a.set("where", "first")
        assert b.get("where") is None
        a.close()
        b.close()
    finally:
        first.stop()
        second.stop()


def test_a_second_ray_head_runs_beside_the_sessions_and_stops_without_leftovers(ray_address: str) -> None:
    temp_dir = Path(tempfile.mkdtemp(prefix="vgray-", dir=embedded.RAY_TEMP_ROOT))
    head = embedded.RayHead.start(temp_dir, num_cpus=1)
    try:
        assert head.address != ray_address
        assert head.port != 6379
        assert _accepts_tcp(head.port)
        pids = head.session_pids()
        assert len(pids) >= 3  # at least GCS, raylet and the dashboard agent
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert head.session_pids() == []
    assert all(_gone(pid) for pid in pids)
    assert not _accepts_tcp(head.port)
    session_port = int(ray_address.rsplit(":", 1)[1])
    assert _accepts_tcp(session_port), "stopping one head must leave the other running"


def test_with_database_swaps_only_the_database() -> None:
    socket_url = "postgresql://postgres:@/postgres?host=/tmp/x/pg"
    assert embedded.with_database(socket_url, "other") == "postgresql://postgres:@/other?host=/tmp/x/pg"
    tcp_url = "postgresql://u:p@127.0.0.1:5432/app"
    assert embedded.with_database(tcp_url, "t1") == "postgresql://u:p@127.0.0.1:5432/t1"


def test_stale_process_check_ignores_a_pid_that_names_something_else() -> None:
    assert not embedded.stop_stale_process(psutil.Process().pid, "no-such-marker-in-pytest", 1.0)
    assert psutil.Process().is_running()


def test_private_files_are_written_for_the_owner_only(short_tmp: Path) -> None:
    path = short_tmp / "demo.json"
    path.write_text("{}")
    path.chmod(0o644)
    write_private_json(path, {"api_key": "vk_x"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_json(path) == {"api_key": "vk_x"}


def test_the_demo_event_is_valid_for_the_api() -> None:
    body = demo_event_body(datetime(2026, 1, 1, tzinfo=UTC))
    event = EventCreate.model_validate_json(json.dumps(body))  # as the gateway parses a request body
    assert event.name == "Voelgoed Demo Flash Sale"
    assert body["starts_at"] == "2026-01-31T00:00:00Z"
