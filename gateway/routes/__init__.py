"""The gateway's route table: one module per resource."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.routes import events, holds, keys, operations


def all_routes() -> list[BaseRoute]:
    return [*operations.ROUTES, *keys.ROUTES, *events.ROUTES, *holds.ROUTES]
