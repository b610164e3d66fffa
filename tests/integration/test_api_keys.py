"""API keys on real Postgres and Redis, as the platform's row-level-security role: the key store (kinds, expiry,
creators, revocation, last use), org creation with its audit entries, and the authenticator's caches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgpack
import pytest
from redis.asyncio import Redis

from engine.access.rules import key_lifetime_days_max
from gateway.auth import Authenticator, key_cache_ttl_s, last_used_interval_s
from gateway.errors import Unauthorized
from persistence import audit
from persistence.access import apikeys, redis_keys
from persistence.access.apikeys import KeyRejected
from persistence.access.orgs import create_org
from persistence.access.secret_hashes import secret_matches
from persistence.db import connect
from persistence.tenancy import TenantPool, org_transaction, unscoped
from tests.fakes.clock import FakeClock

monotonic_start_s = 1_000.0  # a monotonic clock's reading: any value will do

CREATOR = "system:test"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)  # SET ROLE voelgoed_app: row-level security applies
    yield connection
    await connection.close()


async def _key(
    conn: asyncpg.Connection, org_id: str, scopes: list[str], **options: object
) -> tuple[apikeys.ApiKeyRecord, str]:
    async with org_transaction(conn, org_id) as db:
        return await apikeys.create_api_key(db, "k", scopes, created_by=CREATOR, **options)  # type: ignore[arg-type]


async def _find(conn: asyncpg.Connection, prefix: str) -> apikeys.ApiKeyRecord | None:
    async with unscoped(conn, reason="test: find a key by prefix") as platform:
        return await apikeys.find_api_key(platform, prefix)


async def test_create_org_audits_the_org_and_its_owner_key(conn: asyncpg.Connection) -> None:
    org_id, plaintext = await create_org(conn, "Audited Org")
    parsed = apikeys.parse_api_key(plaintext)
    assert parsed is not None
    owner = await _find(conn, parsed[0])
    assert owner is not None and owner.created_by == "system:cli" and owner.kind == "secret"
    async with org_transaction(conn, org_id) as db:
        entries = [row.entry for row in reversed(await audit.query(db, limit=10))]
    assert [(e.action, e.actor_type, e.actor_id) for e in entries] == [
        ("org.create", "system", "cli"),
        ("api_key.create", "system", "cli"),
    ]
    assert parsed[1] not in repr(entries) and owner.secret_hash.hex() not in repr(entries)
    assert (await audit.verify(conn, org_id)).ok


async def test_keys_carry_kind_expiry_and_creator_and_only_a_hash(conn: asyncpg.Connection) -> None:
    org_id, _ = await create_org(conn, "Kinds")
    expires_at = datetime.now(UTC) + timedelta(days=30)
    record, plaintext = await _key(
        conn, org_id, ["inventory:read", "inventory:hold"], kind="publishable", expires_at=expires_at
    )
    assert (record.kind, record.expires_at, record.created_by) == ("publishable", expires_at, CREATOR)
    assert record.last_used_at is None and record.revoked_at is None
    prefix, secret = apikeys.parse_api_key(plaintext) or ("", "")
    assert prefix == record.prefix
    assert secret_matches(secret, record.secret_hash)
    assert not record.expired(datetime.now(UTC))
    assert record.expired(expires_at)


async def test_the_store_refuses_bad_keys_naming_the_field(conn: asyncpg.Connection) -> None:
    org_id, _ = await create_org(conn, "Refusals")
    now = datetime.now(UTC)
    cases: list[tuple[str, list[str], dict[str, object]]] = [
        ("scopes", ["events:write"], {"kind": "publishable"}),
        ("scopes", ["admin"], {}),
        ("scopes", [], {}),
        ("kind", ["events:read"], {"kind": "private"}),
        ("expires_at", ["events:read"], {"expires_at": now - timedelta(seconds=1)}),
        ("expires_at", ["events:read"], {"expires_at": now + timedelta(days=key_lifetime_days_max + 1)}),
        ("expires_at", ["events:read"], {"expires_at": datetime(2099, 1, 1)}),  # naive on purpose
    ]
    for field, scopes, options in cases:
        with pytest.raises(KeyRejected) as refused:
            await _key(conn, org_id, scopes, **options)
        assert refused.value.field == field, (field, scopes, options)
    async with org_transaction(conn, org_id) as db:
        with pytest.raises(KeyRejected) as refused:
            await apikeys.create_api_key(db, "k", ["events:read"], created_by="somebody")
        assert refused.value.field == "created_by"
        assert len(await apikeys.list_api_keys(db)) == 1  # the owner key only


async def test_listing_and_revoking_see_only_the_org(conn: asyncpg.Connection) -> None:
    org_a, _ = await create_org(conn, "A")
    org_b, _ = await create_org(conn, "B")
    key_b, _ = await _key(conn, org_b, ["events:read"])
    async with org_transaction(conn, org_a) as db:
        assert key_b.id not in {k.id for k in await apikeys.list_api_keys(db)}
        assert await apikeys.get_api_key(db, key_b.id) is None
        assert await apikeys.revoke_api_key(db, key_b.id) is None
        assert await apikeys.revoke_api_key(db, "not-a-key-id") is None
    async with org_transaction(conn, org_b) as db:
        first = await apikeys.revoke_api_key(db, key_b.id)
    assert first is not None and first.newly and first.record.revoked_at is not None
    async with org_transaction(conn, org_b) as db:
        again = await apikeys.revoke_api_key(db, key_b.id)
    assert again is not None and not again.newly and again.record.revoked_at == first.record.revoked_at


async def test_finding_a_key_by_prefix_needs_the_unscoped_entry(conn: asyncpg.Connection) -> None:
    org_id, _ = await create_org(conn, "Prefix")
    record, _ = await _key(conn, org_id, ["events:read"])
    # Row-level security: without an org (or with another) the app role sees no key at all.
    assert await apikeys.find_api_key(conn, record.prefix) is None
    other, _ = await create_org(conn, "Other")
    async with org_transaction(conn, other) as db:
        assert await apikeys.find_api_key(db.conn, record.prefix) is None
    found = await _find(conn, record.prefix)
    assert found is not None and found.org_id == org_id


async def test_last_used_moves_forward_only(conn: asyncpg.Connection) -> None:
    org_id, _ = await create_org(conn, "Last use")
    record, _ = await _key(conn, org_id, ["events:read"])
    later = datetime.now(UTC).replace(microsecond=0)
    earlier = later - timedelta(minutes=5)
    async with unscoped(conn, reason="test: last use") as platform:
        assert await apikeys.record_last_used(platform, {record.id: later}) == 1
        assert await apikeys.record_last_used(platform, {record.id: earlier}) == 0
    found = await _find(conn, record.prefix)
    assert found is not None and found.last_used_at == later


async def test_the_authenticator_refuses_expired_keys_even_from_its_cache(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Expiry")
    soon = datetime.now(UTC) + timedelta(seconds=1)
    record, plaintext = await _key(conn, org_id, ["events:read"], expires_at=soon)
    auth = Authenticator(TenantPool(pool), redis)
    principal = await auth.authenticate(plaintext)  # now cached in this process and mirrored in Redis
    assert (principal.actor_type, principal.key_id, principal.org_id) == ("key", record.id, org_id)
    assert not principal.publishable and principal.session_id is None
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)
    with pytest.raises(Unauthorized) as refused:
        await auth.authenticate(plaintext)
    assert refused.value.details == {"reason": "expired"}
    with pytest.raises(Unauthorized) as fresh:  # from the Redis mirror, in a process that never saw the key
        await Authenticator(TenantPool(pool), redis).authenticate(plaintext)
    assert fresh.value.details == {"reason": "expired"}


async def test_bad_keys_get_one_answer_whatever_was_wrong(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "One answer")
    _, plaintext = await _key(conn, org_id, ["events:read"])
    prefix, secret = apikeys.parse_api_key(plaintext) or ("", "")
    auth = Authenticator(TenantPool(pool), redis)
    wrong_secret = f"vk_{prefix}_{'A' * len(secret)}"
    unknown_prefix = f"vk_{'0' * 12}_{secret}"
    answers = set()
    for bad in (wrong_secret, unknown_prefix, "vk_short", plaintext + "x", "Bearer", "eyJ.eyJ.x"):
        with pytest.raises(Unauthorized) as refused:
            await auth.authenticate(bad)
        answers.add((refused.value.code, refused.value.message, str(refused.value.details)))
    assert len(answers) == 1, answers


async def test_a_publishable_key_authenticates_as_publishable(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Front-end")
    _, plaintext = await _key(conn, org_id, ["inventory:read"], kind="publishable")
    principal = await Authenticator(TenantPool(pool), redis).authenticate(plaintext)
    assert principal.publishable and principal.scopes == {"inventory:read"}
    again = await Authenticator(TenantPool(pool), redis).authenticate(plaintext)  # through the Redis mirror
    assert again == principal


async def test_a_mirror_of_the_older_shape_is_read_past(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Old mirror")
    record, plaintext = await _key(conn, org_id, ["events:read"])
    old = msgpack.packb([record.id, org_id, record.secret_hash, ["events:read", "keys:manage"], False])
    await redis.set(redis_keys.api_key(record.prefix), old)
    principal = await Authenticator(TenantPool(pool), redis).authenticate(plaintext)
    assert principal.scopes == {"events:read"}  # Postgres', not the old mirror's


async def test_last_use_is_written_in_the_background_at_most_once_a_minute(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Background")
    record, plaintext = await _key(conn, org_id, ["events:read"])
    auth = Authenticator(TenantPool(pool), redis)
    for _ in range(5):
        await auth.authenticate(plaintext)
    found = await _find(conn, record.prefix)
    assert found is not None and found.last_used_at is None  # nothing on the request's path
    await auth.flush_last_used()
    first = await _find(conn, record.prefix)
    assert first is not None and first.last_used_at is not None
    await auth.authenticate(plaintext)
    await auth.flush_last_used()  # within the minute: nothing noted, nothing written
    second = await _find(conn, record.prefix)
    assert second is not None and second.last_used_at == first.last_used_at



async def test_a_cached_key_is_read_again_after_key_cache_ttl_s(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Cache TTL")
    record, plaintext = await _key(conn, org_id, ["events:read"])
    clock = FakeClock(start=monotonic_start_s)
    auth = Authenticator(TenantPool(pool), redis, timer=clock)
    await auth.authenticate(plaintext)
    async with org_transaction(conn, org_id) as db:
        revocation = await apikeys.revoke_api_key(db, record.id)
    assert revocation is not None
    # Revoked through another process while this one was not listening: only the TTL bounds what it serves.
    await Authenticator(TenantPool(pool), redis).announce_revoked(revocation.record)
    clock.advance(key_cache_ttl_s - 0.1)
    assert (await auth.authenticate(plaintext)).key_id == record.id
    clock.advance(0.2)
    with pytest.raises(Unauthorized):
        await auth.authenticate(plaintext)


async def test_last_use_is_noted_again_after_last_used_interval_s(
    conn: asyncpg.Connection, pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, _ = await create_org(conn, "Interval")
    record, plaintext = await _key(conn, org_id, ["events:read"])
    clock = FakeClock(start=monotonic_start_s)
    auth = Authenticator(TenantPool(pool), redis, timer=clock)
    await auth.authenticate(plaintext)
    await auth.flush_last_used()
    first = await _find(conn, record.prefix)
    assert first is not None and first.last_used_at is not None
    clock.advance(last_used_interval_s - 0.1)
    await auth.authenticate(plaintext)
    await auth.flush_last_used()
    second = await _find(conn, record.prefix)
    assert second is not None and second.last_used_at == first.last_used_at
    clock.advance(0.2)
    await auth.authenticate(plaintext)
    await auth.flush_last_used()
    third = await _find(conn, record.prefix)
    assert third is not None and third.last_used_at is not None and third.last_used_at > first.last_used_at
