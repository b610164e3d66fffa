"""The shapes of an HTTP endpoint: every /v1 route is a ``read_route`` or a ``write_route``.

A route declares once what it is — its scope, its bodies, whether it takes an Idempotency-Key, whether a caller
without a key may call it — and the same declaration both enforces it and describes it in OpenAPI (the
``Operation`` it attaches). The handler gets a ``Call``: who is calling, the body (parsed once, on demand, into
the route's request model), the process's services. Order of the checks, for every route alike:

1. authenticate (401; a failing credential spends the address's failure budget: 429), or none on a public route;
2. the scope (403) and the rate limits of the route's class (429); a write also checks its Idempotency-Key (422)
   and reads its body (413/415) first when a buyer's limit needs it, so key, address and buyer spend together;
3. a write with an Idempotency-Key replays the stored answer, or runs the handler once and stores its answer;
4. the handler: parses the body when it needs it (400/422, at the point it asks), calls its use case, renders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from engine.ratelimit import RouteClass
from gateway.auth import Principal
from gateway.client_ip import client_ip
from gateway.context import Services, authenticate, body_bytes_max, read_body, require, route_class_of, services
from gateway.errors import ApiError
from gateway.idempotency import idempotency_key
from gateway.openapi import Operation
from gateway.parsing import parse_body

ModelT = TypeVar("ModelT", bound=BaseModel)
Scope = str | tuple[str, ...]  # several: any one of them will do; the first is the documented one
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class Call(Generic[ModelT]):
    """One request, as a route's handler works with it."""

    request: Request
    svc: Services
    principal_or_none: Principal | None
    key: str | None  # the Idempotency-Key, if any
    body: bytes
    request_model: type[ModelT] | None = None
    _parsed: ModelT | ApiError | None = field(default=None, repr=False)

    @property
    def principal(self) -> Principal:
        """The authenticated caller (every route but a public one has one)."""
        assert self.principal_or_none is not None, "a public route has no principal"
        return self.principal_or_none

    @property
    def ip(self) -> str:
        return client_ip(self.request)

    def path(self, name: str) -> str:
        value: str = self.request.path_params[name]
        return value

    def parsed(self) -> ModelT:
        """The body as the route's request model: 400 malformed JSON, 422 naming every bad field. Parsed once,
        however often asked (the buyer's rate limit reads it before the handler does)."""
        assert self.request_model is not None, "the route declares no request model"
        if self._parsed is None:
            try:
                self._parsed = parse_body(self.request_model, self.body)
            except ApiError as error:
                self._parsed = error
        if isinstance(self._parsed, ApiError):
            raise self._parsed
        return self._parsed


Handler = Callable[[Call[Any]], Awaitable[Response]]
# A route's buyer, for the buyer's rate limit: (event id, buyer id) of a well-formed body, else None.
BuyerOf = Callable[[Call[Any]], tuple[str, str] | None]


def read_route(
    summary: str,
    *,
    scope: Scope,
    response: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    tags: tuple[str, ...] = (),
    route_class: RouteClass | None = None,
    media_type: str = "application/json",
    other_media_types: tuple[str, ...] = (),
) -> Callable[[Handler], Endpoint]:
    """A GET: authenticate, the scope, the rate limits (reads), then the handler. ``media_type``: what it answers
    (an SVG, say) when not JSON; ``other_media_types``: what else it may answer (a layout as CSV, on request)."""
    operation = Operation(
        summary, response=response, query=query, scope=_documented(scope), errors=errors,
        description=description, tags=tags, authenticated=True, media_type=media_type,
        response_media_types=other_media_types,
    )

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            principal = await _admitted(request, scope, route_class)
            return await handler(Call(request, services(request), principal, None, b""))

        return _described(endpoint, handler, operation)

    return wrap


