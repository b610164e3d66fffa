"""Session use cases: a person logs in with e-mail and password, refreshes, logs out, and joins an org by
accepting an invitation.

A wrong e-mail and a wrong password are refused alike, with the same message and about the same time: an unknown
e-mail is verified against a dummy hash, so neither the answer nor its timing says who has an account. An org
where the person is only invited (pending) is refused like an org they are not in.

Consent: an org may invite any address, and its inviter sees the invitation token, so a token alone never joins
an org to an existing account: it is accepted with the person's own password. Only the invitation that created
the account sets its first password (engine/access/rules.py ``invitation_password_refusal``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from engine.access import rules as access
from engine.access.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.access import invitations, memberships, sessions, users
from persistence.access.sessions import RefreshOutcome
from services.unit_of_work import Platform, UnitsOfWork

log = logging.getLogger(__name__)

T = TypeVar("T")

_INVALID_CREDENTIALS = "the e-mail or password is wrong"
_INVALID_REFRESH = "the refresh token is malformed, unknown, expired or revoked: log in again"
_UNACCEPTED: dict[Refusal, str] = {
    Refusal.INVITATION_NOT_FOUND: "no such invitation",
    Refusal.INVITATION_USED: "the invitation was already used",
    Refusal.INVITATION_EXPIRED: "the invitation has expired: ask for a new one",
}
# The unit of a refresh acts for a person known only once the token is read: each entry names them (``by``).
_REFRESH_HOLDER = audit.Actor("system", "session-refresh")


class Passwords(Protocol):
    """Where argon2 runs: off the event loop and boundedly, since each hash or check holds a core for tens of
    milliseconds (gateway/password_work.py)."""

    async def run(self, work: Callable[..., T], *args: Any) -> T: ...


class LoginAdmission(Protocol):
    """The login rate limits (gateway/ratelimit.py): every password check is charged to the e-mail's and the
    address's budgets before it runs, so guessing answers 429 soon."""

    async def admit_login(self, *, email: str, ip: str) -> None: ...


class AccessTokens(Protocol):
    """Who signs a session's short-lived access tokens (gateway/sessions.py TokenSigner): (token, seconds)."""

    def issue_access(self, user_id: str, org_id: str, session_id: str, role: str) -> tuple[str, int]: ...


class SessionMarks(Protocol):
    """Where an ended session's access tokens stop at once (gateway/sessions.py: revocation marks in Redis).
    Called inside the transaction that revokes the sessions' rows: if marking fails the change rolls back
    (nothing applied); if the commit fails after the marks, the sessions merely end early."""

    async def end(self, org_id: str, session_ids: Iterable[str]) -> None: ...


@dataclass(frozen=True)
class NewSession:
    """A session as its holder gets it: a fresh access token and the single-use refresh token."""

    session: sessions.SessionRecord
    role: str
    access_token: str
    expires_in_s: int
    refresh_token: str


class OrgRequired(Exception):
    """The right password, but the person belongs to several orgs and named none: they name one of these."""

    def __init__(self, org_ids: list[str]) -> None:
        super().__init__("you belong to several organizations: name one in org_id")
        self.org_ids = org_ids


def _person(user_id: str, ip: str) -> audit.Actor:
    return audit.Actor("user", user_id, ip)


def _invalid_credentials() -> Refused:
    return Refused(Refusal.INVALID_CREDENTIALS, _INVALID_CREDENTIALS)


def _invalid_refresh() -> Refused:
    return Refused(Refusal.INVALID_REFRESH_TOKEN, _INVALID_REFRESH)


def _issued(tokens: AccessTokens, session: sessions.SessionRecord, refresh_token: str, role: str) -> NewSession:
    access_token, expires_in_s = tokens.issue_access(session.user_id, session.org_id, session.id, role)
    return NewSession(session, role, access_token, expires_in_s, refresh_token)


