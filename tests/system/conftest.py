"""A real gateway (uvicorn in a subprocess) on the session's Postgres, Redis and Ray, for tests over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import ray

from gateway.http_protocol import HTTP_PROTOCOL
from persistence.access.orgs import create_org
from voelgoed.embedded import free_tcp_port
from voelgoed.settings import Settings

gateway_start_s_max = 60.0
gateway_stop_s_max = 10.0


@pytest.fixture(scope="session")
def gateway_url(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_tcp_port()
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    env = {
        **os.environ,
        "VOELGOED_DATABASE_URL": settings.database_url,
        "VOELGOED_REDIS_URL": settings.redis_url,
        "VOELGOED_RAY_ADDRESS": settings.ray_address or "",
        "VOELGOED_RAY_NAMESPACE": settings.ray_namespace,
        "VOELGOED_INVENTORY_HOSTS": str(settings.inventory_hosts),
    }
    command = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--http", HTTP_PROTOCOL, "--log-level", "warning"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(gateway_stop_s_max)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: object) -> None:
    deadline = time.monotonic() + gateway_start_s_max
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {Path(str(log_path)).read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gateway not ready in {gateway_start_s_max}s: {Path(str(log_path)).read_text()[-3000:]}")


@pytest.fixture(scope="session")
def ray_driver(settings: Settings) -> Iterator[None]:
    """This test process joins the session's Ray too, to kill inventory actors."""
    ray.init(address=settings.ray_address, namespace=settings.ray_namespace, log_to_driver=False,
             ignore_reinit_error=True)
    yield


@pytest.fixture
async def api_key(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        _, key = await create_org(conn, "system-test org")
    finally:
        await conn.close()
    return key


@pytest.fixture
async def client(gateway_url: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=gateway_url, headers={"Authorization": f"Bearer {api_key}"},
                                 limits=limits, timeout=60) as http:
        yield http


async def create_published_event(client: httpx.AsyncClient, *, seats: int = 0, ga: int = 0,
                                 hold_ttl_s: int = 600, max_per_buyer: int = 10, dedicated: bool = False) -> str:
    body: dict[str, object] = {"name": "system test", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": hold_ttl_s,
                               "max_tickets_per_buyer": max_per_buyer, "ticket_types": [], "dedicated": dedicated}
    types: list[dict[str, object]] = []
    if seats:
        body["seating"] = {"sections": [{"name": "A", "rows": [{"label": "1", "seats": seats}]}]}
        types.append({"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}})
    if ga:
        types.append({"code": "GA", "kind": "ga", "capacity": ga,
                      "price": {"amount_minor": 15000, "currency": "ZAR"}})
    body["ticket_types"] = types
    created = await client.post("/v1/events", json=body)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    published = await client.post(f"/v1/events/{event_id}/publish")
    assert published.status_code == 200, published.text
    return event_id
