"""The payment simulator for tests: `paysim` is a real `python -m paysim` subprocess on a free port, delivering
its webhooks to `webhook_receiver`, a small HTTP server in the test process that records every delivery.

One simulator serves the session (it starts in about a second); each test gets it with its faults cleared, the
receiver emptied and a fresh `SimulatorProvider` client. Registered from tests/conftest.py (pytest_plugins).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from engine.tickets.sealing import MasterKey
from gateway.checkout import Payments
from persistence.payments.simulator import RetryPolicy, SimulatorProvider

ROOT = Path(__file__).resolve().parents[1]
PAYSIM_SECRET = b"whsec_paysim_tests"
PAYSIM_API_KEY = "sk_paysim_tests"
paysim_start_s_max = 30.0
paysim_stop_s_max = 10.0
delivery_wait_s_max = 15.0
receiver_poll_s = 0.01
receiver_deliveries_max = 10_000
# quick retries so that a test about faults does not wait out production backoffs
test_retry = RetryPolicy(attempts_max=5, total_s_max=8.0, attempt_s_max=3.0, backoff_s_first=0.02, backoff_s_max=0.2)


@dataclass(frozen=True)
class Delivery:
    signature: str
    body: bytes
    attempt: int
    received_at: float  # monotonic

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many deliveries (the simulator must retry)
    refused: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.fail_next > 0:
            self.fail_next -= 1
            self.refused += 1
            return web.Response(status=500)
        if len(self.deliveries) < receiver_deliveries_max:
            self.deliveries.append(
                Delivery(
                    signature=request.headers.get("Voelgoed-Signature", ""),
                    body=body,
                    attempt=int(request.headers.get("Voelgoed-Delivery-Attempt", "0")),
                    received_at=time.monotonic(),
                )
            )
        return web.Response(status=204)

    def clear(self) -> None:
        self.deliveries.clear()
        self.fail_next = 0
        self.refused = 0

    def for_intent(self, intent_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.json()["data"]["intent"]["id"] == intent_id]

    async def wait_for(
        self, condition: Callable[[list[Delivery]], bool], *, within_s: float = delivery_wait_s_max
    ) -> list[Delivery]:
        deadline = time.monotonic() + within_s
        while not condition(self.deliveries):
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries still not as expected after {within_s} s: {self.deliveries}")
            await asyncio.sleep(receiver_poll_s)
        return list(self.deliveries)


@dataclass
class RunningSimulator:
    url: str
    secret: bytes
    api_key: str
    receiver: WebhookReceiver
    provider: SimulatorProvider
    session: aiohttp.ClientSession

    async def stats(self) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/_sim/stats") as response:
            assert response.status == 200
            return dict(await response.json())

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        async with self.session.post(f"{self.url}/_sim/faults", json=faults) as response:
            answer = await response.json()
            assert response.status == 200, answer
            return dict(answer)

    async def chargeback(self, intent_id: str) -> dict[str, Any]:
        """The buyer's bank takes the payment back (the simulator then delivers payment.charged_back)."""
        headers = {"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": f"chargeback:{intent_id}"}
        async with self.session.post(f"{self.url}/_sim/intents/{intent_id}/chargeback", json={},
                                     headers=headers) as response:
            answer = await response.json()
            assert response.status == 200, answer
            return dict(answer)

    async def reset_faults(self) -> None:
        async with self.session.delete(f"{self.url}/_sim/faults") as response:
            assert response.status == 200

    async def wait_idle(self, within_s: float = delivery_wait_s_max) -> dict[str, Any]:
        """Until no delivery is waiting or in flight."""
        deadline = time.monotonic() + within_s
        while True:
            stats = await self.stats()
            if stats["webhooks"]["backlog"] == 0:
                return stats
            if time.monotonic() > deadline:
                raise AssertionError(f"the simulator still has deliveries after {within_s} s: {stats}")
            await asyncio.sleep(receiver_poll_s)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@dataclass(frozen=True)
class PaysimProcess:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def paysim_process(webhook_receiver: WebhookReceiver) -> Iterator[PaysimProcess]:
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paysim",
                "--port",
                "0",
                "--webhook-url",
                webhook_receiver.url,
                "--secret",
                PAYSIM_SECRET.decode(),
                "--api-key",
                PAYSIM_API_KEY,
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        try:
            url = _read_listening_url(process, stderr)
            yield PaysimProcess(url=url, process=process)
        finally:
            _stop(process)


@pytest_asyncio.fixture(loop_scope="session")
async def paysim(paysim_process: PaysimProcess, webhook_receiver: WebhookReceiver) -> AsyncIterator[RunningSimulator]:
    assert paysim_process.process.poll() is None, "the simulator died"
    async with (
        aiohttp.ClientSession() as session,
        SimulatorProvider(paysim_process.url, PAYSIM_SECRET, api_key=PAYSIM_API_KEY, retry=test_retry) as provider,
    ):
        sim = RunningSimulator(paysim_process.url, PAYSIM_SECRET, PAYSIM_API_KEY, webhook_receiver, provider, session)
        await sim.reset_faults()
        await sim.wait_idle()  # nothing of an earlier test still arrives during this one
        webhook_receiver.clear()
        yield sim
        await sim.reset_faults()


def _read_listening_url(process: subprocess.Popen[bytes], stderr: Any) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + paysim_start_s_max
    prefix = b"paysim listening on "
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = process.stdout.readline()
            if line.startswith(prefix):
                return line[len(prefix) :].decode().strip()
    stderr.seek(0)
    raise AssertionError(f"the simulator did not start: {stderr.read().decode(errors='replace')[-2000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=paysim_stop_s_max)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=paysim_stop_s_max)
    with contextlib.suppress(Exception):
        if process.stdout is not None:
            process.stdout.close()


@asynccontextmanager
async def simulator_payments(paysim_process: PaysimProcess) -> AsyncIterator[Payments]:
    """A gateway's payments over the session's simulator, with a fresh ticket master key."""
    async with SimulatorProvider(
        paysim_process.url, PAYSIM_SECRET, api_key=PAYSIM_API_KEY, retry=test_retry
    ) as provider:
        yield Payments({provider.name: provider}, MasterKey(secrets.token_bytes(32)))
