"""Idempotency-Key: the same key, key holder and request replay the first response for 24 h.

The record lives in Redis at redis_keys.idempotency(org, key id, idempotency key): {fingerprint, status, body}.
A response with status < 500 is stored with SET NX; when NX loses, a concurrent twin finished first and its
stored response is returned instead, so twins answer alike. The commands themselves are idempotent too (hold and
confirm command ids derive from the key), so twins never apply anything twice; this layer makes the answers equal.
5xx responses are not stored, so a retry is free to run: a 503 usually means nothing was applied, and where a
command was already sent when its wait ran out, its derived command id makes the retry return what it did.

Secrets are never stored: a route that answers with one (a new API key, an invitation token) names those fields
(``secret_fields``, dotted paths into the JSON body), and the record keeps the body with them null, so a replay
answers the same status and body with the secret null. The secret was shown once; it is kept nowhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import msgpack
from redis.asyncio import Redis
from starlette.requests import Request
from starlette.responses import Response

from engine.refusals import Refused
from gateway.auth import Principal
from gateway.errors import (
    DomainError,
    PersistenceUnavailable,
    ValidationFailed,
    error_response,
    storage_outage_as_503,
)
from gateway.refusals import error_for_refused
from persistence.idempotency import redis_keys
from persistence.outages import REDIS_OUTAGES

log = logging.getLogger(__name__)
_STORE_FAILURES: tuple[type[BaseException], ...] = (*REDIS_OUTAGES, PersistenceUnavailable)

HEADER = "idempotency-key"
REPLAYED_HEADER = "Idempotent-Replayed"
record_ttl_s = 24 * 3_600
key_chars_max = 200
# 1-200 printable ASCII characters; spaces only inside, since HTTP drops them at the ends of a header value (so
# the key the server sees never starts or ends with one). OpenAPI documents this same pattern.
KEY_PATTERN = rf"^[\x21-\x7e](?:[\x20-\x7e]{{0,{key_chars_max - 2}}}[\x21-\x7e])?$"
_KEY_RE = re.compile(KEY_PATTERN)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    fingerprint: str
    status: int
    body: bytes
    media_type: str | None

    def response(self) -> Response:
        headers = {REPLAYED_HEADER: "true"}
        return Response(self.body, status_code=self.status, headers=headers, media_type=self.media_type)


def idempotency_key(request: Request) -> str | None:
    """The request's Idempotency-Key, None when absent; 422 when not 1-200 printable ASCII characters."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if _KEY_RE.fullmatch(value) is None:
        raise ValidationFailed(
            details={
                "fields": [
                    {
                        "field": "Idempotency-Key",
                        "message": "must be 1-200 printable ASCII characters",
                        "type": "invalid",
                    }
                ]
            }
        )
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def token_for(principal: Principal, key: str, *, purpose: str) -> str:
    """A stable hex token from the key holder and the Idempotency-Key: the same request maps to the same ids."""
    return hashlib.sha256(f"{purpose}\x00{principal.key_id}\x00{key}".encode()).hexdigest()


class IdempotencyStore:
    def __init__(self, redis: Redis, *, ttl_s: int = record_ttl_s) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def run(
        self,
        request: Request,
        principal: Principal,
        key: str | None,
        body: bytes,
        handler: Callable[[], Awaitable[Response]],
        *,
        secret_fields: Sequence[str] = (),
    ) -> Response:
        """Answer with ``handler``'s response, or replay the stored one for a repeated Idempotency-Key. The
        response's ``secret_fields`` (dotted paths into its JSON body) are stored as null, never in clear."""
        if key is None:
            return await handler()
        record_key = redis_keys.idempotency(principal.org_id, principal.key_id, key)
        print_ = fingerprint(request.method, request.url.path, body)
        stored = await self._get(record_key)
        if stored is not None:
            return self._replay(stored, print_)
        try:
            response = await handler()
        except (DomainError, Refused) as raised:
            error = error_for_refused(raised) if isinstance(raised, Refused) else raised
            if not isinstance(error, DomainError):
                raise error from raised  # a refusal answered 503 (a store away) is about now: never stored
            response = error_response(error)  # a refusal is an answer too: replay it, never re-run it
        if response.status_code >= 500:
            return response
        kept = without_secrets(bytes(response.body), secret_fields)
        if kept is None:
            log.error("not storing the response for Idempotency-Key %r: its secrets could not be removed", key)
            return response
        fresh = StoredResponse(print_, response.status_code, kept, response.media_type)
        try:
            won = await self._redis.set(record_key, _encode(fresh), ex=self._ttl_s, nx=True)
            winner = None if won else await self._get(record_key)
        except _STORE_FAILURES:
            # The command was applied: answer it (a 503 would claim otherwise). A retry stays safe because the
            # commands below are idempotent themselves; only its answer may differ.
            log.warning("could not store the response for Idempotency-Key %r", key)
            return response
        return response if winner is None else self._replay(winner, print_)

    async def _get(self, record_key: str) -> StoredResponse | None:
        with storage_outage_as_503():
            blob = await self._redis.get(record_key)
        return None if blob is None else _decode(cast(bytes, blob))

    @staticmethod
    def _replay(stored: StoredResponse, print_: str) -> Response:
        if stored.fingerprint != print_:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request",
                {
                    "fields": [
                        {
                            "field": "Idempotency-Key",
                            "message": "already used with another request",
                            "type": "idempotency_key_reused",
                        }
                    ]
                },
                code="idempotency_key_reused",
            )
        return stored.response()


def without_secrets(body: bytes, secret_fields: Sequence[str]) -> bytes | None:
    """``body`` with every field named in ``secret_fields`` (a dotted path: ``invitation.token``) set to null,
    re-encoded as the JSON responses are; unchanged when none is present (an error, an invitation that is null).
    None when the body names secrets but is not JSON: then it must not be stored at all."""
    if not secret_fields or not body:
        return body
    try:
        document = json.loads(body)
    except ValueError:
        return None
    removed = [_null_at(document, path.split(".")) for path in secret_fields]
    if not any(removed):
        return body
    # As starlette's JSONResponse renders, so a replay's bytes look like a first answer's.
    return json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _null_at(document: object, path: list[str]) -> bool:
    """Set the field at ``path`` to null if it is there and not null already; whether it was."""
    *parents, name = path
    for part in parents:
        if not isinstance(document, dict):
            return False
        document = document.get(part)
    if not isinstance(document, dict) or document.get(name) is None:
        return False
    document[name] = None
    return True


def _encode(stored: StoredResponse) -> bytes:
    return msgpack.packb([stored.fingerprint, stored.status, stored.body, stored.media_type])


def _decode(blob: bytes) -> StoredResponse:
    print_, status, body, media_type = msgpack.unpackb(blob)
    return StoredResponse(print_, status, body, media_type)
