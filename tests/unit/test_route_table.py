"""The route table's order is a cost, never a meaning: no two route paths match the same request path, so
gateway/routes/__init__.py may put the hot path first without changing which route answers."""

from __future__ import annotations

import re

from starlette.routing import Route, WebSocketRoute

from gateway.routes import all_routes

_PARAM = re.compile(r"\{[^}]+\}")
# path parameters as a client could fill them, including values that equal another route's literal segment
_FILLINGS = ("x", "current", "refresh", "accept", "confirm", "seatmap.svg")


def test_no_two_route_paths_match_one_request_path() -> None:
    routes = [r for r in all_routes() if isinstance(r, Route | WebSocketRoute)]
    templates = {r.path for r in routes}
    for template in templates:
        for filling in _FILLINGS:
            path = _PARAM.sub(filling, template)
            matching = {r.path for r in routes if r.path_regex.match(path)}
            assert matching == {template}, f"{path} matches {sorted(matching)}"


def test_the_hot_path_comes_first() -> None:
    paths = [r.path for r in all_routes() if isinstance(r, Route)]
    hot = ["/v1/events/{event_id}/holds", "/v1/holds/{hold_id}/confirm", "/v1/events/{event_id}/quote"]
    assert max(paths.index(p) for p in hot) < 8, paths[:8]