async def log_in(
    platform: Platform,
    units: UnitsOfWork,
    passwords: Passwords,
    admission: LoginAdmission,
    tokens: AccessTokens,
    *,
    email: str,
    password: str,
    org_id: str | None,
    ip: str,
) -> NewSession:
    """A new session in the person's org (``org_id`` names one when they have several: else ``OrgRequired``)."""
    email = users.normalize_email(email)
    await admission.admit_login(email=email, ip=ip)  # charged before the password is checked: 429
    async with platform.unscoped("log in: find the person by e-mail and the orgs they belong to") as raw:
        user = await users.find_user_by_email(raw, email)
        orgs = await memberships.memberships_of_user(raw, user.id) if user is not None else []
    stored_hash = user.password_hash if user is not None and user.password_hash is not None else DUMMY_HASH
    matches = await passwords.run(verify_password, stored_hash, password)
    chosen = [m for m in orgs if org_id in (None, m.org_id)]
    if user is None or user.password_hash is None or not matches or not chosen:
        await _login_failed(units, ip, user, orgs, org_id)
        raise _invalid_credentials()
    if len(chosen) > 1:
        # The password was right: telling the person their own organizations reveals nothing about anyone else.
        raise OrgRequired([m.org_id for m in chosen])
    async with units.begin(chosen[0].org_id, _person(user.id, ip)) as uow:
        # Read again, share-locked, in the transaction that makes the session: a role change or removal racing
        # this login either waits and then revokes the new session, or commits first and is what we read here.
        role = await memberships.accepted_role(uow.db, user.id)
        if role is None:
            raise _invalid_credentials()
        session, refresh_token = await sessions.create_session(uow.db, user.id)
        uow.record(audit.Change("session.login", "session", session.id, after={"user_id": user.id, "role": role}))
    if needs_rehash(user.password_hash):
        await _upgrade_hash(platform, passwords, user.id, user.password_hash, password)
    return _issued(tokens, session, refresh_token, role)


async def _upgrade_hash(platform: Platform, passwords: Passwords, user_id: str, old_hash: str, password: str) -> None:
    # The session exists and its tokens must reach the person: whatever stops the upgrade (a store away, the
    # password workers busy) only postpones it to the next login.
    try:
        new_hash = await passwords.run(hash_password, password)
        reason = "log in: upgrade the person's password hash (the org-bound role may not write it)"
        async with platform.unscoped(reason) as raw:
            await users.rehash_password(raw, user_id, old_hash, new_hash)
    except Exception:
        log.warning("could not upgrade the password hash of %s", user_id, exc_info=True)


async def _login_failed(
    units: UnitsOfWork,
    ip: str,
    user: users.UserRecord | None,
    orgs: list[memberships.MembershipOf],
    named_org: str | None,
) -> None:
    # The attempt was charged to the login budgets on arrival. Audited only in the orgs the person has joined
    # (``orgs`` holds accepted memberships): an org that merely invited them learns nothing of their logins.
    if user is None or not orgs:
        # No org to attribute it to (and an org's log must not learn of strangers): the process log only.
        log.info("failed login for an unknown e-mail from %s", ip)
        return
    attributed = [m for m in orgs if m.org_id == named_org] or orgs
    for membership in attributed:
        async with units.begin(membership.org_id, _person(user.id, ip)) as uow:
            uow.record(audit.Change("session.login_failed", "user", user.id, after={"org_named": named_org}))


async def refresh(
    platform: Platform, units: UnitsOfWork, marks: SessionMarks, tokens: AccessTokens, *, refresh_token: str, ip: str
) -> NewSession:
    """The session with a new access token and a new refresh token. A refresh token already used ends the whole
    session (someone else may hold a copy): that is committed although the refusal follows."""
    parsed = sessions.parse_refresh_token(refresh_token)
    if parsed is None:
        raise _invalid_refresh()
    session_id, secret = parsed
    async with platform.unscoped("refresh a session: the refresh token names no org") as raw:
        org_id = await sessions.org_of_session(raw, session_id)
    if org_id is None:
        raise _invalid_refresh()
    async with units.begin(org_id, _REFRESH_HOLDER) as uow:
        result = await sessions.rotate(uow.db, session_id, secret)
        role = await memberships.accepted_role(uow.db, result.session.user_id) if result.session else None
        if result.outcome is RefreshOutcome.REUSED and result.session is not None:
            await marks.end(org_id, [session_id])
            change = audit.Change("session.refresh_reused", "session", session_id, after={"revoked": True})
            uow.record(change, by=_person(result.session.user_id, ip))
        elif result.outcome is RefreshOutcome.ROTATED and result.session is not None and role is not None:
            uow.record(audit.Change("session.refresh", "session", session_id), by=_person(result.session.user_id, ip))
    if result.outcome is RefreshOutcome.REUSED:
        log.warning("refresh token reuse: session %s of org %s revoked", session_id, org_id)
        raise Refused(
            Refusal.REFRESH_TOKEN_REUSED, "this refresh token was already used: the session is ended, log in again"
        )
    if result.outcome is not RefreshOutcome.ROTATED or result.refresh_token is None or role is None:
        raise _invalid_refresh()  # WRONG_SECRET included: a guess must not end someone else's session
    assert result.session is not None
    return _issued(tokens, result.session, result.refresh_token, role)


