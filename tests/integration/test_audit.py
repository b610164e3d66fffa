"""The audit log on a real Postgres: appends chained in the caller's transaction, gapless under concurrent
writers, read back by filters, verified in pages; tampering (past the append-only trigger) is named by seq."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import asyncpg
import pytest

from engine.audit_chain import REASON_HASH, REASON_SEQUENCE_GAP, REASON_TAIL_MISSING
from persistence import audit
from persistence.db import connect
from persistence.tenancy import org_transaction

ACTOR = audit.Actor("key", "key_" + "a" * 32, "203.0.113.9")


async def new_org(owner: asyncpg.Connection) -> str:
    org_id = "org_" + secrets.token_hex(16)
    await owner.execute("INSERT INTO orgs (id, name) VALUES ($1, 'Audit Org')", org_id)
    return org_id


def change(n: int, action: str = "event.create") -> audit.Change:
    return audit.Change(action, "event", f"evt_{n:032x}", before=None, after={"name": f"Show {n}", "n": n})


async def append(conn: asyncpg.Connection, org_id: str, *changes: audit.Change, actor: audit.Actor = ACTOR) -> None:
    async with org_transaction(conn, org_id) as db:
        await audit.record(db, actor, *changes)


async def test_record_then_verify_and_read_back(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    await append(app_conn, org_id, change(1))
    await append(app_conn, org_id, change(2), change(3, "event.publish"))

    result = await audit.verify(app_conn, org_id)
    assert result == audit.VerifyResult(True, 3, None, None)

    async with org_transaction(app_conn, org_id) as db:
        rows = await audit.query(db, limit=10)
    assert [r.entry.seq for r in rows] == [3, 2, 1]
    newest = rows[0]
    assert newest.entry.action == "event.publish"
    assert newest.entry.after == {"name": "Show 3", "n": 3}
    assert (newest.entry.actor_type, newest.entry.actor_id, newest.entry.ip) == ("key", ACTOR.id, ACTOR.ip)
    # one call, one time; the chain links
    assert rows[0].entry.at == rows[1].entry.at
    assert rows[0].prev_hash == rows[1].hash and rows[1].prev_hash == rows[2].hash
    assert rows[2].prev_hash == bytes(32)
    head = await owner.fetchrow("SELECT seq, hash FROM audit_heads WHERE org_id = $1", org_id)
    assert head is not None and (head["seq"], bytes(head["hash"])) == (3, rows[0].hash)


async def test_verify_inside_an_org_transaction(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id, other = await new_org(owner), await new_org(owner)
    await append(app_conn, org_id, change(1), change(2))
    async with org_transaction(app_conn, org_id) as db:
        assert (await audit.verify(db, org_id)).ok
        with pytest.raises(ValueError):
            await audit.verify(db, other)


async def test_entries_roll_back_with_their_change(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    await append(app_conn, org_id, change(1))
    with pytest.raises(RuntimeError):
        async with org_transaction(app_conn, org_id) as db:
            await audit.record(db, ACTOR, change(2))
            raise RuntimeError("the change failed")
    await append(app_conn, org_id, change(3))
    async with org_transaction(app_conn, org_id) as db:
        rows = await audit.query(db, limit=10)
    assert [(r.entry.seq, r.entry.object_id) for r in rows] == [(2, change(3).object_id), (1, change(1).object_id)]
    assert (await audit.verify(app_conn, org_id)).ok


async def test_no_changes_writes_nothing(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    await append(app_conn, org_id)
    assert await owner.fetchval("SELECT count(*) FROM audit_heads WHERE org_id = $1", org_id) == 0
    assert await audit.verify(app_conn, org_id) == audit.VerifyResult(True, 0, None, None)


@pytest.mark.parametrize(
    "bad",
    [
        audit.Change("event.create", "event", "evt_1", after={"price": 1.5}),
        audit.Change("Event Create", "event", "evt_1"),
        audit.Change("event.create", "event", ""),
        audit.Change("event.create", "event", "evt_1", after={"name": "nul\x00"}),
        audit.Change("event.create", "event", "evt_1", after={1: "int key"}),  # type: ignore[dict-item]
    ],
)
async def test_bad_changes_are_refused_before_anything_is_written(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, bad: audit.Change
) -> None:
    org_id = await new_org(owner)
    with pytest.raises(ValueError):
        await append(app_conn, org_id, change(1), bad)
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org_id) == 0


async def test_bad_actor_is_refused(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    with pytest.raises(ValueError):
        await append(app_conn, org_id, change(1), actor=audit.Actor("robot", "x"))  # type: ignore[arg-type]


async def test_record_many_gives_each_entry_its_own_actor(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection
) -> None:
    """A group commit's entries, each under the caller who asked for it, in one chained append."""
    org_id = await new_org(owner)
    person = audit.Actor("user", "usr_" + "b" * 32, None)
    system = audit.Actor("system", "inventory:evt_" + "c" * 32)
    async with org_transaction(app_conn, org_id) as db:
        await audit.record_many(db, [(ACTOR, change(1)), (person, change(2)), (system, change(3))])
        await audit.record_many(db, [])  # nothing to record: nothing happens
    await append(app_conn, org_id, change(4), actor=person)
    assert await audit.verify(app_conn, org_id) == audit.VerifyResult(True, 4, None, None)
    async with org_transaction(app_conn, org_id) as db:
        rows = await audit.query(db, limit=10)
    actors = [audit.Actor(r.entry.actor_type, r.entry.actor_id, r.entry.ip) for r in reversed(rows)]
    assert actors == [ACTOR, person, system, person]
    with pytest.raises(ValueError):  # one bad actor refuses the whole append
        async with org_transaction(app_conn, org_id) as db:
            await audit.record_many(db, [(ACTOR, change(5)), (audit.Actor("robot", "x"), change(6))])
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org_id) == 4


