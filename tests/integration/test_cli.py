"""`voelgoed org create NAME [--json]` and `voelgoed up`, run as the user runs them: separate processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from engine import limits
from engine.access.passwords import verify_password
from engine.access.rules import OWNER_SCOPES
from persistence.access.apikeys import find_api_key, parse_api_key
from persistence.access.secret_hashes import secret_matches
from voelgoed import embedded
from voelgoed.demo import DEMO_ORG_NAME
from voelgoed.session_secret import ensure_session_secret
from voelgoed.settings import RUNTIME_FILE_NAME, SESSION_SECRET_FILE_NAME, Settings, session_secret_bytes_min
from voelgoed.startup_failure import StartupFailed

cli_run_s_max = 60.0


@dataclass(frozen=True)
class Run:
    status: int
    stdout: str
    stderr: str


async def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Run:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "voelgoed.cli", *args,
        env=dict(os.environ) if env is None else env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(stdin), cli_run_s_max)
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


# ---- voelgoed key create / user create / audit verify ---------------------------------------------------------


async def cli_org() -> str:
    run = await run_cli("org", "create", "CLI People", "--json")
    assert run.status == 0, run.stderr
    org_id: str = json.loads(run.stdout)["org_id"]
    return org_id


def assert_bad_input(run: Run, *words: str) -> None:
    assert run.status == 2, (run.stdout, run.stderr)
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


async def test_key_create_prints_a_working_key_once(database_url: str, redis_url: str) -> None:
    org_id = await cli_org()
    expires_at = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    run = await run_cli(
        "key", "create", org_id, "--name", "checkout", "--scopes", "inventory:read,inventory:hold",
        "--kind", "publishable", "--expires-at", expires_at.isoformat().replace("+00:00", "Z"), "--json",
    )  # fmt: skip
    assert run.status == 0, run.stderr
    printed = json.loads(run.stdout)
    assert set(printed) == {"id", "org_id", "name", "kind", "prefix", "scopes", "expires_at", "key"}
    assert (printed["org_id"], printed["kind"], printed["scopes"]) == (
        org_id, "publishable", ["inventory:read", "inventory:hold"]
    )  # fmt: skip
    parsed = parse_api_key(printed["key"])
    assert parsed is not None
    conn = await asyncpg.connect(database_url)
    try:
        record = await find_api_key(conn, parsed[0])
    finally:
        await conn.close()
    assert record is not None and record.org_id == org_id and secret_matches(parsed[1], record.secret_hash)
    assert record.expires_at == expires_at and record.created_by == "system:cli"

    plain = await run_cli("key", "create", org_id, "--name", "reports", "--scopes", "reports:read")
    assert plain.status == 0, plain.stderr
    assert "key: vk_" in plain.stdout and "shown only this once" in plain.stdout


async def test_key_create_refuses_bad_input_with_exit_2(database_url: str, redis_url: str) -> None:
    org_id = await cli_org()
    unknown_org = "org_" + "0" * 32
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert_bad_input(await run_cli("key", "create", org_id, "--name", "x", "--scopes", "root"), "unknown")
    assert_bad_input(
        await run_cli("key", "create", org_id, "--name", "x", "--scopes", "events:write", "--kind", "publishable"),
        "publishable",
    )
    assert_bad_input(
        await run_cli("key", "create", org_id, "--name", "x", "--scopes", "events:read", "--expires-at", past),
        "future",
    )
    assert_bad_input(
        await run_cli("key", "create", org_id, "--name", "x", "--scopes", "events:read", "--expires-at", "soon"),
        "RFC 3339",
    )
    assert_bad_input(await run_cli("key", "create", unknown_org, "--name", "x", "--scopes", "events:read"), "no org")
    assert_bad_input(await run_cli("key", "create", "acme", "--name", "x", "--scopes", "events:read"), "org id")
    assert (await run_cli("key", "create", org_id, "--name", "x")).status == 2  # --scopes is required
    assert (await run_cli("key", "create", org_id, "--name", "x", "--scopes", "a", "--kind", "x")).status == 2


async def test_user_create_with_a_password_and_with_an_invitation(database_url: str, redis_url: str) -> None:
    org_id = await cli_org()
    email = f"Ada.{os.getpid()}.{datetime.now(UTC).timestamp():.0f}@Example.com"
    password = "a long enough passphrase"
    run = await run_cli(
        "user", "create", email, "--org", org_id, "--role", "admin", "--password-stdin", "--json",
        stdin=(password + "\n").encode(),
    )  # fmt: skip
    assert run.status == 0, run.stderr
    printed = json.loads(run.stdout)
    assert printed["email"] == email.lower() and printed["role"] == "admin" and printed["invitation"] is None
    assert password not in run.stdout
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", printed["user_id"])
        role = await conn.fetchval(
            "SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2", org_id, printed["user_id"]
        )
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$") and verify_password(stored, password) and role == "admin"

    invited = await run_cli("user", "create", f"bob.{printed['user_id']}@example.com", "--org", org_id,
                            "--role", "scanner", "--json")  # fmt: skip
    assert invited.status == 0, invited.stderr
    invitation = json.loads(invited.stdout)["invitation"]
    assert invitation["token"].startswith("vi_") and invitation["expires_at"]

    plain = await run_cli(
        "user", "create", f"cy.{printed['user_id']}@example.com", "--org", org_id, "--role", "analyst"
    )
    assert plain.status == 0, plain.stderr
    assert "invitation: vi_" in plain.stdout

    # The same person in a second org: a membership, no second account.
    other = await cli_org()
    again = await run_cli("user", "create", email, "--org", other, "--role", "analyst", "--json")
    assert again.status == 0, again.stderr
    assert json.loads(again.stdout)["user_id"] == printed["user_id"]
    assert json.loads(again.stdout)["invitation"] is None  # they already have a password


async def test_user_create_refuses_bad_input_with_exit_2(database_url: str, redis_url: str) -> None:
    org_id = await cli_org()
    email = f"dup.{datetime.now(UTC).timestamp()}@example.com"
    assert (await run_cli("user", "create", email, "--org", org_id, "--role", "admin")).status == 0
    assert_bad_input(await run_cli("user", "create", email, "--org", org_id, "--role", "admin"), "already a member")
    # No password yet: whoever holds the invitation that created the account would set it, so the operator does
    # not make that account an active member of another org.
    other = await cli_org()
    assert_bad_input(
        await run_cli("user", "create", email, "--org", other, "--role", "admin"), "has not set a password yet"
    )
    assert_bad_input(await run_cli("user", "create", "not-an-address", "--org", org_id, "--role", "admin"), "e-mail")
    assert_bad_input(
        await run_cli(
            "user", "create", "x" + email, "--org", org_id, "--role", "admin", "--password-stdin", stdin=b"short\n"
        ),
        "password",
    )
    assert_bad_input(
        await run_cli("user", "create", "y" + email, "--org", "org_" + "0" * 32, "--role", "admin"), "no org"
    )
    assert (await run_cli("user", "create", "z" + email, "--org", org_id, "--role", "emperor")).status == 2
    assert (await run_cli("user", "create", "z" + email, "--role", "admin")).status == 2


async def test_audit_verify_passes_an_intact_chain_and_names_a_tampered_entry(
    database_url: str, redis_url: str
) -> None:
    org_id = await cli_org()
    assert (await run_cli("key", "create", org_id, "--name", "k", "--scopes", "events:read")).status == 0
    intact = await run_cli("audit", "verify", org_id, "--json")
    assert intact.status == 0, intact.stderr
    assert json.loads(intact.stdout) == {
        "org_id": org_id, "ok": True, "entries": 3, "first_broken_seq": None, "reason": None
    }  # fmt: skip
    plain = await run_cli("audit", "verify", org_id)
    assert plain.status == 0 and "intact" in plain.stdout

    conn = await asyncpg.connect(database_url)
    try:
        # Only a superuser can get past the append-only trigger, and only for this session.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("UPDATE audit_log SET object_id = 'tampered' WHERE org_id = $1 AND seq = 2", org_id)
    finally:
        await conn.close()
    broken = await run_cli("audit", "verify", org_id, "--json")
    assert broken.status == 1, (broken.stdout, broken.stderr)
    verdict = json.loads(broken.stdout)
    assert verdict["ok"] is False and verdict["first_broken_seq"] == 2 and verdict["reason"]
    text = await run_cli("audit", "verify", org_id)
    assert text.status == 1 and "seq 2" in text.stdout

    assert_bad_input(await run_cli("audit", "verify", "org_" + "0" * 32), "no org")
    assert_bad_input(await run_cli("audit", "verify", "nonsense"), "org id")


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
        # the payment simulator runs beside the gateway, announced in the banner (voelgoed/payments_simulator.py)
        assert f"Payments sim   {runtime['paysim_url']}" in printed
        async with httpx.AsyncClient(base_url=runtime["paysim_url"], timeout=10) as http:
            assert (await http.get("/_sim/health")).status_code == 200
    finally:
        stopped = await stop_up(process)
    assert "Stopped." in stopped
    assert not (data_dir / RUNTIME_FILE_NAME).exists()
    assert not psutil.pid_exists(gateway_pid) or psutil.Process(gateway_pid).status() == psutil.STATUS_ZOMBIE
    paysim_pid = runtime["paysim_pid"]
    assert not psutil.pid_exists(paysim_pid) or psutil.Process(paysim_pid).status() == psutil.STATUS_ZOMBIE

    process, _ = await start_up(env)
    await stop_up(process)
    assert json.loads((data_dir / "demo.json").read_text()) == demo
    conn = await asyncpg.connect(settings.database_url)
    try:
        demo_orgs = await conn.fetchval("SELECT count(*) FROM orgs WHERE name = $1", DEMO_ORG_NAME)
        demo_events = await conn.fetchval("SELECT count(*) FROM events WHERE org_id = $1", demo["org_id"])
    finally:
        await conn.close()
    assert (demo_orgs, demo_events) == (1, 1)


def test_up_makes_a_session_secret_once_and_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOELGOED_SESSION_SECRET", raising=False)
    first = ensure_session_secret(tmp_path)
    path = tmp_path / SESSION_SECRET_FILE_NAME
    assert len(first.encode()) >= session_secret_bytes_min
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_session_secret(tmp_path) == first
    env = {
        "VOELGOED_DATA_DIR": str(tmp_path),
        "VOELGOED_DATABASE_URL": "postgresql://x/y",
        "VOELGOED_REDIS_URL": "redis://x",
    }
    assert Settings.from_env(env).session_secret == first  # what a gateway started by hand finds

    monkeypatch.setenv("VOELGOED_SESSION_SECRET", "too short")
    with pytest.raises(StartupFailed):
        ensure_session_secret(tmp_path)
    with pytest.raises(RuntimeError):
        Settings.from_env(env | {"VOELGOED_SESSION_SECRET": "too short"})
    with pytest.raises(RuntimeError):
        Settings(database_url="postgresql://x/y", redis_url="redis://x", session_secret="short")
