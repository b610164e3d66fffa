"""`voelgoed org create NAME [--json]` and `voelgoed up`, run as the user runs them: separate processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import psutil

from engine import limits
from engine.access import OWNER_SCOPES
from persistence.apikeys import find_api_key, parse_api_key, secret_matches
from voelgoed import embedded, platform
from voelgoed.settings import RUNTIME_FILE_NAME, Settings

cli_run_s_max = 60.0


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voelgoed.cli", *args,
        env=dict(os.environ) if env is None else env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), cli_run_s_max)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def env_without_services(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VOELGOED_DATABASE_URL", "VOELGOED_REDIS_URL")}
    env["VOELGOED_DATA_DIR"] = str(data_dir)
    return env


async def assert_owner_key(database_url: str, org_id: str, api_key: str) -> None:
    parsed = parse_api_key(api_key)
    assert parsed is not None, api_key
    conn = await asyncpg.connect(database_url)
    try:
        record = await find_api_key(conn, parsed[0])
    finally:
        await conn.close()
    assert record is not None
    assert record.org_id == org_id
    assert record.revoked_at is None
    assert secret_matches(parsed[1], record.secret_hash)
    assert not secret_matches(parsed[1] + "x", record.secret_hash)
    assert set(record.scopes) == set(OWNER_SCOPES)


async def test_json_output_is_exactly_the_org_and_a_working_owner_key(database_url: str, redis_url: str) -> None:
    run = await run_cli("org", "create", "Acme Tickets", "--json")
    assert run.status == 0, run.stderr
    printed = json.loads(run.stdout)
    assert set(printed) == {"org_id", "api_key"}
    assert run.stdout.strip() == json.dumps(printed)
    assert printed["org_id"].startswith("org_")
    await assert_owner_key(database_url, printed["org_id"], printed["api_key"])
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM api_keys WHERE org_id = $1", printed["org_id"])
        # Only a hash is stored: the secret half of the key appears in no column of any key row.
        parsed = parse_api_key(printed["api_key"])
        assert parsed is not None
        secret = parsed[1]
        leaked = await conn.fetchval("SELECT count(*) FROM api_keys k WHERE strpos(k::text, $1) > 0", secret)
    finally:
        await conn.close()
    assert stored == 1
    assert leaked == 0


async def test_each_run_creates_a_new_org_and_key(database_url: str, redis_url: str) -> None:
    first = json.loads((await run_cli("org", "create", "Same Name", "--json")).stdout)
    second = json.loads((await run_cli("org", "create", "Same Name", "--json")).stdout)
    assert first["org_id"] != second["org_id"]
    assert first["api_key"] != second["api_key"]


async def test_plain_output_shows_the_org_and_key(database_url: str, redis_url: str) -> None:
    run = await run_cli("org", "create", "Plain Org")
    assert run.status == 0, run.stderr
    fields = dict(line.split(":", 1) for line in run.stdout.splitlines()[:2])
    org_id, api_key = fields["org_id"].strip(), fields["api_key"].strip()
    await assert_owner_key(database_url, org_id, api_key)


async def test_finds_the_services_through_runtime_json_like_make_up_leaves_it(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    runtime = {"database_url": database_url, "redis_url": redis_url, "ray_address": "127.0.0.1:1"}
    (tmp_path / RUNTIME_FILE_NAME).write_text(json.dumps(runtime))
    run = await run_cli("org", "create", "Via Runtime File", "--json", env=env_without_services(tmp_path))
    assert run.status == 0, run.stderr
    printed = json.loads(run.stdout)
    await assert_owner_key(database_url, printed["org_id"], printed["api_key"])


async def test_without_services_it_fails_with_one_line_that_says_run_make_up(tmp_path: Path) -> None:
    run = await run_cli("org", "create", "Nowhere", "--json", env=env_without_services(tmp_path))
    assert run.status == 1
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert "make up" in run.stderr


async def test_an_unreachable_postgres_fails_with_one_line(tmp_path: Path) -> None:
    env = env_without_services(tmp_path)
    env["VOELGOED_DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{embedded.free_tcp_port()}/postgres"
    env["VOELGOED_REDIS_URL"] = "redis://127.0.0.1:1/0"
    run = await run_cli("org", "create", "Nowhere", env=env)
    assert run.status == 1
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Postgres" in run.stderr


async def test_bad_usage_exits_2() -> None:
    assert (await run_cli("org", "create")).status == 2
    assert (await run_cli("org", "create", "")).status == 2
    assert (await run_cli("org", "create", "x" * (limits.name_chars_max + 1))).status == 2
    assert (await run_cli("org", "delete", "x")).status == 2
    assert (await run_cli()).status == 2


up_ready_s_max = 120.0
up_stop_s_max = 60.0


async def start_up(env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    """`voelgoed up` until it prints that it is up; returns the process and what it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voelgoed.cli", "up",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdout is not None
    printed = ""
    async with asyncio.timeout(up_ready_s_max):
        while "Press Ctrl-C to stop." not in printed:
            line = await process.stdout.readline()
            assert line, f"voelgoed up exited early:\n{printed}"
            printed += line.decode()
    return process, printed


async def stop_up(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    process.send_signal(signal.SIGINT)
    rest, _ = await asyncio.wait_for(process.communicate(), up_stop_s_max)
    assert process.returncode == 0, rest.decode()
    return rest.decode()


async def test_up_serves_one_demo_across_restarts_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    """With the session's Postgres, Redis and Ray named in the environment, `up` runs migrations, the gateway
    and the demo; the embedded services themselves are covered in test_embedded_services.py."""
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "VOELGOED_DATA_DIR": str(data_dir),
        "VOELGOED_DATABASE_URL": settings.database_url,
        "VOELGOED_REDIS_URL": settings.redis_url,
        "VOELGOED_RAY_ADDRESS": settings.ray_address or "",
        "VOELGOED_GATEWAY_PORT": str(embedded.free_tcp_port()),
        "VOELGOED_GATEWAY_WORKERS": "1",
    }
    process, printed = await start_up(env)
    demo = json.loads((data_dir / "demo.json").read_text())
    runtime = json.loads((data_dir / RUNTIME_FILE_NAME).read_text())
    gateway_pid = runtime["gateway_pid"]
    try:
        assert demo["api_key"] in printed
        assert stat.S_IMODE((data_dir / "demo.json").stat().st_mode) == 0o600
        assert runtime["database_url"] == settings.database_url
        api_url = f"http://127.0.0.1:{env['VOELGOED_GATEWAY_PORT']}"
        headers = {"Authorization": f"Bearer {demo['api_key']}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=10) as http:
            event = await http.get(f"/v1/events/{demo['event_id']}")
        assert event.status_code == 200, event.text
        assert event.json()["status"] == "on_sale"
    finally:
        stopped = await stop_up(process)
    assert "Stopped." in stopped
    assert not (data_dir / RUNTIME_FILE_NAME).exists()
    assert not psutil.pid_exists(gateway_pid) or psutil.Process(gateway_pid).status() == psutil.STATUS_ZOMBIE

    process, _ = await start_up(env)
    await stop_up(process)
    assert json.loads((data_dir / "demo.json").read_text()) == demo
    conn = await asyncpg.connect(settings.database_url)
    try:
        demo_orgs = await conn.fetchval("SELECT count(*) FROM orgs WHERE name = $1", platform.DEMO_ORG_NAME)
        demo_events = await conn.fetchval("SELECT count(*) FROM events WHERE org_id = $1", demo["org_id"])
    finally:
        await conn.close()
    assert (demo_orgs, demo_events) == (1, 1)
