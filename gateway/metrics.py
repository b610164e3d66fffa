"""Prometheus metrics of the gateway process, and the ASGI middleware that times every request.

uvicorn runs several worker processes: when PROMETHEUS_MULTIPROC_DIR is set, prometheus_client writes each
process's samples to files there and /metrics aggregates them all (the directory must be emptied before start).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.types import ASGIApp, Receive, Scope, Send

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

REQUEST_SECONDS = Histogram(
    "voelgoed_http_request_seconds",
    "HTTP request latency by route template and status class",
    ["method", "route", "status_class"],
    buckets=_LATENCY_BUCKETS_S,
)
BATCH_COMMANDS = Histogram("voelgoed_batch_commands", "Commands per inventory actor call", buckets=_BATCH_BUCKETS)
QUEUE_DEPTH = Gauge(
    "voelgoed_queue_depth", "Commands waiting in the coalescers (all events)", multiprocess_mode="livesum"
)
RATE_LIMIT_BATCH_REQUESTS = Histogram(
    "voelgoed_rate_limit_batch_requests", "Requests admitted per rate-limit script call", buckets=_BATCH_BUCKETS
)
RATE_LIMIT_QUEUE_DEPTH = Gauge(
    "voelgoed_rate_limit_queue_depth", "Requests waiting for a rate-limit check (all orgs)", multiprocess_mode="livesum"
)
COMMIT_SECONDS = Histogram(
    "voelgoed_commit_seconds", "Postgres commit time per batch of sales", buckets=_LATENCY_BUCKETS_S
)
ACTOR_CALL_SECONDS = Histogram(
    "voelgoed_actor_call_seconds", "Inventory actor call round-trip time", buckets=_LATENCY_BUCKETS_S
)
ACTOR_RETRIES = Counter("voelgoed_actor_retries", "Inventory actor calls retried after a failure")
HOLDS_TOTAL = Counter("voelgoed_holds", "Hold requests answered, by outcome (ok or the refusal code)", ["outcome"])
SALES_TOTAL = Counter("voelgoed_sales", "Confirm requests answered, by outcome (ok or the refusal code)", ["outcome"])
WEBSOCKETS_OPEN = Gauge("voelgoed_websockets_open", "Open live websockets", multiprocess_mode="livesum")

UNMATCHED_ROUTE = "unmatched"


def render_latest() -> tuple[bytes, str]:
    """The exposition text for this process, or for every worker when in multiprocess mode."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Forget a dead worker's live gauges (call from the process manager when a worker exits)."""
    if os.environ.get(MULTIPROC_DIR_ENV):
        prometheus_multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


# Methods labelled as themselves; any other token a client sends is labelled OTHER (bounded cardinality).
LABELLED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


# Where the middleware inside this one (gateway/app.py UnexpectedErrorMiddleware, which already watches every
# message sent) leaves the answer's status: one wrapper of ``send`` per request instead of two.
RESPONSE_STATUS_KEY = "voelgoed.response_status"


class RequestMetricsMiddleware:
    """Times every HTTP request, labelled by the matched route's path template, its method and status class
    (bounded cardinality; a request that left no status counts as a 500). Each label set's child is looked up
    once and kept: ``labels()`` costs more than the observation itself, on every request."""

    def __init__(self, app: ASGIApp, templates: dict[Any, str]) -> None:
        self.app = app
        self._templates = templates
        self._children: dict[tuple[str, str, int], Any] = {}  # at most methods x (routes + 1) x status classes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            status = scope.get(RESPONSE_STATUS_KEY, 500)
            self._child(scope, status // 100).observe(time.perf_counter() - started)

    def _child(self, scope: Scope, status_class: int) -> Any:
        method = scope["method"] if scope["method"] in LABELLED_METHODS else OTHER_METHOD
        route = self._templates.get(scope.get("endpoint"), UNMATCHED_ROUTE)
        key = (method, route, status_class)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = REQUEST_SECONDS.labels(method, route, f"{status_class}xx")
        return child


def route_templates(routes: Iterable[Any]) -> dict[Any, str]:
    """endpoint -> path template, for every route of the app."""
    return {route.endpoint: route.path for route in routes if hasattr(route, "endpoint")}
