"""What every route needs: the process's services, the caller's identity, the request body, JSON answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from redis.asyncio import Redis
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from engine.ratelimit import RouteClass
from gateway.auth import Authenticator, Principal, bearer_key, require_scope
from gateway.client_ip import client_ip
from gateway.errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType, storage_outage_as_503
from gateway.event_cache import EventCache
from gateway.idempotency import IdempotencyStore
from gateway.ratelimit import RateLimiter
from persistence import audit
from persistence.db import Connection
from persistence.tenancy import OrgDb, TenantPool
from services.unit_of_work import UnitsOfWork

if TYPE_CHECKING:
    from gateway.inventory_client import InventoryClient

body_bytes_max = 64 * 1024
DomainT = TypeVar("DomainT")
_JSON_MEDIA_TYPES = ("application/json",)
_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class Services:
    pool: TenantPool
    redis: Redis
    inventory: InventoryClient
    auth: Authenticator
    events: EventCache
    idempotency: IdempotencyStore
    limits: RateLimiter
    # Each domain's own process objects, by their type (``domain``): a domain adds its entry where the app is
    # built (gateway/app.py) instead of a field here.
    domains: Mapping[type[Any], Any] = field(default_factory=dict)

    @asynccontextmanager
    async def tenant(self, org_id: str) -> AsyncIterator[OrgDb]:
        """A pooled connection in a transaction bound to ``org_id`` (row-level security shows it only that org's
        rows), waiting a bounded time for the connection; an outage answers 503. The one way routes reach
        Postgres: ``async with svc.tenant(principal.org_id) as db:``."""
        with storage_outage_as_503():
            async with self.pool.tenant(org_id) as db:
                yield db

    @asynccontextmanager
    async def unscoped(self, reason: str) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction that sees every org (persistence.tenancy.unscoped): only for
        work that is cross-org by nature, such as finding the org of a presented credential. Say why."""
        with storage_outage_as_503():
            async with self.pool.unscoped(reason) as raw:
                yield raw

    def domain(self, kind: type[DomainT]) -> DomainT:
        """The process objects of one domain, registered under their type at start-up."""
        found = self.domains[kind]
        assert isinstance(found, kind), f"{kind.__name__} is registered as a {type(found).__name__}"
        return found

    @property
    def units(self) -> UnitsOfWork:
        """Units of work (services/unit_of_work.py) on this process's tenant transactions (outages: 503)."""
        return UnitsOfWork(self)


def services(connection: HTTPConnection) -> Services:
    found: Services = connection.app.state.services
    return found


async def authorize(
    connection: HTTPConnection,
    scope: str | tuple[str, ...],
    *,
    allow_query_key: bool = False,
    route_class: RouteClass | None = None,
) -> Principal:
    """The caller, checked to hold ``scope`` (or, given several, any one of them): 401 without a valid key, 403
    without the scope; admitted by the rate limits of ``route_class`` (by default: GET reads, else writes), 429."""
    principal = await authenticate(connection, allow_query_key=allow_query_key)
    limits = services(connection).limits
    await limits.admit(route_class or route_class_of(connection), principal=principal, ip=client_ip(connection))
    require(principal, scope)
    return principal


async def authenticate(connection: HTTPConnection, *, allow_query_key: bool = False) -> Principal:
    """The caller, or 401; a credential that fails gets 429 instead once the address has spent its budget of
    failed authentications. The credential is checked first, always: behind a NAT, one stale tab's revoked key
    must not lock out every buyer sharing the address (gateway/ratelimit.py)."""
    svc = services(connection)
    key = bearer_key(connection, allow_query=allow_query_key)
    try:
        return await svc.auth.authenticate(key)
    except Unauthorized:
        await svc.limits.auth_failed(ip=client_ip(connection), presented=key)
        raise


def route_class_of(connection: HTTPConnection) -> RouteClass:
    return RouteClass.reads if connection.scope.get("method", "GET") in _READ_METHODS else RouteClass.writes


def require(principal: Principal, scope: str | tuple[str, ...]) -> None:
    """403 unless the caller holds ``scope`` (or, given several, any one of them)."""
    if isinstance(scope, str):
        require_scope(principal, scope)
    elif principal.scopes.isdisjoint(scope):
        require_scope(principal, scope[0])  # the 403 names the first (the route's documented scope)


async def read_body(
    request: Request, *, bytes_max: int = body_bytes_max, media_types: tuple[str, ...] = ()
) -> bytes:
    """The raw body, at most ``bytes_max`` (64 KiB unless the route says more; by Content-Length and by count);
    a non-empty body must be JSON or one of the route's further ``media_types`` (415)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > bytes_max:
        raise _too_large(bytes_max)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > bytes_max:
            raise _too_large(bytes_max)
        chunks.append(chunk)
    body = b"".join(chunks)
    content_type = request.headers.get("content-type")
    if body and not (_is_json(content_type) or media_type_of(content_type) in media_types):
        raise UnsupportedMediaType()
    return body


def media_type_of(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-cased, without parameters ("" for none)."""
    return "" if content_type is None else content_type.split(";", 1)[0].strip().lower()


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type = media_type_of(content_type)
    return media_type in _JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def _too_large(bytes_max: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {bytes_max} bytes", {"bytes_max": bytes_max})


def json_response(data: Any, status: int = 200) -> Response:
    return JSONResponse(data, status_code=status)


def actor_of(connection: HTTPConnection, principal: Principal) -> audit.Actor:
    """The caller as the audit log records it: a person or an API key, and the address the call came from."""
    actor_type: audit.ActorType = "user" if principal.actor_type == "user" else "key"
    return audit.Actor(actor_type, principal.actor_id, client_ip(connection))
