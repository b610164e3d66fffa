"""No secret in clear at rest: make API keys, a person with a password (through an invitation), sessions and
refreshes through the API, fail a login, then dump the whole test database with pg_dump and read every value in
Redis, and look for every plaintext the test saw. Their hashes must be in the dump (so it does hold the rows), the
secrets in neither. The keys and the invitation are made with Idempotency-Keys, whose records keep the answers
for 24 h: their replays must carry the secret as null."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from gateway.routes.access.models import ApiKeyOut
from persistence.access.apikeys import parse_api_key
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


async def redis_values(redis_url: str) -> dict[bytes, bytes]:
    """Every key of the Redis database with all it holds (names, fields and members too), whatever its type."""
    client = Redis.from_url(redis_url)
    found: dict[bytes, bytes] = {}
    try:
        async for key in client.scan_iter(count=1_000):
            kind = (await client.type(key)).decode()
            if kind == "string":
                parts = [await client.get(key)]
            elif kind == "hash":
                parts = [p for item in (await client.hgetall(key)).items() for p in item]
            elif kind == "list":
                parts = await client.lrange(key, 0, -1)
            elif kind == "set":
                parts = list(await client.smembers(key))
            elif kind == "zset":
                parts = await client.zrange(key, 0, -1)
            else:
                raise AssertionError(f"{key!r}: a Redis {kind} this test cannot read; teach it")
            found[key] = b"\x00".join([key, *(p for p in parts if p is not None)])
    finally:
        await client.aclose()
    return found


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
            create = {"name": kind, "kind": kind, "scopes": scopes}
            once = owner | {"Idempotency-Key": f"make the {kind} key"}
            made = await gw.client.post("/v1/api-keys", json=create, headers=once)
            assert made.status_code == 201, made.text
            plaintexts[f"{kind} key"] = made.json()["key"]
            replayed = await gw.client.post("/v1/api-keys", json=create, headers=once)
            assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
            assert replayed.json() == made.json() | {"key": None}  # the record, without the secret
            ApiKeyOut.model_validate(replayed.json())  # as documented: key is nullable

        invite = {"email": email, "role": "admin"}
        once = owner | {"Idempotency-Key": "invite the keeper"}
        invited = await gw.client.post("/v1/members", json=invite, headers=once)
        assert invited.status_code == 201, invited.text
        plaintexts["invitation"] = invited.json()["invitation"]["token"]
        replayed = await gw.client.post("/v1/members", json=invite, headers=once)
        assert replayed.status_code == 201 and replayed.headers["Idempotent-Replayed"] == "true"
        first = invited.json()
        assert replayed.json() == first | {"invitation": first["invitation"] | {"token": None}}
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
            plaintexts[f"{name} (secret part)"] = value.split("_", 2)[2]  # the secret may hold "_" itself

    dump = await pg_dump(database_url, tmp_path / "dump.sql")

    leaked = sorted(name for name, value in plaintexts.items() if value in dump)
    assert leaked == [], f"in clear in the database dump: {leaked}"

    stored = await redis_values(clean_redis)
    assert any(b":idem:" in key for key in stored), f"no idempotency record in {sorted(stored)}"
    in_redis = sorted(
        f"{name} at {key!r}" for name, value in plaintexts.items() for key, blob in stored.items()
        if value.encode() in blob
    )  # fmt: skip
    assert in_redis == [], f"in clear in Redis: {in_redis}"

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