def write_route(
    summary: str,
    *,
    scope: Scope | None,
    status: int = 200,
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    tags: tuple[str, ...] = (),
    idempotent: bool | None = None,
    public: bool = False,
    route_class: RouteClass | None = None,
    buyer: BuyerOf | None = None,
    secret_fields: tuple[str, ...] = (),
    body_bytes_max: int = body_bytes_max,
    body_media_types: tuple[str, ...] = (),
    linked_body: dict[str, Any] | None = None,
) -> Callable[[Handler], Endpoint]:
    """A POST, PATCH or DELETE.

    ``scope`` None: any authenticated caller (a person logging out), or with ``public`` nobody at all (logging
    in: no key, hence no Idempotency-Key record: there is no key holder to file it under; their own checks make
    retries safe). ``idempotent`` (by default, unless public): the Idempotency-Key header replays the first
    answer. ``buyer``: the rate limits wait for the body so that key, address and buyer buckets are spent
    together, all or nothing.
    ``secret_fields``: the response's secrets (dotted paths), shown once, stored and replayed as null.
    ``body_bytes_max`` and ``body_media_types``: a route taking larger bodies, or bodies other than JSON (a
    layout's CSV), says so; the handler then parses the body itself.
    ``linked_body``: for OpenAPI links into this route, what the body takes from the linking answer
    (gateway/openapi.py ``Operation.linked_body``).
    """
    idempotent = not public if idempotent is None else idempotent
    if public:
        errors = (*errors, 429)  # a public route spends the address's budgets itself (admit_public)
    if public and (scope is not None or idempotent or buyer is not None):
        raise ValueError("a public route has no scope, no Idempotency-Key and no buyer")
    operation = Operation(
        summary, status=status, response=response, request=request, scope=None if scope is None else _documented(scope),
        errors=errors, idempotent=idempotent, description=description, tags=tags, authenticated=not public,
        linked_body=linked_body or {}, request_media_types=body_media_types,
    )

    def wrap(handler: Handler) -> Endpoint:
        async def endpoint(request_: Request) -> Response:
            svc = services(request_)
            if public:
                call: Call[Any] = Call(request_, svc, None, None, await read_body(request_), request)
                return await handler(call)
            if buyer is None:
                principal = await _admitted(request_, scope, route_class)
                key = idempotency_key(request_) if idempotent else None
                body = (
                    await read_body(request_, bytes_max=body_bytes_max, media_types=body_media_types)
                    if idempotent or request is not None
                    else b""
                )
                call = Call(request_, svc, principal, key, body, request)
            else:
                call = await _admitted_with_buyer(request_, svc, scope, route_class, buyer, request)
            if not idempotent:
                return await handler(call)
            return await svc.idempotency.run(
                request_, call.principal, call.key, call.body, lambda: handler(call), secret_fields=secret_fields
            )

        return _described(endpoint, handler, operation)

    return wrap


async def _admitted(request: Request, scope: Scope | None, route_class: RouteClass | None) -> Principal:
    principal = await authenticate(request)
    limits = services(request).limits
    await limits.admit(route_class or route_class_of(request), principal=principal, ip=client_ip(request))
    if scope is not None:
        require(principal, scope)
    return principal


async def _admitted_with_buyer(
    request: Request,
    svc: Services,
    scope: Scope | None,
    route_class: RouteClass | None,
    buyer: BuyerOf,
    model: type[BaseModel] | None,
) -> Call[Any]:
    principal = await authenticate(request)
    ip, route_class = client_ip(request), route_class or route_class_of(request)
    try:
        if scope is not None:
            require(principal, scope)
        key = idempotency_key(request)
        body = await read_body(request)
    except ApiError:
        await svc.limits.admit(route_class, principal=principal, ip=ip)
        raise
    call: Call[Any] = Call(request, svc, principal, key, body, model)
    # A malformed or invalid body names no buyer: it spends the key's and the address's buckets only, and the
    # handler refuses it where it parses the body, in the documented order.
    event_id, buyer_id = buyer(call) or (None, None)
    await svc.limits.admit(route_class, principal=principal, ip=ip, buyer_id=buyer_id, event_id=event_id)
    return call


def _documented(scope: Scope) -> str:
    return scope if isinstance(scope, str) else scope[0]


def _described(endpoint: Endpoint, handler: Handler, operation: Operation) -> Endpoint:
    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    endpoint.__openapi__ = operation  # type: ignore[attr-defined]
    return endpoint