async def test_json_values_survive_jsonb(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    after = {
        "unicode": "Kaapstad — ñ ü 日本 😀",
        "big": 2**70,
        "negative": -12,
        "nested": {"b": [1, None, True, False, {"z": "y"}], "a": ""},
        "escapes": 'quote " backslash \\ tab \t newline \n',
    }
    await append(app_conn, org_id, audit.Change("event.create", "event", "evt_x", before={"k": []}, after=after))
    assert (await audit.verify(app_conn, org_id)).ok
    async with org_transaction(app_conn, org_id) as db:
        (row,) = await audit.query(db, limit=1)
    assert row.entry.after == after


async def test_concurrent_writers_get_a_gapless_valid_chain(owner: asyncpg.Connection, database_url: str) -> None:
    org_id = await new_org(owner)
    writers, calls_each = 6, 15

    async def writer(w: int) -> None:
        conn = await connect(database_url)
        try:
            for n in range(calls_each):
                await append(conn, org_id, change(w * 1000 + n), change(w * 1000 + n, "event.publish"))
        finally:
            await conn.close()

    await asyncio.gather(*(writer(w) for w in range(writers)))
    total = writers * calls_each * 2
    seqs = await owner.fetch("SELECT seq FROM audit_log WHERE org_id = $1 ORDER BY seq", org_id)
    assert [r["seq"] for r in seqs] == list(range(1, total + 1))
    app = await connect(database_url)
    try:
        assert await audit.verify(app, org_id) == audit.VerifyResult(True, total, None, None)
    finally:
        await app.close()


async def test_verify_reads_in_pages(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    org_id = await new_org(owner)
    for n in range(7):
        await append(app_conn, org_id, change(n))
    monkeypatch.setattr(audit, "verify_page_entries", 2)
    assert await audit.verify(app_conn, org_id) == audit.VerifyResult(True, 7, None, None)
    await _tamper(owner, "UPDATE audit_log SET action = 'event.delete' WHERE org_id = $1 AND seq = 6", org_id)
    assert await audit.verify(app_conn, org_id) == audit.VerifyResult(False, 6, 6, REASON_HASH)


async def _tamper(owner: asyncpg.Connection, sql: str, *args: object) -> None:
    """What someone with the database's superuser could do: skip the append-only trigger and edit rows."""
    async with owner.transaction():
        await owner.execute("SET LOCAL session_replication_role = replica")
        await owner.execute(sql, *args)


@pytest.mark.parametrize(
    "sql",
    [
        """UPDATE audit_log SET after = '{"name": "Show 3", "n": 4}' WHERE org_id = $1 AND seq = 3""",
        "UPDATE audit_log SET action = 'event.cancel' WHERE org_id = $1 AND seq = 3",
        "UPDATE audit_log SET at = at + interval '1 microsecond' WHERE org_id = $1 AND seq = 3",
        "UPDATE audit_log SET actor_id = 'key_someone_else' WHERE org_id = $1 AND seq = 3",
        "UPDATE audit_log SET ip = NULL WHERE org_id = $1 AND seq = 3",
    ],
)
async def test_a_tampered_row_is_named(owner: asyncpg.Connection, app_conn: asyncpg.Connection, sql: str) -> None:
    org_id = await new_org(owner)
    for n in range(1, 6):
        await append(app_conn, org_id, change(n))
    await _tamper(owner, sql, org_id)
    result = await audit.verify(app_conn, org_id)
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 3, REASON_HASH)


async def test_a_deleted_last_row_is_a_break(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    for n in range(1, 5):
        await append(app_conn, org_id, change(n))
    await _tamper(owner, "DELETE FROM audit_log WHERE org_id = $1 AND seq = 4", org_id)
    result = await audit.verify(app_conn, org_id)
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 4, REASON_TAIL_MISSING)


async def test_a_deleted_middle_row_is_a_gap(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    for n in range(1, 5):
        await append(app_conn, org_id, change(n))
    await _tamper(owner, "DELETE FROM audit_log WHERE org_id = $1 AND seq = 2", org_id)
    result = await audit.verify(app_conn, org_id)
    assert (result.ok, result.first_broken_seq, result.reason) == (False, 2, REASON_SEQUENCE_GAP)


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_log SET action = 'event.cancel' WHERE org_id = $1",
        "DELETE FROM audit_log WHERE org_id = $1",
        "TRUNCATE audit_log",
    ],
)
async def test_the_log_is_append_only_for_everyone(
    owner: asyncpg.Connection, app_conn: asyncpg.Connection, sql: str
) -> None:
    org_id = await new_org(owner)
    await append(app_conn, org_id, change(1))
    args = (org_id,) if "$1" in sql else ()
    # The platform's role, bound to the org (row-level security would let it see the rows): it holds no such
    # privilege in the first place...
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with org_transaction(app_conn, org_id) as db:
            await db.conn.execute(sql, *args)
    # ... and the tables' owner (here a superuser) alike.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
        await owner.execute(sql, *args)
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE org_id = $1", org_id) == 1


