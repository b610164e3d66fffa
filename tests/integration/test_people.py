"""People on real Postgres, as the platform's row-level-security role: users, memberships, sessions (refresh
rotation, reuse detection, expiry, revocation) and invitations (single use, expiry)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from engine.access.passwords import hash_password, verify_password
from engine.refusals import Refusal
from persistence.access import invitations, memberships, sessions, users
from persistence.access.sessions import RefreshOutcome
from persistence.db import connect
from persistence.tenancy import org_transaction, unscoped

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)  # SET ROLE voelgoed_app: row-level security applies
    yield connection
    await connection.close()


async def _new_org(database_url: str) -> str:
    # Made as the migrating (super)user: org creation is H2's, not what these tests are about.
    admin = await asyncpg.connect(database_url)
    try:
        org_id = "org_" + secrets.token_hex(16)
        await admin.execute("INSERT INTO orgs (id, name) VALUES ($1, 'people test')", org_id)
        return org_id
    finally:
        await admin.close()


def _email() -> str:
    return f"Person.{secrets.token_hex(4)}@Example.com"


async def _member(conn: asyncpg.Connection, org_id: str, role: str = "admin", email: str | None = None) -> str:
    async with org_transaction(conn, org_id) as db:
        user = await users.create_user(db.conn, email or _email(), hash_password(PASSWORD))
        await memberships.add_member(db, user.id, role, accepted=True)
        return user.id


async def test_users_are_lower_cased_unique_and_visible_only_to_their_orgs(
    conn: asyncpg.Connection, database_url: str
) -> None:
    org_a, org_b = await _new_org(database_url), await _new_org(database_url)
    email = _email()
    user_id = await _member(conn, org_a, "owner", email)
    async with unscoped(conn, reason="test: login lookup") as platform:
        found = await users.find_user_by_email(platform, email.upper())
    assert found is not None and found.id == user_id and found.email == email.lower()
    assert found.password_hash is not None and verify_password(found.password_hash, PASSWORD)
    async with org_transaction(conn, org_a) as db:
        assert (await users.find_user(db, user_id)) is not None
        with pytest.raises(users.EmailTaken):
            await users.create_user(db.conn, email, None)
        assert (await users.find_user(db, user_id)) is not None  # the transaction is still usable
    async with org_transaction(conn, org_b) as db:
        assert await users.find_user(db, user_id) is None
        assert await db.conn.fetch("SELECT id, email FROM users WHERE id = $1", user_id) == []  # RLS, no filter
    # Without an org, nobody is visible.
    assert await conn.fetch("SELECT id, email, created_at FROM users") == []


async def test_the_org_role_never_reads_a_password_hash_nor_changes_a_person(
    conn: asyncpg.Connection, database_url: str
) -> None:
    """users is shared by every org a person belongs to: one org must not read or replace what guards the
    others. Only voelgoed_platform (unscoped: login, a first password) touches password hashes."""
    org_id = await _new_org(database_url)
    user_id = await _member(conn, org_id, "owner")
    for statement in (
        "SELECT password_hash FROM users WHERE id = $1",
        "SELECT * FROM users WHERE id = $1",
        "UPDATE users SET password_hash = NULL WHERE id = $1",
        "UPDATE users SET email = 'taken@example.com' WHERE id = $1",
        "DELETE FROM users WHERE id = $1",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with org_transaction(conn, org_id) as db:
                await db.conn.execute(statement, user_id)
    async with org_transaction(conn, org_id) as db:
        found = await users.find_user(db, user_id)
        assert found is not None and found.password_hash is None  # the org-bound read leaves it out
    async with unscoped(conn, reason="test: a first password, and only a first") as platform:
        assert not await users.set_first_password(platform, user_id, hash_password("another long password"))
        found = await users.find_user_by_id(platform, user_id)
    assert found is not None and found.password_hash is not None and verify_password(found.password_hash, PASSWORD)


async def test_memberships_list_change_remove_and_cross_org(conn: asyncpg.Connection, database_url: str) -> None:
    org_a, org_b = await _new_org(database_url), await _new_org(database_url)
    owner = await _member(conn, org_a, "owner")
    scanner = await _member(conn, org_a, "scanner")
    async with org_transaction(conn, org_b) as db:
        invited = await memberships.add_member(db, owner, "analyst", accepted=False)  # one person, two orgs
        assert not invited.accepted
        assert [m.user_id for m in await memberships.list_members(db)] == [owner]
        assert await memberships.change_role(db, scanner, "admin") is None
        assert not await memberships.remove_member(db, scanner)
        assert await memberships.accepted_role(db, owner) is None  # pending: no login
        roster = await memberships.lock_roles(db)
        assert roster.roles == {owner: "analyst"} and roster.accepted == frozenset()
    async with unscoped(conn, reason="test: login lookup") as platform:
        of_owner = await memberships.memberships_of_user(platform, owner)
    assert [(m.org_id, m.role) for m in of_owner] == [(org_a, "owner")]  # a pending membership is not theirs yet
    async with org_transaction(conn, org_b) as db:
        assert await memberships.accept_membership(db, owner)
        assert await memberships.accepted_role(db, owner) == "analyst"
    async with unscoped(conn, reason="test: login lookup") as platform:
        of_owner = await memberships.memberships_of_user(platform, owner)
    assert [(m.org_id, m.role) for m in of_owner] == [(org_a, "owner"), (org_b, "analyst")]
    async with org_transaction(conn, org_a) as db:
        with pytest.raises(memberships.AlreadyMember):
            await memberships.add_member(db, scanner, "admin", accepted=True)
        roster = await memberships.lock_roles(db)
        assert roster.roles == {owner: "owner", scanner: "scanner"} and roster.accepted == {owner, scanner}
        changed = await memberships.change_role(db, scanner, "box_office")
        assert changed is not None and changed.role == "box_office"
        session, _ = await sessions.create_session(db, scanner)
        assert await memberships.remove_member(db, scanner)
        assert await sessions.get_session(db, session.id) is None  # removed with the membership
        assert [m.user_id for m in await memberships.list_members(db)] == [owner]


async def test_refresh_rotates_and_a_reused_token_revokes_the_session(
    conn: asyncpg.Connection, database_url: str
) -> None:
    org_id = await _new_org(database_url)
    user_id = await _member(conn, org_id)
    async with org_transaction(conn, org_id) as db:
        session, first = await sessions.create_session(db, user_id)
    parsed = sessions.parse_refresh_token(first)
    assert parsed is not None and parsed[0] == session.id
    async with unscoped(conn, reason="test: refresh lookup") as platform:
        assert await sessions.org_of_session(platform, session.id) == org_id
    async with org_transaction(conn, org_id) as db:
        rotated = await sessions.rotate(db, *parsed)
    assert rotated.outcome is RefreshOutcome.ROTATED and rotated.refresh_token not in (None, first)
    assert rotated.refresh_token is not None
    second = sessions.parse_refresh_token(rotated.refresh_token)
    assert second is not None
    # A made-up secret (the session id is no secret): refused, and the session lives on.
    async with org_transaction(conn, org_id) as db:
        guessed = await sessions.rotate(db, session.id, "B" * 43)
        assert guessed.outcome is RefreshOutcome.WRONG_SECRET
        record = await sessions.get_session(db, session.id)
        assert record is not None and record.revoked_at is None
    # The first token again: theft suspected, the whole session ends, the newer token too.
    async with org_transaction(conn, org_id) as db:
        reused = await sessions.rotate(db, *parsed)
    assert reused.outcome is RefreshOutcome.REUSED
    async with org_transaction(conn, org_id) as db:
        assert (await sessions.rotate(db, *second)).outcome is RefreshOutcome.REVOKED
        record = await sessions.get_session(db, session.id)
    assert record is not None and record.revoked_at is not None


async def test_sessions_expire_revoke_and_stay_in_their_org(conn: asyncpg.Connection, database_url: str) -> None:
    org_id, other = await _new_org(database_url), await _new_org(database_url)
    user_id = await _member(conn, org_id)
    async with org_transaction(conn, org_id) as db:
        short, short_token = await sessions.create_session(db, user_id, ttl_s=1)
        live, live_token = await sessions.create_session(db, user_id)
        gone, _ = await sessions.create_session(db, user_id)
        assert await sessions.revoke_session(db, gone.id)
    await conn.execute("SELECT pg_sleep(1.1)")
    short_parsed, live_parsed = sessions.parse_refresh_token(short_token), sessions.parse_refresh_token(live_token)
    assert short_parsed is not None and live_parsed is not None
    async with org_transaction(conn, other) as db:
        assert (await sessions.rotate(db, *live_parsed)).outcome is RefreshOutcome.UNKNOWN
        assert not await sessions.revoke_session(db, live.id)
        assert await db.conn.fetch("SELECT * FROM sessions") == []
    async with org_transaction(conn, org_id) as db:
        assert (await sessions.rotate(db, *short_parsed)).outcome is RefreshOutcome.EXPIRED
        assert await sessions.live_member_sessions(db, user_id) == [live.id]
        assert await sessions.revoke_member_sessions(db, user_id) == [live.id]
        assert (await sessions.rotate(db, *live_parsed)).outcome is RefreshOutcome.REVOKED
    assert short.id != live.id


async def test_refresh_and_invitation_tokens_parse_strictly() -> None:
    assert sessions.parse_refresh_token("vr_" + "0" * 32 + "_" + "a" * 43) == ("ses_" + "0" * 32, "a" * 43)
    assert invitations.parse_invitation_token("vi_" + "0" * 32 + "_" + "a" * 43) == ("inv_" + "0" * 32, "a" * 43)
    for body in ("", "0" * 32, "0" * 32 + "_" + "a" * 42, "0" * 31 + "_" + "a" * 43, "A" * 32 + "_" + "a" * 43):
        assert sessions.parse_refresh_token("vr_" + body) is None
        assert invitations.parse_invitation_token("vi_" + body) is None
    assert sessions.parse_refresh_token("vi_" + "0" * 32 + "_" + "a" * 43) is None


async def test_invitations_are_single_use_and_expire(conn: asyncpg.Connection, database_url: str) -> None:
    org_id = await _new_org(database_url)
    async with org_transaction(conn, org_id) as db:
        user = await users.create_user(db.conn, _email(), None)
        await memberships.add_member(db, user.id, "box_office", accepted=False)
        invitation, token = await invitations.create_invitation(db, user.id, creates_user=True)
        _, short_token = await invitations.create_invitation(db, user.id, creates_user=False, ttl_s=1)
    assert invitation.creates_user
    parsed, short = invitations.parse_invitation_token(token), invitations.parse_invitation_token(short_token)
    assert parsed is not None and parsed[0] == invitation.id and short is not None
    async with unscoped(conn, reason="test: invitation lookup") as platform:
        checked = await invitations.check(platform, *parsed)
        assert checked.refusal is None and checked.invitation is not None
        assert checked.invitation.org_id == org_id and checked.invitation.accepted_at is None  # nothing changed
        assert (await invitations.check(platform, parsed[0], "x" * 43)).refusal is Refusal.INVITATION_NOT_FOUND
    async with org_transaction(conn, org_id) as db:
        assert (await invitations.accept(db, parsed[0], "x" * 43)).refusal is Refusal.INVITATION_NOT_FOUND
        accepted = await invitations.accept(db, *parsed)
        assert accepted.refusal is None
        assert await memberships.accept_membership(db, user.id)
    async with unscoped(conn, reason="test: the first password") as platform:
        assert await users.set_first_password(platform, user.id, hash_password(PASSWORD))
        assert not await users.set_first_password(platform, user.id, hash_password("another long password"))
    async with org_transaction(conn, org_id) as db:
        assert (await invitations.accept(db, *parsed)).refusal is Refusal.INVITATION_USED
    await conn.execute("SELECT pg_sleep(1.1)")
    async with org_transaction(conn, org_id) as db:
        assert (await invitations.accept(db, *short)).refusal is Refusal.INVITATION_EXPIRED
    other = await _new_org(database_url)
    async with org_transaction(conn, other) as db:
        assert (await invitations.accept(db, *parsed)).refusal is Refusal.INVITATION_NOT_FOUND
