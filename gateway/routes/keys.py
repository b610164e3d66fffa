"""/v1/api-keys: create a key for the caller's organization (never with more scopes than the caller's) and
revoke one (401 at once on every gateway process)."""

from __future__ import annotations

import re

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway import schemas
from gateway.errors import Forbidden, NotFound, ValidationFailed
from gateway.openapi import operation
from gateway.routes.context import Write, idempotent_write, json_response
from persistence import apikeys

TAG = ("api keys",)
SCOPE = "keys:manage"
_KEY_ID_RE = re.compile(re.escape(apikeys.KEY_ID_PREFIX) + r"[0-9a-f]{32}")


@operation(
    summary="Create an API key for the caller's organization; the key is shown once",
    status=201,
    request=schemas.ApiKeyCreate,
    response=schemas.ApiKeyOut,
    scope=SCOPE,
    idempotent=True,
    tags=TAG,
)
@idempotent_write(SCOPE)
async def create_key(write: Write) -> Response:
    principal, body, svc = write.principal, write.body, write.svc
    wanted = schemas.parse_body(schemas.ApiKeyCreate, body)
    beyond = sorted(set(wanted.scopes) - principal.scopes)
    if beyond:
        raise Forbidden("a key cannot grant scopes its creator lacks", {"scopes": beyond})
    try:
        async with svc.connection() as conn:
            record, plaintext = await apikeys.create_api_key(conn, principal.org_id, wanted.name, wanted.scopes)
    except ValueError as error:  # the store's own checks; the schema should have caught it first
        raise ValidationFailed(str(error)) from None
    body_out = {"id": record.id, "name": record.name, "scopes": list(record.scopes), "key": plaintext}
    return json_response(body_out, 201)


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
    if _KEY_ID_RE.fullmatch(key_id) is None or not await svc.auth.revoke(principal.org_id, key_id):
        raise NotFound("no such API key", {"key_id": key_id}, code="api_key_not_found")
    return Response(status_code=204)


ROUTES: list[BaseRoute] = [
    Route("/v1/api-keys", create_key, methods=["POST"]),
    Route("/v1/api-keys/{key_id}", revoke_key, methods=["DELETE"]),
]