async def test_orgs_never_see_each_others_entries(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_a, org_b = await new_org(owner), await new_org(owner)
    await append(app_conn, org_a, change(1), change(2))
    await append(app_conn, org_b, change(3))
    async with org_transaction(app_conn, org_b) as db:
        assert [r.entry.org_id for r in await audit.query(db, limit=10)] == [org_b]
        # even a query that forgot its own filter
        assert await db.conn.fetchval("SELECT count(*) FROM audit_log") == 1
    # each chain starts at 1 and verifies alone
    assert await audit.verify(app_conn, org_a) == audit.VerifyResult(True, 2, None, None)
    assert await audit.verify(app_conn, org_b) == audit.VerifyResult(True, 1, None, None)


async def test_query_filters_and_cursor(owner: asyncpg.Connection, app_conn: asyncpg.Connection) -> None:
    org_id = await new_org(owner)
    other_actor = audit.Actor("user", "usr_" + "b" * 32)
    await append(app_conn, org_id, change(1), change(2, "event.publish"))
    await append(app_conn, org_id, change(1, "event.publish"), actor=other_actor)
    async with org_transaction(app_conn, org_id) as db:
        everything = await audit.query(db, limit=10)
        by_actor = await audit.query(db, actor_id=other_actor.id, limit=10)
        by_action = await audit.query(db, action="event.publish", limit=10)
        by_object = await audit.query(db, object_id=change(1).object_id, limit=10)
        first_at = everything[-1].entry.at
        since = await audit.query(db, since=everything[0].entry.at, limit=10)
        until = await audit.query(db, until=everything[0].entry.at, limit=10)
        empty = await audit.query(db, since=first_at + timedelta(days=1), limit=10)
        page_1 = await audit.query(db, limit=2)
        page_2 = await audit.query(db, after_seq=page_1[-1].entry.seq, limit=2)
        combined = await audit.query(db, action="event.publish", object_id=change(1).object_id, limit=10)
    assert [r.entry.seq for r in by_actor] == [3]
    assert [r.entry.seq for r in by_action] == [3, 2]
    assert [r.entry.seq for r in by_object] == [3, 1]
    assert [r.entry.seq for r in since] == [3]
    assert [r.entry.seq for r in until] == [2, 1]
    assert empty == []
    assert [r.entry.seq for r in page_1] == [3, 2] and [r.entry.seq for r in page_2] == [1]
    assert [r.entry.seq for r in combined] == [3]
