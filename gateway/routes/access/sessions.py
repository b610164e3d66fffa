"""/v1/sessions and /v1/invitations/accept: people log in with e-mail and password, refresh, log out, and set
their first password from an invitation (the use cases and their rules: services/access/sessions.py).

Logging in, refreshing and accepting an invitation are the only /v1 routes without an API key or token (the
caller has neither yet), so each spends the caller's address budgets itself: every attempt the public one, and a
presented token that names nothing the failure one, like any credential that fails (429 soon).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.refusals import Refusal, Refused
from gateway.context import Services, actor_of
from gateway.endpoints import Call, write_route
from gateway.errors import InfrastructureError, ValidationFailed
from gateway.password_work import PASSWORDS
from gateway.rendering import render
from gateway.routes.access.models import InvitationAccept, InvitationAccepted, SessionCreate, SessionOut, SessionRefresh
from gateway.sessions import RevocationMarks, TokenSigner
from services.access import sessions

TAG = ("sessions",)
# A refresh refused for these says the presented token was a guess or a stolen copy: it costs like a bad key.
_FAILED_REFRESH = frozenset({Refusal.INVALID_REFRESH_TOKEN, Refusal.REFRESH_TOKEN_REUSED})


class SessionsUnavailable(InfrastructureError):
    code = "sessions_unavailable"
    default_message = "logging in is not configured on this server (no session secret); API keys still work"


def _signer(svc: Services) -> TokenSigner:
    signer = svc.auth.signer
    if signer is None:
        raise SessionsUnavailable()
    return signer


def session_view(new: sessions.NewSession) -> dict[str, Any]:
    return {
        "access_token": new.access_token,
        "token_type": "bearer",
        "expires_in": new.expires_in_s,
        "refresh_token": new.refresh_token,
        "session_id": new.session.id,
        "user_id": new.session.user_id,
        "org_id": new.session.org_id,
        "role": new.role,
    }


def _org_required(error: sessions.OrgRequired) -> ValidationFailed:
    return ValidationFailed(
        str(error),
        {
            "fields": [{"field": "org_id", "message": "required: you belong to several orgs", "type": "missing"}],
            "org_ids": error.org_ids,
        },
    )


@write_route(
    "Log in with e-mail and password: a short-lived access token and a single-use refresh token",
    description="No API key. A person in several organizations names one with org_id. A wrong e-mail or "
    "password answers 401 invalid_credentials alike; repeated failures answer 429.",
    scope=None,
    status=201,
    request=SessionCreate,
    response=SessionOut,
    errors=(401, 429, 503),
    tags=TAG,
    public=True,
)
async def login(call: Call[SessionCreate]) -> Response:
    wanted, svc = call.parsed(), call.svc
    signer = _signer(svc)
    await svc.limits.admit_public(call.ip)
    try:
        new = await sessions.log_in(
            svc, svc.units, PASSWORDS, svc.limits, signer,
            email=wanted.email, password=wanted.password, org_id=wanted.org_id, ip=call.ip,
        )
    except sessions.OrgRequired as error:
        raise _org_required(error) from None
    return render(SessionOut, session_view(new), 201)


@write_route(
    "Exchange a refresh token for a new access token and a new refresh token",
    description="No API key. Each refresh token works once; presenting one already used ends the whole "
    "session (someone else may hold a copy). A session lasts at most 30 days from login.",
    scope=None,
    request=SessionRefresh,
    response=SessionOut,
    errors=(401, 503),
    tags=TAG,
    public=True,
)
async def refresh(call: Call[SessionRefresh]) -> Response:
    wanted, svc = call.parsed(), call.svc
    signer = _signer(svc)
    await svc.limits.admit_public(call.ip)
    try:
        new = await sessions.refresh(
            svc, svc.units, RevocationMarks(svc.redis), signer, refresh_token=wanted.refresh_token, ip=call.ip
        )
    except Refused as refused:
        if refused.refusal in _FAILED_REFRESH:
            await svc.limits.auth_failed(ip=call.ip, presented=wanted.refresh_token)
        raise
    return render(SessionOut, session_view(new))


@write_route(
    "Log out: end the session of the access token presented; it answers 401 from now on",
    description="Needs a person's access token (Authorization: Bearer <access_token>), any role; not an API key.",
    scope=None,
    status=204,
    errors=(401, 403, 503),
    tags=TAG,
    idempotent=False,
)
async def logout(call: Call[Any]) -> Response:
    principal, svc = call.principal, call.svc
    actor = actor_of(call.request, principal)
    await sessions.log_out(svc.units, RevocationMarks(svc.redis), principal.org_id, actor, principal.session_id)
    return Response(status_code=204)


@write_route(
    "Accept an invitation: join the organization; a new person sets their password, anyone else gives theirs",
    description="No API key: the invitation token plus the person's password. The invitation that created the "
    "account sets its first password; any other is accepted with the person's existing password (401 "
    "invalid_credentials when wrong, counted like a failed login; 409 password_not_set when the person has not "
    "yet accepted the invitation that created their account). Single use; it expires 7 days after the "
    "invitation. Until it is accepted the membership is pending and cannot log in.",
    scope=None,
    request=InvitationAccept,
    response=InvitationAccepted,
    errors=(401, 404, 409, 410, 429, 503),
    tags=TAG,
    public=True,
)
async def accept_invitation(call: Call[InvitationAccept]) -> Response:
    wanted, svc = call.parsed(), call.svc
    await svc.limits.admit_public(call.ip)
    try:
        person = await sessions.accept_invitation(
            svc, svc.units, PASSWORDS, svc.limits, token=wanted.token, password=wanted.password, ip=call.ip
        )
    except Refused as refused:
        if refused.refusal is Refusal.INVITATION_NOT_FOUND:
            await svc.limits.auth_failed(ip=call.ip, presented=wanted.token)
        raise
    return render(InvitationAccepted, {"user_id": person.id, "email": person.email})


ROUTES: list[BaseRoute] = [
    Route("/v1/sessions", login, methods=["POST"]),
    Route("/v1/sessions/refresh", refresh, methods=["POST"]),
    Route("/v1/sessions/current", logout, methods=["DELETE"]),
    Route("/v1/invitations/accept", accept_invitation, methods=["POST"]),
]
