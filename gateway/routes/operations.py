"""Operations: liveness, readiness (Postgres, Redis, inventory, each within a bounded time), metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import metrics
from gateway.context import Services, json_response, services
from gateway.errors import error_body
from gateway.openapi import build_openapi, operation

log = logging.getLogger(__name__)

ready_check_s_max = 2.0
TAG = ("operations",)


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, str]


class OpenApiDocumentOut(BaseModel):
    """An OpenAPI 3.1 document (its parts as OpenAPI defines them)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@operation(summary="Liveness: 200 while the process serves", response=HealthOut, tags=TAG)
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


@operation(
    summary="Readiness: 200 only when Postgres, Redis and the inventory answer in time",
    response=ReadyOut,
    errors=(503,),
    tags=TAG,
)
async def readyz(request: Request) -> Response:
    svc = services(request)
    names = ("postgres", "redis", "inventory")
    checks = (_postgres(svc), _redis(svc), _inventory(svc))
    outcomes = await asyncio.gather(*(_bounded(check) for check in checks))
    results = dict(zip(names, outcomes, strict=True))
    if all(outcome == "ok" for outcome in results.values()):
        return json_response({"status": "ready", "checks": results})
    failed = [name for name, outcome in results.items() if outcome != "ok"]
    body = error_body("not_ready", f"not ready: {', '.join(failed)}", {"checks": results})
    return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})


async def _bounded(check: Awaitable[bool]) -> str:
    try:
        ok = await asyncio.wait_for(check, ready_check_s_max)
    except TimeoutError:
        return "timeout"
    except Exception as error:
        log.info("readiness check failed: %r", error)
        return "unavailable"
    return "ok" if ok else "unavailable"


async def _postgres(svc: Services) -> bool:
    # Reads no table, so it needs no org (persistence.tenancy): a bare pooled connection, bounded like any other.
    async with svc.pool.connection() as conn:
        return bool(await conn.fetchval("select 1") == 1)


async def _redis(svc: Services) -> bool:
    return bool(await svc.redis.ping())


async def _inventory(svc: Services) -> bool:
    ready: Callable[[], Awaitable[bool]] | None = getattr(svc.inventory, "ready", None)
    return True if ready is None else bool(await ready())


@operation(summary="Prometheus metrics (all worker processes in multiprocess mode)", tags=TAG, media_type="text/plain")
async def prometheus_metrics(request: Request) -> Response:
    payload, content_type = metrics.render_latest()
    return Response(payload, headers={"Content-Type": content_type})


@operation(summary="This OpenAPI 3.1 description of every route", response=OpenApiDocumentOut, tags=TAG)
async def openapi_json(request: Request) -> Response:
    state: Any = request.app.state
    document = getattr(state, "openapi", None)
    if document is None:
        document = state.openapi = build_openapi(request.app.routes)
    return json_response(document)


ROUTES: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", prometheus_metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
]