async def log_out(
    units: UnitsOfWork, marks: SessionMarks, org_id: str, actor: audit.Actor, session_id: str | None
) -> None:
    """End the caller's session (``session_id``: None for an API key, which has none to end)."""
    if session_id is None:
        raise Refused(Refusal.SESSION_REQUIRED, "only a person's session can log out; revoke an API key instead")
    async with units.begin(org_id, actor) as uow:
        if await sessions.revoke_session(uow.db, session_id):
            await marks.end(org_id, [session_id])
            uow.record(audit.Change("session.logout", "session", session_id))


async def accept_invitation(
    platform: Platform,
    units: UnitsOfWork,
    passwords: Passwords,
    admission: LoginAdmission,
    *,
    token: str,
    password: str,
    ip: str,
) -> users.UserRecord:
    """The person, now an active member of the invitation's org: with their first password set by it, or having
    given their own."""
    parsed = invitations.parse_invitation_token(token)
    if parsed is None:
        raise _no_invitation()
    reason = "accept an invitation: the token names no org; the person's password is checked"
    async with platform.unscoped(reason) as raw:
        found = await invitations.check(raw, *parsed)
        _refuse_unaccepted(found)  # a bad token never reaches the password check
        assert found.invitation is not None
        user = await users.find_user_by_id(raw, found.invitation.user_id)
    if user is None:
        raise _no_invitation()
    new_hash = await _password_for(passwords, admission, ip, found.invitation, user, password)
    if new_hash is not None:
        # Before the invitation is used, in a transaction of its own (the org-bound role may not write users):
        # should what follows fail, the person has their password and accepts again with it.
        async with platform.unscoped("accept an invitation: set the new account's first password") as raw:
            if not await users.set_first_password(raw, user.id, new_hash):
                # set by a concurrent acceptance of the same token
                raise Refused(Refusal.PASSWORD_ALREADY_SET, "this person already has a password: accept with it")
    async with units.begin(found.invitation.org_id, _person(user.id, ip)) as uow:
        accepted = await invitations.accept(uow.db, *parsed)  # again, under lock: single use
        _refuse_unaccepted(accepted)
        await memberships.accept_membership(uow.db, user.id)
        uow.record(audit.Change("invitation.accept", "invitation", found.invitation.id))
    return user


async def _password_for(
    passwords: Passwords,
    admission: LoginAdmission,
    ip: str,
    invitation: invitations.InvitationRecord,
    user: users.UserRecord,
    password: str,
) -> str | None:
    """The first password's hash to store, or None once the person's own password is checked."""
    refusal = access.invitation_password_refusal(user.password_hash is not None, invitation.creates_user)
    if refusal is not None:
        raise Refused(
            refusal,
            "you have no password yet: first accept the invitation that created your account, then this one with "
            "that password",
        )
    if user.password_hash is None:
        return await passwords.run(hash_password, password)
    await admission.admit_login(email=user.email, ip=ip)  # a password guess like any login: 429
    if not await passwords.run(verify_password, user.password_hash, password):
        raise _invalid_credentials()
    return None


def _no_invitation() -> Refused:
    return Refused(Refusal.INVITATION_NOT_FOUND, _UNACCEPTED[Refusal.INVITATION_NOT_FOUND])


def _refuse_unaccepted(acceptance: invitations.Acceptance) -> None:
    if acceptance.refusal is not None:
        raise Refused(acceptance.refusal, _UNACCEPTED[acceptance.refusal])
