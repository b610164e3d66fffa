"""The Starlette app: routes, the one error renderer, request metrics, and the process's services.

uvicorn runs it as a factory (``uvicorn gateway.app:create_app --factory``), so a call without arguments reads
Settings from the environment and talks to Ray; tests pass settings and an in-process inventory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from engine.refusals import Refused
from gateway.auth import Authenticator
from gateway.availability import AvailabilityCache, AvailabilityReads, SeatListCache
from gateway.checkout import Payments, checkout_of
from gateway.context import Services
from gateway.errors import (
    ApiError,
    DomainError,
    InfrastructureError,
    TooManyRequests,
    error_response,
)
from gateway.event_cache import EventCache
from gateway.fulfilment_link import FulfilmentLink
from gateway.idempotency import IdempotencyStore
from gateway.metrics import RESPONSE_STATUS_KEY, RequestMetricsMiddleware, mark_process_dead, route_templates
from gateway.price_cache import PriceCache
from gateway.ratelimit import RateLimiter
from gateway.refusals import error_for_refused
from gateway.router_errors import router_error
from gateway.routes import all_routes
from gateway.seatmap import SeatMaps
from gateway.sessions import TokenSigner
from gateway.timer_client import NullSchedules, TimerLink
from persistence.db import create_pool
from persistence.payments.simulator import SimulatorProvider
from persistence.ratelimit.store import RateLimitStore
from persistence.tenancy import TenantPool
from services.inventory.holds import HoldCopies, WrittenThroughHolds
from services.orders.worker import OrdersWorker
from services.outbox import DrainPolicy
from voelgoed.settings import ORDERS_WORKER_ACTOR, ORDERS_WORKER_OFF, Settings
from voelgoed.ticket_master_key import read_ticket_master_key

if TYPE_CHECKING:
    import asyncpg

    from gateway.inventory_client import InventoryClient

# Builds the availability reader from the process's Postgres pool, Redis client and subscription client; the
# load-test baselines (loadtests/baselines/) swap in their own this way.
AvailabilityFactory = Callable[["asyncpg.Pool", Redis, Redis], AvailabilityCache]
HoldCopiesFactory = Callable[[Redis], HoldCopies]  # given this process's Redis client

log = logging.getLogger(__name__)

redis_connections_max = 64
redis_pool_wait_s = 2.0
redis_command_timeout_s = 5.0
redis_connect_timeout_s = 2.0
CLOSE_INTERNAL_ERROR = 1011


def create_app(
    settings: Settings | None = None,
    *,
    inventory: InventoryClient | None = None,
    availability: AvailabilityFactory | None = None,
    timer: Any = None,
    payments: Payments | None = None,
    holds: HoldCopiesFactory | None = None,
) -> Starlette:
    """``timer``: the catalog timer's client (gateway/timer_client.py); by default the Ray actor's, or none when
    ``inventory`` is an in-process one (tests). ``payments``: the providers and ticket master key (by default
    from the settings: the provider's URL and secret, the master key from the data folder). ``holds``: where
    checkout reads a live hold (services/inventory/holds.py; by default the engine's write-through in Redis): an
    ``inventory`` of another store brings its own."""
    routes = all_routes()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        resolved = settings or Settings.from_env()
        async with _services(resolved, inventory, availability, timer, payments, holds) as services:
            app.state.services = services
            schedules = services.domain(TimerLink).schedules
            ensure_started = getattr(schedules, "ensure_started", None)
            listeners: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(services.auth.listen()),
                asyncio.ensure_future(services.auth.record_last_use_forever()),
                asyncio.ensure_future(services.domain(AvailabilityReads).availability.listen()),
                asyncio.ensure_future(services.events.listen()),
                asyncio.ensure_future(services.domain(PriceCache).listen()),
            ]
            if ensure_started is not None:
                listeners.append(asyncio.ensure_future(ensure_started()))
            listeners.extend(_orders_work(resolved, services))
            try:
                yield
            finally:
                for task in listeners:
                    task.cancel()
                for task in listeners:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                mark_process_dead(os.getpid())  # this worker's live gauges stop counting

    return _Gateway(
        routes=routes,
        middleware=[
            Middleware(RequestMetricsMiddleware, templates=route_templates(routes)),
            Middleware(UnexpectedErrorMiddleware),
        ],
        exception_handlers=_EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )


def _orders_work(settings: Settings, services: Services) -> list[asyncio.Future[Any]]:
    """Checkout's orders worker where VOELGOED_ORDERS_WORKER puts it: here, in the fulfilment actor (this process
    only makes sure it exists), or nowhere. Only a process that can take payments and sign tickets has a part."""
    if not services.domain(Payments).fulfils or settings.orders_worker == ORDERS_WORKER_OFF:
        return []
    if settings.orders_worker == ORDERS_WORKER_ACTOR:
        return [asyncio.ensure_future(FulfilmentLink(settings).ensure_started())]
    worker = OrdersWorker(checkout_of(services), services.pool, DrainPolicy.for_lease(settings.outbox_lease_s))
    return [asyncio.ensure_future(worker.run_forever())]


@asynccontextmanager
async def _services(
    settings: Settings, inventory: InventoryClient | None, availability: AvailabilityFactory | None, timer: Any,
    payments: Payments | None, holds: HoldCopiesFactory | None,
) -> AsyncIterator[Services]:
    if timer is None:
        if inventory is None:
            from gateway.timer_client import RayTimerClient  # Ray is heavy: import it only when used

            timer = RayTimerClient(settings)
        else:
            timer = NullSchedules()
    if inventory is None:
        from gateway.inventory_client import RayInventoryClient  # Ray is heavy: import it only when used

        inventory = RayInventoryClient(settings)
    # No connection at start-up: a worker that uvicorn starts again while Postgres is away (restarting) must come
    # up and answer 503 until it returns; a start-up that failed would make uvicorn stop the whole gateway.
    pool = await create_pool(settings.database_url, min_size=0)
    redis = Redis(
        connection_pool=BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=redis_connections_max,
            timeout=redis_pool_wait_s,
            socket_timeout=redis_command_timeout_s,
            socket_connect_timeout=redis_connect_timeout_s,
        )
    )
    # Subscriptions block on reads for as long as channels are quiet: no read timeout on their own client.
    listener_redis = Redis.from_url(settings.redis_url, socket_connect_timeout=redis_connect_timeout_s)
    owned_payments = payments is None
    payments = payments or _payments(settings)
    try:
        start = getattr(inventory, "start", None)
        if start is not None:
            await start()
        tenant_pool = TenantPool(pool)
        yield Services(
            pool=tenant_pool,
            redis=redis,
            inventory=inventory,
            auth=Authenticator(tenant_pool, redis, signer=_signer(settings), listener_redis=listener_redis),
            events=EventCache(tenant_pool, redis, listener_redis=listener_redis),
            idempotency=IdempotencyStore(redis),
            limits=RateLimiter(RateLimitStore(redis), settings.rate_limits),
            domains={
                AvailabilityReads: AvailabilityReads(
                    (availability or _default_availability)(pool, redis, listener_redis),
                    SeatListCache(tenant_pool, redis),
                ),
                SeatMaps: SeatMaps(tenant_pool),
                TimerLink: TimerLink(timer),
                PriceCache: PriceCache(tenant_pool, redis, listener_redis=listener_redis),
                Payments: payments,
                HoldCopies: (holds or WrittenThroughHolds)(redis),
            },
        )
    finally:
        if owned_payments:
            for provider in payments.providers.values():
                with contextlib.suppress(Exception):
                    await provider.close()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            await inventory.close()
        await listener_redis.aclose()
        await redis.aclose()
        await pool.close()


def _payments(settings: Settings) -> Payments:
    master = read_ticket_master_key(settings.data_dir)
    if settings.payments is None:
        return Payments(master=master)
    given = settings.payments
    provider = SimulatorProvider(given.provider_url, given.webhook_secret.encode(), api_key=given.api_key)
    return Payments({provider.name: provider}, master)


def _signer(settings: Settings) -> TokenSigner | None:
    if settings.session_secret is None:
        log.warning("no session secret (VOELGOED_SESSION_SECRET): people cannot log in; API keys still work")
        return None
    return TokenSigner(settings.session_secret)


def _default_availability(pool: asyncpg.Pool, redis: Redis, listener_redis: Redis) -> AvailabilityCache:
    return AvailabilityCache(redis, listener_redis=listener_redis)


async def render_error(connection: HTTPConnection, exc: Exception) -> Response | None:
    """The one renderer of every error: {"error": {"code", "message", "details"}}, never a stack trace."""
    routed = await router_error(connection, exc.status_code) if isinstance(exc, HTTPException) else None
    error = routed or _as_api_error(exc)
    if isinstance(connection, WebSocket):
        await connection.close(CLOSE_INTERNAL_ERROR, error.code)
        return None
    if isinstance(error, TooManyRequests):
        pass  # counted in voelgoed_rate_limited: a flood must not flood the log too
    elif isinstance(error, InfrastructureError):
        log.warning("%s %s: %s", connection.scope.get("method"), connection.url.path, error.code)
    elif not isinstance(error, DomainError):
        log.error("%s %s failed", connection.scope.get("method"), connection.url.path, exc_info=exc)
    return error_response(error)


def _as_api_error(exc: Exception) -> ApiError:
    """(The router's 404 and 405 are gateway/router_errors.py's: the whole Allow, 426 for a websocket path.)"""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Refused):
        return error_for_refused(exc)
    if isinstance(exc, HTTPException):
        return DomainError(str(exc.detail), code=f"http_{exc.status_code}", status=exc.status_code)
    return ApiError()


# One renderer for router errors (404/405), ApiErrors and refusals raised by use cases, over HTTP and websockets.
_EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: render_error, ApiError: render_error, Refused: render_error}


class _Gateway(Starlette):
    """Starlette without its outermost ServerErrorMiddleware: UnexpectedErrorMiddleware is the error boundary
    (JSON 500s, logged), so Starlette's plain-text one only re-wrapped every ``send`` of every request. An
    exception past a started answer still reaches uvicorn, which logs it and drops the connection, as before."""

    def build_middleware_stack(self) -> ASGIApp:
        if 500 in self.exception_handlers or Exception in self.exception_handlers:
            raise ValueError("a 500 handler would be ServerErrorMiddleware's: render 500s in UnexpectedErrorMiddleware")
        stack = super().build_middleware_stack()
        if not isinstance(stack, ServerErrorMiddleware):
            raise TypeError(f"Starlette's stack starts with {type(stack).__name__}, not ServerErrorMiddleware")
        return stack.app


class UnexpectedErrorMiddleware:
    """Renders any exception a route did not turn into an ApiError as a 500 ``internal_error`` (and logs it), and
    leaves each answer's status in the scope for the request metrics around it (``RESPONSE_STATUS_KEY``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope[RESPONSE_STATUS_KEY] = message["status"]  # for the metrics around this middleware
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if RESPONSE_STATUS_KEY in scope:
                raise
            response: Any = await render_error(HTTPConnection(scope, receive), exc)
            await response(scope, receive, tracking_send)
