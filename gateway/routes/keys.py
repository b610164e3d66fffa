"""/v1/api-keys: create a key for the caller's organization (never with more scopes than the caller's), list the
org's keys (never a secret or hash) and revoke one (401 at once on every gateway process). Creating and revoking
are audited in the same transaction as the change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine.access import key_scope_problems
from gateway import schemas
from gateway.auth import Principal
from gateway.errors import Forbidden, NotFound, ValidationFailed
from gateway.openapi import operation
from gateway.routes.context import Write, actor_of, authorize, idempotent_write, json_response, rfc3339, services
from persistence import apikeys, audit

TAG = ("api keys",)
SCOPE = "keys:manage"


def _creator(principal: Principal) -> str:
    return f"{principal.actor_type}:{principal.actor_id}"


def _field_error(field: str, message: str, kind: str = "invalid") -> ValidationFailed:
    return ValidationFailed(details={"fields": [{"field": field, "message": message, "type": kind}]})


def _bounded_by_creator(wanted: datetime | None, principal: Principal) -> datetime | None:
    """The new key's expiry: never after the creating key's (a key expiring tomorrow must not mint one that never
    does), so none given means the creator's; a person's session bounds nothing (keys belong to the org)."""
    if principal.expires_at is None:
        return wanted
    if wanted is None:
        return principal.expires_at
    if wanted > principal.expires_at:
        raise _field_error(
            "expires_at", f"must be at or before the creating key's expiry, {rfc3339(principal.expires_at)}"
        )
    return wanted


def key_view(record: apikeys.ApiKeyRecord) -> dict[str, Any]:
    """A key as the API shows it: never its secret or hash."""
    return {
        "id": record.id,
        "name": record.name,
        "kind": record.kind,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "created_at": rfc3339(record.created_at),
        "created_by": record.created_by,
        "expires_at": rfc3339(record.expires_at),
        "revoked_at": rfc3339(record.revoked_at),
        "last_used_at": rfc3339(record.last_used_at),
    }


@operation(
    summary="Create an API key for the caller's organization; the key is shown once",
    description=(
        "A key carries a subset of its creator's scopes (403 otherwise). A publishable key (a checkout "
        "front-end's) carries only inventory:read, inventory:hold and inventory:confirm (422 otherwise) and "
        "reaches only the org's on-sale events. expires_at, if given, is in the future and at most "
        f"{apikeys.key_lifetime_days_max} days ahead. A key made by a key that expires expires no later (422 "
        "otherwise; by default, at the same time)."
    ),
    status=201,
    request=schemas.ApiKeyCreate,
    response=schemas.ApiKeyOut,
    scope=SCOPE,
    idempotent=True,
    tags=TAG,
)
@idempotent_write(SCOPE, secret_fields=("key",))
async def create_key(write: Write) -> Response:
    principal, body, svc = write.principal, write.body, write.svc
    wanted = schemas.parse_body(schemas.ApiKeyCreate, body)
    problem = apikeys.expiry_problem(wanted.expires_at, datetime.now(UTC))
    if problem is not None:
        raise _field_error("expires_at", problem)
    expires_at = _bounded_by_creator(wanted.expires_at, principal)
    problems = key_scope_problems(wanted.kind, wanted.scopes, principal.scopes)
    if "unknown" in problems or "not_publishable" in problems:  # the schema refuses both first
        raise _field_error("scopes", "; ".join(f"{reason}: {names}" for reason, names in problems.items()))
    if "beyond_creator" in problems:
        raise Forbidden("a key cannot grant scopes its creator lacks", {"scopes": problems["beyond_creator"]})
    try:
        async with svc.tenant(principal.org_id) as db:
            record, plaintext = await apikeys.create_api_key(
                db,
                wanted.name,
                wanted.scopes,
                kind=wanted.kind,
                expires_at=expires_at,
                created_by=_creator(principal),
            )
            change = audit.Change("api_key.create", "api_key", record.id, after=apikeys.audit_view(record))
            await audit.record(db, actor_of(write.request, principal), change)
    except apikeys.KeyRejected as error:  # the store's own checks; the ones above should have caught it first
        raise _field_error(error.field, str(error)) from None
    view = key_view(record)
    del view["revoked_at"], view["last_used_at"]
    return json_response({**view, "key": plaintext}, 201)


@operation(
    summary="The organization's API keys, revoked ones included; never a secret",
    response=schemas.ApiKeyList,
    scope=SCOPE,
    tags=TAG,
)
async def list_keys(request: Request) -> Response:
    principal = await authorize(request, SCOPE)
    async with services(request).tenant(principal.org_id) as db:
        records = await apikeys.list_api_keys(db)
    return json_response({"api_keys": [key_view(record) for record in records]})


@operation(
    summary="Revoke an API key; it answers 401 from then on, on every gateway process",
    status=204,
    scope=SCOPE,
    idempotent=True,
    errors=(404,),
    tags=TAG,
)
@idempotent_write(SCOPE)
async def revoke_key(write: Write) -> Response:
    principal, svc = write.principal, write.svc
    key_id = write.request.path_params["key_id"]
    async with svc.tenant(principal.org_id) as db:
        revocation = await apikeys.revoke_api_key(db, key_id)
        if revocation is None:  # another org's key is as unknown as a made-up one
            raise NotFound("no such API key", {"key_id": key_id}, code="api_key_not_found")
        if revocation.newly:
            record = revocation.record
            change = audit.Change(
                "api_key.revoke", "api_key", record.id, before={"revoked_at": None}, after=apikeys.audit_view(record)
            )
            await audit.record(db, actor_of(write.request, principal), change)
    await svc.auth.announce_revoked(revocation.record)
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/v1/api-keys", create_key, methods=["POST"]),
    Route("/v1/api-keys", list_keys, methods=["GET"]),
    Route("/v1/api-keys/{key_id}", revoke_key, methods=["DELETE"]),
]
