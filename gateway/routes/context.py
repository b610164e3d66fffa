"""What every route needs: the process's services, the caller's identity, the request body, JSON answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
from redis.asyncio import Redis
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from gateway.auth import Authenticator, Principal, bearer_key, require_scope
from gateway.availability import AvailabilityCache, SeatListCache
from gateway.errors import PayloadTooLarge, UnsupportedMediaType, storage_outage_as_503
from gateway.event_cache import EventCache
from gateway.idempotency import IdempotencyStore, idempotency_key

if TYPE_CHECKING:
    from gateway.inventory_client import InventoryClient

body_bytes_max = 64 * 1024
db_acquire_timeout_s = 2.0
_JSON_MEDIA_TYPES = ("application/json",)


@dataclass(frozen=True)
class Services:
    pool: asyncpg.Pool
    redis: Redis
    inventory: InventoryClient
    auth: Authenticator
    events: EventCache
    availability: AvailabilityCache
    seat_lists: SeatListCache
    idempotency: IdempotencyStore

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.pool.PoolConnectionProxy]:
        """A pooled Postgres connection, waiting a bounded time; an outage answers 503."""
        with storage_outage_as_503():
            async with self.pool.acquire(timeout=db_acquire_timeout_s) as conn:
                yield conn


def services(connection: HTTPConnection) -> Services:
    found: Services = connection.app.state.services
    return found


async def authorize(connection: HTTPConnection, scope: str, *, allow_query_key: bool = False) -> Principal:
    """The caller, checked to hold ``scope``: 401 without a valid key, 403 without the scope."""
    key = bearer_key(connection, allow_query=allow_query_key)
    principal = await services(connection).auth.authenticate(key)
    require_scope(principal, scope)
    return principal


@dataclass(frozen=True)
class Write:
    """What a POST or DELETE handler works with once the caller is authorized and the body read."""

    request: Request
    principal: Principal
    key: str | None  # the Idempotency-Key, if any
    body: bytes
    svc: Services


Endpoint = Callable[[Request], Awaitable[Response]]


def idempotent_write(scope: str) -> Callable[[Callable[[Write], Awaitable[Response]]], Endpoint]:
    """The shape of every POST and DELETE: authorize (401/403), check the Idempotency-Key, read the body (413/415),
    then run the handler under the key, so a retry replays the first answer instead of applying twice."""

    def wrap(handler: Callable[[Write], Awaitable[Response]]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            principal = await authorize(request, scope)
            key = idempotency_key(request)
            body = await read_body(request)
            write = Write(request, principal, key, body, services(request))
            return await write.svc.idempotency.run(request, principal, key, body, lambda: handler(write))

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


async def read_body(request: Request) -> bytes:
    """The raw body, at most 64 KiB (by Content-Length and by count); a non-empty body must be JSON (415)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > body_bytes_max:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > body_bytes_max:
            raise _too_large()
        chunks.append(chunk)
    body = b"".join(chunks)
    if body and not _is_json(request.headers.get("content-type")):
        raise UnsupportedMediaType()
    return body


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in _JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {body_bytes_max} bytes", {"bytes_max": body_bytes_max})


def json_response(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def rfc3339(moment: datetime | float | None) -> str | None:
    """UTC, 'Z'-suffixed; epoch seconds (the engine's clock) keep their milliseconds."""
    if moment is None:
        return None
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
