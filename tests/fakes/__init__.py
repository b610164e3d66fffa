"""In-process stand-ins for tests: the fake inventory (tests/fakes/inventory.py) and a gateway harness that runs
the real app over it on the session's real Postgres and Redis, through httpx's ASGI transport (with the app's
lifespan) or, for websockets, a real uvicorn server on a free port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from engine.ratelimit import DEFAULT_POLICY, Policy
from gateway.app import create_app
from gateway.checkout import Payments
from gateway.http_protocol import JoinedWritesProtocol
from persistence.access.orgs import create_org
from persistence.db import create_pool
from tests.fakes.inventory import FakeInventoryClient
from voelgoed.settings import Settings

server_start_s_max = 10.0
# The session secret of every test gateway (and of the `settings` fixture), so a test can sign tokens for it.
TEST_SESSION_SECRET = "test-session-secret-" + "x" * 32

SEATS_PER_ROW = 10


def event_body(*, rows: int = 2, ga_capacity: int = 50, max_per_buyer: int = 10) -> dict[str, Any]:
    return {
        "name": "Flash Sale Live",
        "starts_at": "2026-12-31T18:00:00Z",
        "hold_ttl_s": 600,
        "max_tickets_per_buyer": max_per_buyer,
        "seating": {
            "sections": [{"name": "A", "rows": [{"label": str(r), "seats": SEATS_PER_ROW} for r in range(1, rows + 1)]}]
        },
        "ticket_types": [
            {"code": "GA", "kind": "ga", "capacity": ga_capacity, "price": {"amount_minor": 15000, "currency": "ZAR"}},
            {"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}},
        ],
    }


@dataclass
class Gateway:
    client: httpx.AsyncClient
    app: Starlette
    inventory: FakeInventoryClient
    url: str


@asynccontextmanager
async def running_gateway(
    database_url: str,
    redis_url: str,
    *,
    serve: bool = False,
    inventory: FakeInventoryClient | None = None,
    rate_limits: Policy = DEFAULT_POLICY,
    timer: Any = None,
    payments: Payments | None = None,
) -> AsyncIterator[Gateway]:
    """The gateway app over a FakeInventoryClient (a fresh one unless given); ``serve`` puts it behind a real
    uvicorn server; ``rate_limits`` replaces the default policy (engine.ratelimit.policy_with); ``timer``: the
    catalog timer the routes tell of changes (actors.catalog_timer.TimerCore in-process; none by default);
    ``payments``: the payment providers and ticket master key (none by default: checkout answers 404)."""
    inventory = inventory or FakeInventoryClient(database_url, redis_url)
    settings = Settings(
        database_url=database_url, redis_url=redis_url, session_secret=TEST_SESSION_SECRET, rate_limits=rate_limits
    )
    app = create_app(settings, inventory=inventory, timer=timer, payments=payments or Payments())
    if serve:
        async with _uvicorn(app) as url, httpx.AsyncClient(base_url=url) as client:
            yield Gateway(client, app, inventory, url)
        return
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://gateway") as client,
    ):
        yield Gateway(client, app, inventory, "http://gateway")


@asynccontextmanager
async def _uvicorn(app: Starlette) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", http=JoinedWritesProtocol))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(server_start_s_max):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def new_org(database_url: str, name: str = "test org") -> tuple[str, str]:
    """(org id, owner API key) of a fresh organization."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await create_org(conn, name)
    finally:
        await pool.close()
