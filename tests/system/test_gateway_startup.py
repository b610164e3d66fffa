"""A gateway process that starts while Postgres is away (uvicorn starting a worker again during a Postgres restart)
comes up and answers 503 until Postgres is back, never exits: uvicorn stops the whole gateway when a worker it
restarted fails its start-up (found by `python -m loadtests.soak`, seed 4: gateway-kill@12.9, postgres-kill@16.3)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gateway.http_protocol import HTTP_PROTOCOL
from voelgoed.embedded import free_tcp_port
from voelgoed.settings import Settings

up_s_max = 60.0


def test_a_gateway_starts_without_postgres_and_answers_503(settings: Settings, tmp_path: Path) -> None:
    port, nobody = free_tcp_port(), free_tcp_port()  # nothing listens on ``nobody``: Postgres is away
    env = {**os.environ, "VOELGOED_DATABASE_URL": f"postgresql://voelgoed@127.0.0.1:{nobody}/voelgoed",
           "VOELGOED_REDIS_URL": settings.redis_url, "VOELGOED_RAY_ADDRESS": settings.ray_address or "",
           "VOELGOED_RAY_NAMESPACE": settings.ray_namespace}
    command = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--http", HTTP_PROTOCOL, "--log-level", "warning"]
    log_path = tmp_path / "gateway.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready, deadline = None, time.monotonic() + up_s_max
        while ready is None and time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert process.poll() is None, log_path.read_text()[-3000:]
        assert ready is not None and ready.status_code == 503, log_path.read_text()[-3000:]
        events = httpx.get(f"http://127.0.0.1:{port}/v1/orders", headers={"Authorization": "Bearer vg_x"}, timeout=10)
        assert events.status_code in (401, 503) and events.headers.get("content-type", "").startswith(
            "application/json"), events.text
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
