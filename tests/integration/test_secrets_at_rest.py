"""No secret in clear at rest: make API keys, a person with a password (through an invitation), sessions and
refreshes through the API, fail a login, then dump the whole test database with pg_dump and look for every
plaintext the test saw. Their hashes must be there (so the dump does hold the rows), the secrets must not."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
from pathlib import Path

import asyncpg
import pytest

from persistence.apikeys import parse_api_key
from tests.fakes import new_org, running_gateway

pg_dump_s_max = 120.0


def pg_dump_binary() -> str:
    """pg_dump of the embedded server's own build (its version matches the server), else the one on PATH."""
    try:
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "pg_dump"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("pg_dump")
    if found is None:
        pytest.skip("no pg_dump: neither pgserver's nor one on PATH")
    return found


async def pg_dump(database_url: str, out: Path) -> str:
    process = await asyncio.create_subprocess_exec(
        pg_dump_binary(), "--data-only", "--no-owner", "--file", str(out), "--dbname", database_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), pg_dump_s_max)
    assert process.returncode == 0, stderr.decode()
    return out.read_text()


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def test_a_database_dump_holds_no_key_password_or_token_in_clear(
    database_url: str, clean_redis: str, tmp_path: Path
) -> None:
    org_id, owner_key = await new_org(database_url, "secrets at rest")
    owner = {"Authorization": f"Bearer {owner_key}"}
    email = f"keeper.{secrets.token_hex(4)}@example.com"
    password = "at-rest password " + secrets.token_hex(8)
    wrong_password = "wrong password " + secrets.token_hex(8)
    plaintexts: dict[str, str] = {"owner key": owner_key, "password": password, "wrong password": wrong_password}

    async with running_gateway(database_url, clean_redis) as gw:
        for kind, scopes in (("secret", ["events:read"]), ("publishable", ["inventory:read"])):
            made = await gw.client.post(
                "/v1/api-keys", json={"name": kind, "kind": kind, "scopes": scopes}, headers=owner
            )
            assert made.status_code == 201, made.text
            plaintexts[f"{kind} key"] = made.json()["key"]

        invited = await gw.client.post("/v1/members", json={"email": email, "role": "admin"}, headers=owner)
        assert invited.status_code == 201, invited.text
        plaintexts["invitation"] = invited.json()["invitation"]["token"]
        accepted = await gw.client.post(
            "/v1/invitations/accept", json={"token": plaintexts["invitation"], "password": password}
        )
        assert accepted.status_code == 200, accepted.text

        login = {"email": email, "password": password, "org_id": org_id}
        session = await gw.client.post("/v1/sessions", json=login)
        assert session.status_code == 201, session.text
        plaintexts["access token"] = session.json()["access_token"]
        plaintexts["refresh token"] = session.json()["refresh_token"]
        failed = await gw.client.post("/v1/sessions", json=login | {"password": wrong_password})
        assert failed.status_code == 401, failed.text
        refreshed = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": plaintexts["refresh token"]})
        assert refreshed.status_code == 200, refreshed.text
        plaintexts["rotated refresh token"] = refreshed.json()["refresh_token"]

    # Every secret part on its own too: a key's or token's secret half could be stored without its prefix.
    for name, value in list(plaintexts.items()):
        if value.startswith(("vk_", "vi_", "vr_")):
            plaintexts[f"{name} (secret part)"] = value.rsplit("_", 1)[1]

    dump = await pg_dump(database_url, tmp_path / "dump.sql")

    leaked = sorted(name for name, value in plaintexts.items() if value in dump)
    assert leaked == [], f"in clear in the database dump: {leaked}"

    # The control: the rows are in the dump, as hashes.
    for name in ("owner key", "secret key", "publishable key"):
        parsed = parse_api_key(plaintexts[name])
        assert parsed is not None
        assert sha256_hex(parsed[1]) in dump, f"the {name}'s hash is missing: is this the right database?"
    conn = await asyncpg.connect(database_url)
    try:
        password_hash = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", email)
    finally:
        await conn.close()
    assert password_hash.startswith("$argon2id$") and password_hash in dump
    assert email in dump  # the person's row itself is there
