"""/v1/api-keys: create a key for the caller's organization (never with more scopes than the caller's), list the
org's keys (never a secret or hash) and revoke one (401 at once on every gateway process). Creating and revoking
are audited in the same transaction as the change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access.rules import (
    key_expiry_problem,
    key_expiry_under_creator,
    key_lifetime_days_max,
    key_scope_problems,
)
from gateway.auth import Principal
from gateway.context import actor_of
from gateway.endpoints import Call, read_route, write_route
from gateway.errors import Forbidden, ValidationFailed
from gateway.rendering import render, rfc3339
from gateway.routes.access.models import ApiKeyCreate, ApiKeyList, ApiKeyOut
from persistence.access import apikeys
from services.access import keys

TAG = ("api keys",)
SCOPE = "keys:manage"


def _creator(principal: Principal) -> str:
    return f"{principal.actor_type}:{principal.actor_id}"


def _field_error(field: str, message: str, kind: str = "invalid") -> ValidationFailed:
    return ValidationFailed(details={"fields": [{"field": field, "message": message, "type": kind}]})


def _bounded_by_creator(wanted: datetime | None, principal: Principal) -> datetime | None:
    expires_at, allowed = key_expiry_under_creator(wanted, principal.expires_at)
    if not allowed:
        raise _field_error(
            "expires_at", f"must be at or before the creating key's expiry, {rfc3339(principal.expires_at)}"
        )
    return expires_at


def key_view(record: apikeys.ApiKeyRecord) -> dict[str, Any]:
    """A key as the API shows it: never its secret or hash (each answer's model keeps the fields it shows)."""
    return {
        "id": record.id,
        "name": record.name,
        "kind": record.kind,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "created_at": record.created_at,
        "created_by": record.created_by,
        "expires_at": record.expires_at,
        "revoked_at": record.revoked_at,
        "last_used_at": record.last_used_at,
    }


@write_route(
    "Create an API key for the caller's organization; the key is shown once",
    description=(
        "A key carries a subset of its creator's scopes (403 otherwise). A publishable key (a checkout "
        "front-end's) carries only inventory:read, inventory:hold and inventory:confirm (422 otherwise) and "
        "reaches only the org's on-sale events. expires_at, if given, is in the future and at most "
        f"{key_lifetime_days_max} days ahead. A key made by a key that expires expires no later (422 "
        "otherwise; by default, at the same time)."
    ),
    scope=SCOPE,
    status=201,
    request=ApiKeyCreate,
    response=ApiKeyOut,
    tags=TAG,
    secret_fields=("key",),
)
async def create_key(call: Call[ApiKeyCreate]) -> Response:
    principal, wanted = call.principal, call.parsed()
    problem = key_expiry_problem(wanted.expires_at, datetime.now(UTC))
    if problem is not None:
        raise _field_error("expires_at", problem)
    expires_at = _bounded_by_creator(wanted.expires_at, principal)
    problems = key_scope_problems(wanted.kind, wanted.scopes, principal.scopes)
    if "unknown" in problems or "not_publishable" in problems:  # the schema refuses both first
        raise _field_error("scopes", "; ".join(f"{reason}: {names}" for reason, names in problems.items()))
    if "beyond_creator" in problems:
        raise Forbidden("a key cannot grant scopes its creator lacks", {"scopes": problems["beyond_creator"]})
    try:
        record, plaintext = await keys.create_key(
            call.svc.units,
            principal.org_id,
            actor_of(call.request, principal),
            name=wanted.name,
            scopes=wanted.scopes,
            kind=wanted.kind,
            expires_at=expires_at,
            created_by=_creator(principal),
        )
    except apikeys.KeyRejected as error:  # the store's own checks; the ones above should have caught it first
        raise _field_error(error.field, str(error)) from None
    return render(ApiKeyOut, {**key_view(record), "key": plaintext}, 201)


@read_route(
    "The organization's API keys, revoked ones included; never a secret",
    scope=SCOPE,
    response=ApiKeyList,
    tags=TAG,
)
async def list_keys(call: Call[Any]) -> Response:
    records = await keys.list_keys(call.svc, call.principal.org_id)
    return render(ApiKeyList, {"api_keys": [key_view(record) for record in records]})


@write_route(
    "Revoke an API key; it answers 401 from then on, on every gateway process",
    scope=SCOPE,
    status=204,
    errors=(404,),
    tags=TAG,
)
async def revoke_key(call: Call[Any]) -> Response:
    principal, svc = call.principal, call.svc
    actor = actor_of(call.request, principal)
    await keys.revoke_key(svc.units, svc.auth, principal.org_id, actor, call.path("key_id"))
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/v1/api-keys", create_key, methods=["POST"]),
    Route("/v1/api-keys", list_keys, methods=["GET"]),
    Route("/v1/api-keys/{key_id}", revoke_key, methods=["DELETE"]),
]
