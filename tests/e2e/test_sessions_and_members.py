"""People through the gateway: log in, refresh, log out, invitations, and managing members, on real Postgres and
Redis over the fake inventory. Tokens stop at once when their session ends; roles bound who may grant what."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from engine.access.passwords import hash_password
from persistence.access import memberships, users
from persistence.db import connect
from persistence.tenancy import org_transaction, unscoped
from tests.fakes import Gateway, new_org, running_gateway

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase"


@dataclass(frozen=True)
class Org:
    id: str
    key: dict[str, str]  # the owner API key's headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _email(tag: str = "person") -> str:
    return f"{tag}.{secrets.token_hex(4)}@example.com"


@pytest.fixture
async def gw(database_url: str, clean_redis: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, clean_redis) as gateway:
        yield gateway


async def _org(database_url: str) -> Org:
    org_id, key = await new_org(database_url)
    return Org(org_id, bearer(key))


async def _person(database_url: str, org: Org, role: str, email: str | None = None) -> tuple[str, str]:
    """(user id, e-mail) of a person with PASSWORD made a member of the org (an existing person joins it)."""
    address = email or _email(role)
    conn = await connect(database_url)
    try:
        async with unscoped(conn, reason="test: the person may exist in another org") as platform:
            found = await users.find_user_by_email(platform, address)
        async with org_transaction(conn, org.id) as db:
            user = found or await users.create_user(db.conn, address, hash_password(PASSWORD))
            await memberships.add_member(db, user.id, role, accepted=True)
            return user.id, address
    finally:
        await conn.close()


async def _login(gw: Gateway, email: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    return await gw.client.post("/v1/sessions", json={"email": email, "password": password, **extra})


async def _session(gw: Gateway, email: str, **extra: Any) -> dict[str, Any]:
    response = await _login(gw, email, **extra)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _members(gw: Gateway, org: Org) -> dict[str, str]:
    listed = await gw.client.get("/v1/members", headers=org.key)
    assert listed.status_code == 200
    return {m["user_id"]: m["role"] for m in listed.json()["members"]}


async def _statuses(gw: Gateway, org: Org) -> dict[str, str]:
    listed = await gw.client.get("/v1/members", headers=org.key)
    assert listed.status_code == 200
    return {m["user_id"]: m["status"] for m in listed.json()["members"]}


async def _invite(gw: Gateway, org: Org, email: str, role: str) -> dict[str, Any]:
    invited = await gw.client.post("/v1/members", json={"email": email, "role": role}, headers=org.key)
    assert invited.status_code == 201, invited.text
    body: dict[str, Any] = invited.json()
    return body


async def _accept(gw: Gateway, token: str, password: str) -> httpx.Response:
    return await gw.client.post("/v1/invitations/accept", json={"token": token, "password": password})


async def _audit_actions(database_url: str, org_id: str) -> list[str]:
    admin = await asyncpg.connect(database_url)  # the migrating superuser: reads past row-level security
    try:
        rows = await admin.fetch("SELECT action FROM audit_log WHERE org_id = $1 ORDER BY seq", org_id)
        return [row["action"] for row in rows]
    finally:
        await admin.close()


def _code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def test_a_login_token_grants_its_role_only(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, admin_email = await _person(database_url, org, "admin")
    _, scanner_email = await _person(database_url, org, "scanner")
    admin = await _session(gw, admin_email.upper())  # the e-mail's case does not matter
    assert admin["token_type"] == "bearer" and admin["org_id"] == org.id and admin["role"] == "admin"
    assert admin["expires_in"] == 900 and admin["refresh_token"].startswith("vr_")
    listed = await gw.client.get("/v1/members", headers=bearer(admin["access_token"]))
    assert listed.status_code == 200
    assert {m["email"] for m in listed.json()["members"]} == {admin_email, scanner_email}
    scanner = await _session(gw, scanner_email)
    refused = await gw.client.get("/v1/members", headers=bearer(scanner["access_token"]))
    assert refused.status_code == 403 and _code(refused) == "forbidden"
    assert "session.login" in await _audit_actions(database_url, org.id)


async def test_a_wrong_email_and_a_wrong_password_answer_alike(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, email = await _person(database_url, org, "analyst")
    wrong_password = await _login(gw, email, "not the right password at all")
    unknown = await _login(gw, _email("nobody"), PASSWORD)
    assert wrong_password.status_code == unknown.status_code == 401
    assert wrong_password.json() == unknown.json()
    assert _code(unknown) == "invalid_credentials"
    # A known person's failure is audited in their org; an unknown e-mail has no org to be audited in.
    assert (await _audit_actions(database_url, org.id)).count("session.login_failed") == 1
    # An invited person without a password yet cannot log in either, and hears the same.
    invited = await gw.client.post("/v1/members", json={"email": _email("invitee"), "role": "scanner"}, headers=org.key)
    assert invited.status_code == 201
    no_password = await _login(gw, invited.json()["email"], PASSWORD)
    assert no_password.status_code == 401 and no_password.json() == unknown.json()


async def test_a_person_in_several_orgs_names_one(gw: Gateway, database_url: str) -> None:
    first, second, stranger = await _org(database_url), await _org(database_url), await _org(database_url)
    user_id, email = await _person(database_url, first, "admin")
    await _person(database_url, second, "analyst", email)
    ambiguous = await _login(gw, email)
    assert ambiguous.status_code == 422 and _code(ambiguous) == "validation_failed"
    details = ambiguous.json()["error"]["details"]
    assert details["fields"][0]["field"] == "org_id"
    assert sorted(details["org_ids"]) == sorted([first.id, second.id])
    chosen = await _session(gw, email, org_id=second.id)
    assert chosen["org_id"] == second.id and chosen["role"] == "analyst" and chosen["user_id"] == user_id
    # An org the person is not in: the same answer as a wrong password.
    elsewhere = await _login(gw, email, org_id=stranger.id)
    assert elsewhere.status_code == 401 and _code(elsewhere) == "invalid_credentials"


async def test_refresh_rotates_and_reuse_ends_the_session(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, email = await _person(database_url, org, "box_office")
    first = await _session(gw, email)
    refreshed = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["session_id"] == first["session_id"] and second["role"] == "box_office"
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    # The first refresh token again: someone holds a copy, so the session ends for everyone.
    reused = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and _code(reused) == "refresh_token_reused"
    after = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401 and _code(after) == "invalid_refresh_token"
    assert (await gw.client.delete("/v1/sessions/current", headers=bearer(second["access_token"]))).status_code == 401
    actions = await _audit_actions(database_url, org.id)
    assert "session.refresh" in actions and "session.refresh_reused" in actions


async def test_a_made_up_refresh_secret_does_not_end_the_session(gw: Gateway, database_url: str) -> None:
    """The session id is no secret (the access token's sid, the audit log): a guess at the secret is refused
    and changes nothing; only the previous secret, replayed, ends the session."""
    org = await _org(database_url)
    _, email = await _person(database_url, org, "box_office")
    first = await _session(gw, email)
    guess = "vr_" + first["session_id"].removeprefix("ses_") + "_" + "A" * 43
    for _ in range(3):
        refused = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": guess})
        assert refused.status_code == 401 and _code(refused) == "invalid_refresh_token"
    assert (await gw.client.get("/v1/events", headers=bearer(first["access_token"]))).status_code != 401
    second = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    reused = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and _code(reused) == "refresh_token_reused"
    after = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert after.status_code == 401


async def test_logout_stops_the_access_token_at_once(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, email = await _person(database_url, org, "admin")
    session = await _session(gw, email)
    headers = bearer(session["access_token"])
    assert (await gw.client.get("/v1/members", headers=headers)).status_code == 200
    assert (await gw.client.delete("/v1/sessions/current", headers=headers)).status_code == 204
    after = await gw.client.get("/v1/members", headers=headers)
    assert after.status_code == 401
    refresh = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": session["refresh_token"]})
    assert refresh.status_code == 401
    assert (await gw.client.delete("/v1/sessions/current", headers=headers)).status_code == 401
    key_logout = await gw.client.delete("/v1/sessions/current", headers=org.key)
    assert key_logout.status_code == 403 and _code(key_logout) == "session_required"
    assert (await gw.client.delete("/v1/sessions/current")).status_code == 401
    assert "session.logout" in await _audit_actions(database_url, org.id)


async def test_invite_accept_login(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    email = _email("Invitee").upper()
    invited = await gw.client.post("/v1/members", json={"email": email, "role": "box_office"}, headers=org.key)
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["email"] == email.lower() and body["role"] == "box_office"
    token = body["invitation"]["token"]
    assert token.startswith("vi_")
    again = await gw.client.post("/v1/members", json={"email": email, "role": "scanner"}, headers=org.key)
    assert again.status_code == 409 and _code(again) == "already_member"
    weak = await gw.client.post("/v1/invitations/accept", json={"token": token, "password": "short"})
    assert weak.status_code == 422
    accepted = await gw.client.post("/v1/invitations/accept", json={"token": token, "password": NEW_PASSWORD})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json() == {"user_id": body["user_id"], "email": email.lower()}
    twice = await gw.client.post("/v1/invitations/accept", json={"token": token, "password": NEW_PASSWORD})
    assert twice.status_code == 409 and _code(twice) == "invitation_used"
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert (
        await gw.client.post("/v1/invitations/accept", json={"token": forged, "password": NEW_PASSWORD})
    ).status_code == 404
    session = await _session(gw, email, password=NEW_PASSWORD)
    assert session["role"] == "box_office" and session["user_id"] == body["user_id"]
    assert await _statuses(gw, org) == {body["user_id"]: "active"}
    # A person who already has a password is only invited by another org: pending until they accept that org's
    # invitation with their own password (the token alone, which the inviter saw, is not enough).
    other = await _org(database_url)
    joined = await gw.client.post("/v1/members", json={"email": email, "role": "analyst"}, headers=other.key)
    assert joined.status_code == 201 and joined.json()["status"] == "pending"
    assert joined.json()["user_id"] == body["user_id"]
    other_token = joined.json()["invitation"]["token"]
    assert await _statuses(gw, other) == {body["user_id"]: "pending"}
    pending = await _login(gw, email, NEW_PASSWORD, org_id=other.id)
    assert pending.status_code == 401 and _code(pending) == "invalid_credentials"
    wrong = await gw.client.post("/v1/invitations/accept", json={"token": other_token, "password": PASSWORD})
    assert wrong.status_code == 401 and _code(wrong) == "invalid_credentials"
    assert await _statuses(gw, other) == {body["user_id"]: "pending"}
    consent = await gw.client.post("/v1/invitations/accept", json={"token": other_token, "password": NEW_PASSWORD})
    assert consent.status_code == 200, consent.text
    assert await _statuses(gw, other) == {body["user_id"]: "active"}
    assert (await _session(gw, email, password=NEW_PASSWORD, org_id=other.id))["role"] == "analyst"
    actions = await _audit_actions(database_url, org.id)
    assert "member.invite" in actions and "invitation.accept" in actions


async def test_an_inviter_cannot_take_over_an_account_invited_elsewhere(gw: Gateway, database_url: str) -> None:
    """B invites alice (a new account); A invites alice too and accepts its own token: it may not set alice's
    password, so A never logs in as alice, to A or to B."""
    org_a, org_b = await _org(database_url), await _org(database_url)
    alice = _email("alice")
    from_b = await _invite(gw, org_b, alice, "analyst")
    from_a = await _invite(gw, org_a, alice, "admin")
    assert from_a["user_id"] == from_b["user_id"] and from_a["status"] == "pending"
    takeover = await _accept(gw, from_a["invitation"]["token"], "the attackers own password")
    assert takeover.status_code == 409 and _code(takeover) == "password_not_set"
    for org in (org_a, org_b):
        refused = await _login(gw, alice, "the attackers own password", org_id=org.id)
        assert refused.status_code == 401 and _code(refused) == "invalid_credentials"
        assert await _statuses(gw, org) == {from_b["user_id"]: "pending"}
    # The real alice accepts B's invitation (the one that made her account), then A's with her own password.
    assert (await _accept(gw, from_b["invitation"]["token"], PASSWORD)).status_code == 200
    assert (await _session(gw, alice, org_id=org_b.id))["role"] == "analyst"
    assert await _statuses(gw, org_a) == {from_b["user_id"]: "pending"}
    assert (await _login(gw, alice, org_id=org_a.id)).status_code == 401
    assert (await _accept(gw, from_a["invitation"]["token"], PASSWORD)).status_code == 200
    assert (await _session(gw, alice, org_id=org_a.id))["role"] == "admin"


async def test_an_org_cannot_join_an_existing_account_without_its_owner(gw: Gateway, database_url: str) -> None:
    """A made victim's account and knows its password; B adds victim. B's membership stays pending (nobody but
    the holder of B's token and victim's password can accept it), so A cannot log in to B."""
    org_a, org_b = await _org(database_url), await _org(database_url)
    victim = _email("victim")
    made = await _invite(gw, org_a, victim, "scanner")
    assert (await _accept(gw, made["invitation"]["token"], PASSWORD)).status_code == 200  # A set the password
    added = await _invite(gw, org_b, victim, "admin")
    assert added["status"] == "pending" and added["invitation"] is not None
    into_b = await _login(gw, victim, org_id=org_b.id)
    # The same answer as an org the person is not in at all: a pending membership is not revealed.
    stranger = await _login(gw, victim, org_id=(await _org(database_url)).id)
    assert into_b.status_code == stranger.status_code == 401 and into_b.json() == stranger.json()
    only_a = await _session(gw, victim)  # no org_id: the pending org does not make it ambiguous
    assert only_a["org_id"] == org_a.id
    assert await _statuses(gw, org_b) == {added["user_id"]: "pending"}
    # A failed login is audited only where the person has joined.
    await _login(gw, victim, "a wrong password for victim")
    assert "session.login_failed" in await _audit_actions(database_url, org_a.id)
    assert "session.login_failed" not in await _audit_actions(database_url, org_b.id)


async def test_a_pending_member_can_be_changed_and_removed(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    pending = await _invite(gw, org, _email("pending"), "scanner")
    user_id = pending["user_id"]
    changed = await gw.client.patch(f"/v1/members/{user_id}", json={"role": "analyst"}, headers=org.key)
    assert changed.status_code == 200 and changed.json() == {**changed.json(), "role": "analyst", "status": "pending"}
    assert (await gw.client.delete(f"/v1/members/{user_id}", headers=org.key)).status_code == 204
    gone = await _accept(gw, pending["invitation"]["token"], PASSWORD)  # its invitation went with it
    assert gone.status_code == 404
    # Invited again: nobody has claimed the account, so the new invitation sets its first password.
    again = await _invite(gw, org, pending["email"], "scanner")
    assert again["user_id"] == user_id
    assert (await _accept(gw, again["invitation"]["token"], PASSWORD)).status_code == 200
    assert (await _session(gw, pending["email"]))["role"] == "scanner"


async def test_role_change_and_removal_end_the_members_sessions(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, owner_email = await _person(database_url, org, "owner")
    admin_id, admin_email = await _person(database_url, org, "admin")
    owner = bearer((await _session(gw, owner_email))["access_token"])
    admin = await _session(gw, admin_email)
    assert (await gw.client.get("/v1/members", headers=bearer(admin["access_token"]))).status_code == 200
    changed = await gw.client.patch(f"/v1/members/{admin_id}", json={"role": "analyst"}, headers=owner)
    assert changed.status_code == 200 and changed.json()["role"] == "analyst"
    assert (await gw.client.get("/v1/members", headers=bearer(admin["access_token"]))).status_code == 401
    stale = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": admin["refresh_token"]})
    assert stale.status_code == 401
    analyst = await _session(gw, admin_email)
    assert analyst["role"] == "analyst"
    removed = await gw.client.delete(f"/v1/members/{admin_id}", headers=owner)
    assert removed.status_code == 204
    assert (await gw.client.delete("/v1/sessions/current", headers=bearer(analyst["access_token"]))).status_code == 401
    assert (await _login(gw, admin_email)).status_code == 401
    assert admin_id not in await _members(gw, org)
    gone = await gw.client.delete(f"/v1/members/{admin_id}", headers=owner)
    assert gone.status_code == 404 and _code(gone) == "member_not_found"
    actions = await _audit_actions(database_url, org.id)
    assert "member.role_change" in actions and "member.remove" in actions


async def test_the_last_owner_stays_and_admins_cannot_touch_owners(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    owner_id, owner_email = await _person(database_url, org, "owner")
    admin_id, admin_email = await _person(database_url, org, "admin")
    owner = bearer((await _session(gw, owner_email))["access_token"])
    admin = bearer((await _session(gw, admin_email))["access_token"])
    leave = await gw.client.delete(f"/v1/members/{owner_id}", headers=owner)
    assert leave.status_code == 409 and _code(leave) == "last_owner"
    demote = await gw.client.patch(f"/v1/members/{owner_id}", json={"role": "admin"}, headers=owner)
    assert demote.status_code == 409 and _code(demote) == "last_owner"
    for attempt in (
        gw.client.patch(f"/v1/members/{owner_id}", json={"role": "scanner"}, headers=admin),
        gw.client.delete(f"/v1/members/{owner_id}", headers=admin),
        gw.client.patch(f"/v1/members/{admin_id}", json={"role": "owner"}, headers=admin),
        gw.client.post("/v1/members", json={"email": _email(), "role": "owner"}, headers=admin),
        gw.client.post("/v1/members", json={"email": _email(), "role": "owner"}, headers=org.key),  # keys: no owners
    ):
        refused = await attempt
        assert refused.status_code == 403 and _code(refused) == "role_not_grantable", refused.text
    assert await _members(gw, org) == {owner_id: "owner", admin_id: "admin"}
    # A second owner: now the first may step down.
    promoted = await gw.client.patch(f"/v1/members/{admin_id}", json={"role": "owner"}, headers=owner)
    assert promoted.status_code == 200
    assert (await gw.client.delete(f"/v1/members/{owner_id}", headers=owner)).status_code == 204
    assert await _members(gw, org) == {admin_id: "owner"}


async def test_another_orgs_member_is_not_found(gw: Gateway, database_url: str) -> None:
    org, other = await _org(database_url), await _org(database_url)
    theirs, _ = await _person(database_url, other, "admin")
    for response in (
        await gw.client.patch(f"/v1/members/{theirs}", json={"role": "scanner"}, headers=org.key),
        await gw.client.delete(f"/v1/members/{theirs}", headers=org.key),
        await gw.client.delete("/v1/members/usr_nothex", headers=org.key),
    ):
        assert response.status_code == 404 and _code(response) == "member_not_found"
    assert theirs not in await _members(gw, org)
    assert await _members(gw, other) == {theirs: "admin"}


BAD_BODIES: list[tuple[str, str, Any, int]] = [
    ("POST", "/v1/sessions", {"email": "not-an-email", "password": PASSWORD}, 422),
    ("POST", "/v1/sessions", {"email": "a@example.com"}, 422),
    ("POST", "/v1/sessions", {"email": "a@example.com", "password": PASSWORD, "org_id": "org_x"}, 422),
    ("POST", "/v1/sessions", {"email": "a@example.com", "password": PASSWORD, "admin": True}, 422),
    ("POST", "/v1/sessions", {"email": "a@example.com", "password": "x" * 300}, 422),
    ("POST", "/v1/sessions", [1], 422),
    ("POST", "/v1/sessions/refresh", {"refresh_token": 5}, 422),
    ("POST", "/v1/sessions/refresh", {}, 422),
    ("POST", "/v1/invitations/accept", {"token": "vi_x", "password": "short"}, 422),
    ("POST", "/v1/invitations/accept", {"token": "", "password": PASSWORD}, 422),
    ("POST", "/v1/members", {"email": "a@example.com", "role": "emperor"}, 422),
    ("POST", "/v1/members", {"email": "nope", "role": "admin"}, 422),
    ("POST", "/v1/members", {"email": "a@example.com", "role": "admin", "extra": 1}, 422),
    ("PATCH", "/v1/members/{member}", {"role": "emperor"}, 422),
    ("PATCH", "/v1/members/{member}", {}, 422),
]


async def test_bad_input_on_every_new_route_changes_nothing(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    member_id, _ = await _person(database_url, org, "scanner")
    before_members, before_audit = await _members(gw, org), await _audit_actions(database_url, org.id)
    for method, path, body, status in BAD_BODIES:
        url = path.format(member=member_id)
        response = await gw.client.request(method, url, json=body, headers=org.key)
        assert response.status_code == status, (method, path, body, response.text)
        assert set(response.json()["error"]) == {"code", "message", "details"}
    for method, path in [
        ("POST", "/v1/sessions"),
        ("POST", "/v1/sessions/refresh"),
        ("POST", "/v1/invitations/accept"),
        ("POST", "/v1/members"),
        ("PATCH", f"/v1/members/{member_id}"),
    ]:
        malformed = await gw.client.request(
            method, path, content=b"{not json", headers={**org.key, "content-type": "application/json"}
        )
        assert malformed.status_code == 400 and _code(malformed) == "malformed_json", (path, malformed.text)
        not_json = await gw.client.request(
            method, path, content=b"a=b", headers={**org.key, "content-type": "text/plain"}
        )
        assert not_json.status_code == 415, (path, not_json.text)
        huge = await gw.client.request(
            method, path, content=b" " * (65 * 1024), headers={**org.key, "content-type": "application/json"}
        )
        assert huge.status_code == 413, (path, huge.text)
    for token in ("vr_garbage", "vr_" + "0" * 32 + "_" + "a" * 43):
        refused = await gw.client.post("/v1/sessions/refresh", json={"refresh_token": token})
        assert refused.status_code == 401 and _code(refused) == "invalid_refresh_token"
    for token in ("vi_garbage", "vi_" + "0" * 32 + "_" + "a" * 43):
        refused = await gw.client.post("/v1/invitations/accept", json={"token": token, "password": PASSWORD})
        assert refused.status_code == 404 and _code(refused) == "invitation_not_found"
    assert await _members(gw, org) == before_members
    assert await _audit_actions(database_url, org.id) == before_audit


async def test_the_openapi_shows_login_and_accept_without_a_key(gw: Gateway) -> None:
    spec = (await gw.client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ("/v1/sessions", "/v1/sessions/refresh", "/v1/invitations/accept"):
        assert "security" not in paths[path]["post"] and "x-scope" not in paths[path]["post"]
    for path, method in (("/v1/members", "get"), ("/v1/members", "post"), ("/v1/members/{user_id}", "patch")):
        assert paths[path][method]["x-scope"] == "members:manage"
    assert "delete" in paths["/v1/sessions/current"]


async def test_password_guessing_answers_429_before_the_password_is_checked(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    _, email = await _person(database_url, org, "analyst")
    statuses = [(await _login(gw, email, f"guess number {n:04d}")).status_code for n in range(30)]
    assert statuses[0] == 401 and statuses[-1] == 429
    throttled = await _login(gw, email)  # even the right password, while the account's budget is spent
    assert throttled.status_code == 429 and _code(throttled) == "rate_limited"
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_a_burst_of_concurrent_guesses_is_cut_at_the_budget(gw: Gateway, database_url: str) -> None:
    """Every attempt is charged when it arrives, so guesses sent at once cannot all reach the password check."""
    org = await _org(database_url)
    _, email = await _person(database_url, org, "analyst")
    budget = gw.app.state.services.limits.policy.rate("logins", "account").burst
    burst = 4 * budget
    answers = await asyncio.gather(*(_login(gw, email, f"concurrent guess {n:04d}") for n in range(burst)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= budget, statuses  # only these reached argon2
    assert statuses.count(429) >= burst - budget


async def test_an_org_without_an_owner_person_still_manages_its_members(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)  # `voelgoed org create`: an owner key, no owner person yet
    made = await gw.client.post("/v1/members", json={"email": _email(), "role": "admin"}, headers=org.key)
    assert made.status_code == 201
    user_id = made.json()["user_id"]
    changed = await gw.client.patch(f"/v1/members/{user_id}", json={"role": "scanner"}, headers=org.key)
    assert changed.status_code == 200 and changed.json()["role"] == "scanner"
    assert (await gw.client.delete(f"/v1/members/{user_id}", headers=org.key)).status_code == 204


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(gw: Gateway, database_url: str) -> None:
    org = await _org(database_url)
    first_id, first_email = await _person(database_url, org, "owner")
    second_id, second_email = await _person(database_url, org, "owner")
    first = bearer((await _session(gw, first_email))["access_token"])
    second = bearer((await _session(gw, second_email))["access_token"])
    answers = await asyncio.gather(
        gw.client.patch(f"/v1/members/{second_id}", json={"role": "admin"}, headers=first),
        gw.client.patch(f"/v1/members/{first_id}", json={"role": "admin"}, headers=second),
    )
    statuses = sorted(a.status_code for a in answers)
    # One wins; the other is refused: as the last owner's change (409), or because the winner's change ended
    # the loser's session first (401).
    assert statuses[0] == 200 and statuses[1] in (401, 409), [a.text for a in answers]
    assert sorted((await _members(gw, org)).values()) == ["admin", "owner"]
