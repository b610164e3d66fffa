"""/v1/sessions and /v1/invitations/accept: people log in with e-mail and password, refresh, log out, and set
their first password from an invitation.

Logging in and accepting an invitation are the only /v1 routes without an API key or token (the caller has
neither yet). A wrong e-mail and a wrong password answer alike, with the same message and about the same time:
an unknown e-mail is verified against a dummy hash, so neither the answer nor its timing says who has an account.
An org where the person is only invited (pending) answers like an org they are not in.

Consent: an org may invite any address, and its inviter sees the invitation token, so a token alone never joins
an org to an existing account: it is accepted with the person's own password. Only the invitation that created
the account sets its first password (persistence/invitations.py).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from gateway import schemas
from gateway.client_ip import client_ip
from gateway.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    InfrastructureError,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from gateway.openapi import operation
from gateway.password_work import PASSWORDS
from gateway.ratelimit import RouteClass
from gateway.routes.context import Endpoint, Services, authenticate, json_response, read_body, services
from gateway.sessions import TokenSigner, end_sessions
from persistence import audit, invitations, memberships, sessions, users
from persistence.invitations import AcceptOutcome
from persistence.sessions import RefreshOutcome

log = logging.getLogger(__name__)

TAG = ("sessions",)
_INVALID_CREDENTIALS = "the e-mail or password is wrong"
_INVALID_REFRESH = "the refresh token is malformed, unknown, expired or revoked: log in again"


@dataclass(frozen=True)
class PublicWrite:
    """What a handler of a route without an API key works with once the body is read."""

    request: Request
    body: bytes
    ip: str
    svc: Services


def public_write(handler: Callable[[PublicWrite], Awaitable[Response]]) -> Endpoint:
    """The shape of the routes a caller without a key may call: the same body rules as every write (64 KiB,
    JSON only: 413/415; the handler's schema answers 400/422), but no key, hence no Idempotency-Key record
    (there is no key holder to file it under). Their own checks make retries safe: a login only makes
    another session; an invitation is single-use."""

    async def endpoint(request: Request) -> Response:
        body = await read_body(request)
        return await handler(PublicWrite(request, body, client_ip(request), services(request)))

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


class SessionsUnavailable(InfrastructureError):
    code = "sessions_unavailable"
    default_message = "logging in is not configured on this server (no session secret); API keys still work"


def _signer(svc: Services) -> TokenSigner:
    signer = svc.auth.signer
    if signer is None:
        raise SessionsUnavailable()
    return signer


def _person(user_id: str, ip: str) -> audit.Actor:
    return audit.Actor("user", user_id, ip)


def _invalid_credentials() -> Unauthorized:
    return Unauthorized(_INVALID_CREDENTIALS, code="invalid_credentials")


def _invalid_refresh() -> Unauthorized:
    return Unauthorized(_INVALID_REFRESH, code="invalid_refresh_token")


def _session_body(
    signer: TokenSigner, session: sessions.SessionRecord, refresh_token: str, role: str
) -> dict[str, Any]:
    access_token, expires_in = signer.issue_access(session.user_id, session.org_id, session.id, role)
    return {
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "session_id": session.id,
        "user_id": session.user_id,
        "org_id": session.org_id,
        "role": role,
    }


@operation(
    summary="Log in with e-mail and password: a short-lived access token and a single-use refresh token",
    description="No API key. A person in several organizations names one with org_id. A wrong e-mail or "
    "password answers 401 invalid_credentials alike; repeated failures answer 429.",
    status=201,
    request=schemas.SessionCreate,
    response=schemas.SessionOut,
    errors=(401, 429, 503),
    tags=TAG,
)
@public_write
async def login(write: PublicWrite) -> Response:
    svc, ip = write.svc, write.ip
    wanted = schemas.parse_body(schemas.SessionCreate, write.body)
    signer = _signer(svc)
    email = users.normalize_email(wanted.email)
    await svc.limits.admit_public(ip)
    await svc.limits.admit_login(email=email, ip=ip)  # charged before the password is checked: 429
    async with svc.unscoped("log in: find the person by e-mail and the orgs they belong to") as platform:
        user = await users.find_user_by_email(platform, email)
        orgs = await memberships.memberships_of_user(platform, user.id) if user is not None else []
    stored_hash = user.password_hash if user is not None and user.password_hash is not None else DUMMY_HASH
    # argon2 holds a core for tens of milliseconds (it releases the GIL): off the loop, bounded (password_work).
    matches = await PASSWORDS.run(verify_password, stored_hash, wanted.password)
    chosen = [m for m in orgs if wanted.org_id in (None, m.org_id)]
    if user is None or user.password_hash is None or not matches or not chosen:
        await _login_failed(svc, ip, user, orgs, wanted.org_id)
        raise _invalid_credentials()
    if len(chosen) > 1:
        # The password was right: telling the person their own organizations reveals nothing about anyone else.
        raise ValidationFailed(
            "you belong to several organizations: name one in org_id",
            {
                "fields": [{"field": "org_id", "message": "required: you belong to several orgs", "type": "missing"}],
                "org_ids": [m.org_id for m in chosen],
            },
        )
    async with svc.tenant(chosen[0].org_id) as db:
        # Read again, share-locked, in the transaction that makes the session: a role change or removal racing
        # this login either waits and then revokes the new session, or commits first and is what we read here.
        role = await memberships.accepted_role(db, user.id)
        if role is None:
            raise _invalid_credentials()
        session, refresh_token = await sessions.create_session(db, user.id)
        change = audit.Change("session.login", "session", session.id, after={"user_id": user.id, "role": role})
        await audit.record(db, _person(user.id, ip), change)
    if needs_rehash(user.password_hash):
        try:
            await _rehash(svc, user.id, user.password_hash, wanted.password)
        except InfrastructureError:  # the session exists: the upgrade waits for the next login
            log.warning("could not upgrade the password hash of %s", user.id, exc_info=True)
    return json_response(_session_body(signer, session, refresh_token, role), 201)


async def _rehash(svc: Services, user_id: str, old_hash: str, password: str) -> None:
    new_hash = await PASSWORDS.run(hash_password, password)
    async with svc.unscoped("log in: upgrade the person's password hash (the org-bound role may not write it)") as raw:
        await users.rehash_password(raw, user_id, old_hash, new_hash)


async def _login_failed(
    svc: Services,
    ip: str,
    user: users.UserRecord | None,
    orgs: list[memberships.MembershipOf],
    named_org: str | None,
) -> None:
    # The attempt was charged to the login buckets on arrival. Audited only in the orgs the person has joined
    # (``orgs`` holds accepted memberships): an org that merely invited them learns nothing of their logins.
    if user is None or not orgs:
        # No org to attribute it to (and an org's log must not learn of strangers): the process log only.
        log.info("failed login for an unknown e-mail from %s", ip)
        return
    attributed = [m for m in orgs if m.org_id == named_org] or orgs
    for membership in attributed:
        async with svc.tenant(membership.org_id) as db:
            change = audit.Change("session.login_failed", "user", user.id, after={"org_named": named_org})
            await audit.record(db, _person(user.id, ip), change)


@operation(
    summary="Exchange a refresh token for a new access token and a new refresh token",
    description="No API key. Each refresh token works once; presenting one already used ends the whole "
    "session (someone else may hold a copy). A session lasts at most 30 days from login.",
    request=schemas.SessionRefresh,
    response=schemas.SessionOut,
    errors=(401, 503),
    tags=TAG,
)
@public_write
async def refresh(write: PublicWrite) -> Response:
    svc = write.svc
    wanted = schemas.parse_body(schemas.SessionRefresh, write.body)
    signer = _signer(svc)
    await svc.limits.admit_public(write.ip)
    try:
        return await _refresh(write, signer, wanted.refresh_token)
    except Unauthorized:
        await svc.limits.auth_failed(ip=write.ip, presented=wanted.refresh_token)  # guessing costs: 429 soon
        raise


async def _refresh(write: PublicWrite, signer: TokenSigner, refresh_token: str) -> Response:
    svc = write.svc
    parsed = sessions.parse_refresh_token(refresh_token)
    if parsed is None:
        raise _invalid_refresh()
    session_id, secret = parsed
    async with svc.unscoped("refresh a session: the refresh token names no org") as platform:
        org_id = await sessions.org_of_session(platform, session_id)
    if org_id is None:
        raise _invalid_refresh()
    async with svc.tenant(org_id) as db:
        result = await sessions.rotate(db, session_id, secret)
        role = await memberships.accepted_role(db, result.session.user_id) if result.session else None
        if result.outcome is RefreshOutcome.REUSED and result.session is not None:
            # Committed, not rolled back: the session stays revoked although this request fails.
            await end_sessions(svc.redis, db, [session_id])
            actor = _person(result.session.user_id, write.ip)
            change = audit.Change("session.refresh_reused", "session", session_id, after={"revoked": True})
            await audit.record(db, actor, change)
        elif result.outcome is RefreshOutcome.ROTATED and result.session is not None and role is not None:
            actor = _person(result.session.user_id, write.ip)
            await audit.record(db, actor, audit.Change("session.refresh", "session", session_id))
    if result.outcome is RefreshOutcome.REUSED:
        log.warning("refresh token reuse: session %s of org %s revoked", session_id, org_id)
        raise Unauthorized(
            "this refresh token was already used: the session is ended, log in again", code="refresh_token_reused"
        )
    if result.outcome is not RefreshOutcome.ROTATED or result.refresh_token is None or role is None:
        raise _invalid_refresh()  # WRONG_SECRET included: a guess must not end someone else's session
    assert result.session is not None
    return json_response(_session_body(signer, result.session, result.refresh_token, role))


@operation(
    summary="Log out: end the session of the access token presented; it answers 401 from now on",
    description="Needs a person's access token (Authorization: Bearer <access_token>), any role; not an API key.",
    status=204,
    errors=(401, 403, 503),
    tags=TAG,
)
async def logout(request: Request) -> Response:
    svc = services(request)
    principal = await authenticate(request)  # a bad token spends the address's failure budget (429)
    await svc.limits.admit(RouteClass.writes, principal=principal, ip=client_ip(request))
    if principal.session_id is None:
        raise Forbidden("only a person's session can log out; revoke an API key instead", code="session_required")
    async with svc.tenant(principal.org_id) as db:
        if await sessions.revoke_session(db, principal.session_id):
            await end_sessions(svc.redis, db, [principal.session_id])
            actor = _person(principal.actor_id, client_ip(request))
            await audit.record(db, actor, audit.Change("session.logout", "session", principal.session_id))
    return Response(status_code=204)


@operation(
    summary="Accept an invitation: join the organization; a new person sets their password, anyone else gives "
    "theirs",
    description="No API key: the invitation token plus the person's password. The invitation that created the "
    "account sets its first password; any other is accepted with the person's existing password (401 "
    "invalid_credentials when wrong, counted like a failed login; 409 password_not_set when the person has not "
    "yet accepted the invitation that created their account). Single use; it expires 7 days after the "
    "invitation. Until it is accepted the membership is pending and cannot log in.",
    request=schemas.InvitationAccept,
    response=schemas.InvitationAccepted,
    errors=(401, 404, 409, 410, 429, 503),
    tags=TAG,
)
@public_write
async def accept_invitation(write: PublicWrite) -> Response:
    svc = write.svc
    wanted = schemas.parse_body(schemas.InvitationAccept, write.body)
    await svc.limits.admit_public(write.ip)
    try:
        return await _accept(write, wanted)
    except NotFound:
        await svc.limits.auth_failed(ip=write.ip, presented=wanted.token)  # guessing costs: 429 soon
        raise


async def _accept(write: PublicWrite, wanted: schemas.InvitationAccept) -> Response:
    svc = write.svc
    parsed = invitations.parse_invitation_token(wanted.token)
    if parsed is None:
        raise _no_invitation()
    async with svc.unscoped("accept an invitation: the token names no org; the person's password is checked") as raw:
        found = await invitations.check(raw, *parsed)
        _refuse_unaccepted(found)  # a bad token never reaches the password check
        assert found.invitation is not None
        user = await users.find_user_by_id(raw, found.invitation.user_id)
    if user is None:
        raise _no_invitation()
    new_hash = await _password_for(svc, write.ip, found.invitation, user, wanted.password)
    if new_hash is not None:
        # Before the invitation is used, in a transaction of its own (the org-bound role may not write users):
        # should what follows fail, the person has their password and accepts again with it.
        async with svc.unscoped("accept an invitation: set the new account's first password") as raw:
            if not await users.set_first_password(raw, user.id, new_hash):
                raise _password_already_set()  # set by a concurrent acceptance of the same token
    async with svc.tenant(found.invitation.org_id) as db:
        accepted = await invitations.accept(db, *parsed)  # again, under lock: single use
        _refuse_unaccepted(accepted)
        await memberships.accept_membership(db, user.id)
        actor = _person(user.id, write.ip)
        await audit.record(db, actor, audit.Change("invitation.accept", "invitation", found.invitation.id))
    return json_response({"user_id": user.id, "email": user.email})


async def _password_for(
    svc: Services, ip: str, invitation: invitations.InvitationRecord, user: users.UserRecord, password: str
) -> str | None:
    """The first password's hash to store, or None after checking the person's existing password. Whoever
    invited the person saw the token, so a token never sets or replaces the password of an account that another
    invitation (or the person) owns: only the invitation that created the account sets its first one."""
    if user.password_hash is None:
        if not invitation.creates_user:
            raise Conflict(
                "you have no password yet: first accept the invitation that created your account, then this one "
                "with that password",
                code="password_not_set",
            )
        return await PASSWORDS.run(hash_password, password)
    await svc.limits.admit_login(email=user.email, ip=ip)  # a password guess like any login: 429
    if not await PASSWORDS.run(verify_password, user.password_hash, password):
        raise _invalid_credentials()
    return None


def _password_already_set() -> Conflict:
    return Conflict("this person already has a password: accept with it", code="password_already_set")


def _no_invitation() -> NotFound:
    return NotFound("no such invitation", code="invitation_not_found")


def _refuse_unaccepted(accepted: invitations.Acceptance) -> None:
    refusals: dict[AcceptOutcome, DomainError] = {
        AcceptOutcome.UNKNOWN: _no_invitation(),
        AcceptOutcome.ALREADY_USED: Conflict("the invitation was already used", code="invitation_used"),
        AcceptOutcome.EXPIRED: Gone("the invitation has expired: ask for a new one", code="invitation_expired"),
    }
    refusal = refusals.get(accepted.outcome)
    if refusal is not None:
        raise refusal


ROUTES: list[BaseRoute] = [
    Route("/v1/sessions", login, methods=["POST"]),
    Route("/v1/sessions/refresh", refresh, methods=["POST"]),
    Route("/v1/sessions/current", logout, methods=["DELETE"]),
    Route("/v1/invitations/accept", accept_invitation, methods=["POST"]),
]
