"""What the router answers when no route takes a request: 404 for a path no route has; 405 with ``Allow`` naming
every method of every route on that path (the router itself names only the first route's, and one path often has
several routes: GET and DELETE /v1/holds/{hold_id}); for a plain GET of a WebSocket route, since such a path has
no HTTP route at all, the credential's answer (401 without one, as before an upgrade) and then 426 (405 for any
other method)."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from gateway.context import authenticate
from gateway.errors import ApiError, DomainError, MethodNotAllowed, NotFound

_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class UpgradeRequired(DomainError):
    status = 426
    code = "upgrade_required"
    default_message = "this route speaks WebSocket only: connect with an Upgrade: websocket request"


async def router_error(connection: HTTPConnection, status: int) -> ApiError | None:
    """The answer to the router's own 404 or 405, or None for another status."""
    routes: list[BaseRoute] = list(getattr(connection.app, "routes", ()))
    if status == 405:
        return method_not_allowed(allowed_methods(routes, connection))
    if status != 404:
        return None
    if _websocket_path(routes, connection):
        if connection.scope.get("method") == "GET":
            try:
                await authenticate(connection, allow_query_key=True)
            except ApiError as refused:
                return refused
            return UpgradeRequired(headers={"Upgrade": "websocket"})
        return method_not_allowed(["GET"])
    return NotFound("no such route")


def method_not_allowed(methods: Iterable[str]) -> MethodNotAllowed:
    allow = ", ".join(sorted(set(methods), key=_method_rank))
    return MethodNotAllowed(f"this route takes {allow}", {"allowed": allow.split(", ")}, headers={"Allow": allow})


def allowed_methods(routes: Iterable[BaseRoute], connection: HTTPConnection) -> list[str]:
    """Every method of every HTTP route whose path matches the request's."""
    found: set[str] = set()
    for route in routes:
        if isinstance(route, Route) and route.matches(connection.scope)[0] is not Match.NONE:
            found |= set(route.methods or ())
    return sorted(found, key=_method_rank)


def _websocket_path(routes: Iterable[BaseRoute], connection: HTTPConnection) -> bool:
    probe = {**connection.scope, "type": "websocket"}
    return any(isinstance(r, WebSocketRoute) and r.matches(probe)[0] is Match.FULL for r in routes)


def _method_rank(method: str) -> tuple[int, str]:
    return (_METHOD_ORDER.index(method) if method in _METHOD_ORDER else len(_METHOD_ORDER), method)
