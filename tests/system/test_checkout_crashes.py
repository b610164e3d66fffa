"""Crash tests of checkout's fulfilment with real processes: a paid order's fulfilment (capture, confirm, issue)
interrupted by SIGKILL of the gateway, by a kill of the event's inventory actor, or both, at two crash points:

- **a: between payment success and confirm.** The simulator answers every call ``capture_delay_s`` late
  (paysim ``response_delay_s``: the capture takes effect first, then its answer waits), so the crash lands while
  the capture is done at the provider but its answer has not reached the platform: nothing confirmed, no tickets.
- **b: between confirm and ticket issue.** The test holds the order's row lock (``SELECT ... FOR UPDATE``) once the
  capture is done, so the fulfilment makes its sale (the inventory actor writes it to Postgres) and then waits in
  the issuing unit of work (its ``ticket_codes`` insert needs the order row's key-share lock). The crash lands
  while a backend is seen waiting there: sale in Postgres, ``tickets_issued_at`` null, no ticket codes. No
  test-only knob in the product is needed for either point.

There is no separate fulfilment Ray actor: the fulfilment is the OrdersWorker (services/orders/worker.py) inside
each gateway process that has a payment provider and the ticket master key, so SIGKILL of the gateway process
kills both "the gateway worker" and "the fulfilment actor". The inventory actor is the event's dedicated one,
killed with ``ray.kill(handle, no_restart=False)``: it restarts and recovers from Postgres.

The gateway here is this module's own uvicorn subprocess (not the session's ``gateway_url``), with the payment
simulator (its own ``python -m paysim`` subprocess, delivering its webhooks straight to the gateway) and a short
outbox lease (``VOELGOED_OUTBOX_LEASE_S``), so that a killed gateway's claimed row is retried after seconds, not
a minute. After each crash and recovery the order is paid with its tickets exactly once (ticket codes == tickets
of its one sale == the hold's quantity), the simulator counts exactly one capture for it and no refund, the
ledger has the order's one capture and every transaction balances, and the outbox owes nothing for the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import ray

from actors.placement import dedicated_name
from gateway.http_protocol import HTTP_PROTOCOL
from tests.paysim_fixtures import ROOT, _read_listening_url, _stop
from tests.system import stores
from tests.system.conftest import create_published_event
from voelgoed.embedded import free_tcp_port
from voelgoed.settings import Settings

pytestmark = pytest.mark.services

T = TypeVar("T")
SUCCESS_CARD = "4242424242424242"
BUYER = {"email": "buyer@example.com", "name": "A Buyer"}
QUANTITY = 2
OUTBOX_LEASE_S = 6.0  # the gateway's handlers are then bounded to 5 s (services/outbox.py DrainPolicy.for_lease)
capture_delay_s = 2.0  # the simulator's answers wait this long: the window in which each crash lands
crash_point_s_max = 10.0  # from paying to reaching the crash point
recovery_s_max = 40.0  # from the restart (or the actor kill) to the order's tickets: the lease, a start, backoffs
outbox_done_s_max = 10.0
gateway_start_s_max = 60.0
gateway_stop_s_max = 10.0
poll_s = 0.02


@dataclass
class GatewayProcess:
    """This module's gateway: a uvicorn subprocess on a fixed port, killed with SIGKILL and started again."""

    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        assert not self.alive()
        command = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory", "--host", "127.0.0.1",
                   "--port", str(self.port), "--http", HTTP_PROTOCOL, "--log-level", "warning"]  # fmt: skip
        with open(self.log_path, "ab") as log:
            log.write(f"---- start {self.starts + 1} ----\n".encode())
            log.flush()
            self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1
        deadline = time.monotonic() + gateway_start_s_max
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gateway not ready in {gateway_start_s_max} s: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lifespan exit; whatever it had claimed stays leased."""
        assert self.process is not None and self.alive()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(gateway_stop_s_max)

    def stop(self) -> None:
        if self.process is not None and self.alive():
            self.process.terminate()
            try:
                self.process.wait(gateway_stop_s_max)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(gateway_stop_s_max)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


@dataclass
class Rig:
    gateway: GatewayProcess
    paysim_url: str
    paysim_api_key: str
    paysim_process: subprocess.Popen[bytes]

    async def sim(self, method: str, path: str, **kwargs: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.paysim_url, timeout=10,
                                     headers={"Authorization": f"Bearer {self.paysim_api_key}"}) as http:
            answer = await http.request(method, path, **kwargs)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="module")
def rig(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """The gateway's port is chosen first, so that the simulator can be told where to deliver its webhooks."""
    port = free_tcp_port()
    secret, api_key = "whsec_" + secrets.token_hex(16), "sk_" + secrets.token_hex(16)
    with tempfile.TemporaryFile() as paysim_stderr:
        paysim = subprocess.Popen(
            [sys.executable, "-m", "paysim", "--port", "0", "--secret", secret, "--api-key", api_key,
             "--webhook-url", f"http://127.0.0.1:{port}/v1/payments/webhooks/simulator"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=paysim_stderr,
        )  # fmt: skip
        try:
            paysim_url = _read_listening_url(paysim, paysim_stderr)
            env = {
                **os.environ,
                "VOELGOED_DATABASE_URL": settings.database_url,
                "VOELGOED_REDIS_URL": settings.redis_url,
                "VOELGOED_RAY_ADDRESS": settings.ray_address or "",
                "VOELGOED_RAY_NAMESPACE": settings.ray_namespace,
                "VOELGOED_INVENTORY_HOSTS": str(settings.inventory_hosts),
                "VOELGOED_PAYMENTS_PROVIDER_URL": paysim_url,
                "VOELGOED_PAYMENTS_WEBHOOK_SECRET": secret,
                "VOELGOED_PAYMENTS_API_KEY": api_key,
                # the same master key on every start: the org's signing key sealed by one start opens in the next
                "VOELGOED_TICKET_MASTER_KEY": secrets.token_urlsafe(32),
                "VOELGOED_OUTBOX_LEASE_S": str(OUTBOX_LEASE_S),
            }
            log_path = tmp_path_factory.mktemp("crash-gateway") / "gateway.log"
            gateway = GatewayProcess(port, env, log_path)
            try:
                gateway.start()
                yield Rig(gateway, paysim_url, api_key, paysim)
            finally:
                gateway.stop()
        finally:
            _stop(paysim)


@pytest.fixture
async def crash(rig: Rig, database_url: str, api_key: str, ray_driver: None) -> AsyncIterator[Crash]:
    assert rig.paysim_process.poll() is None, "the simulator died"
    if not rig.gateway.alive():  # an earlier test failed with it down
        await asyncio.to_thread(rig.gateway.start)
    await rig.sim("DELETE", "/_sim/faults")
    # no keep-alive: every request opens its own connection, so a killed gateway leaves no dead one in the pool
    async with httpx.AsyncClient(base_url=rig.gateway.url, headers={"Authorization": f"Bearer {api_key}"},
                                 limits=httpx.Limits(max_keepalive_connections=0), timeout=30) as client:
        yield Crash(rig, client, database_url)
    await rig.sim("DELETE", "/_sim/faults")


async def eventually(probe: Callable[[], Awaitable[T | None]], within_s: float, what: str) -> T:
    deadline = time.monotonic() + within_s
    while (found := await probe()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {within_s} s")
        await asyncio.sleep(poll_s)
    return found


@dataclass
class Order:
    order_id: str
    intent_id: str
    confirm_url: str
    total_minor: int
    event_id: str
    org_id: str


@dataclass
class Crash:
    rig: Rig
    client: httpx.AsyncClient
    database_url: str

    async def order(self) -> Order:
        event_id = await create_published_event(self.client, ga=10, dedicated=True)
        org_id = await stores.event_org(self.database_url, event_id)
        held = await self.client.post(f"/v1/events/{event_id}/holds",
                                      json={"buyer_id": "buyer-1", "ticket_type": "GA", "quantity": QUANTITY})
        assert held.status_code == 201, held.text
        made = await self.client.post(f"/v1/holds/{held.json()['hold_id']}/checkout", json={"buyer": BUYER})
        assert made.status_code == 201, made.text
        body = made.json()
        url: str = body["payment"]["confirm_url"]
        return Order(body["order_id"], url.rstrip("/").split("/")[-2], url, body["total"]["amount_minor"],
                     event_id, org_id)

    async def pay_slowly(self, order: Order) -> asyncio.Task[httpx.Response]:
        """Pays with the success card while every answer of the simulator is ``capture_delay_s`` late; the
        buyer's own (late) answer is awaited later."""
        await self.rig.sim("POST", "/_sim/faults", json={"response_delay_s": capture_delay_s})

        async def confirm() -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                return await http.post(order.confirm_url, json={"card_number": SUCCESS_CARD})

        return asyncio.ensure_future(confirm())

    async def captured_at_provider_unanswered(self, order: Order, captures_before: int, *,
                                              webhook_recorded: bool = False) -> dict[str, Any]:
        """Crash point a: the order paid, its capture done at the simulator (its answer still held back), nothing
        confirmed or issued. ``webhook_recorded``: also the simulator's ``payment.captured`` webhook applied to
        the payment attempt (it is sent at the capture, long before the capture's answer)."""

        async def reached() -> dict[str, Any] | None:
            stats = await self.rig.sim("GET", "/_sim/stats")
            if stats["captures"] - captures_before < 1:
                return None
            state = await self.pg_state(order)
            if webhook_recorded and state["attempt"]["captured_minor"] < order.total_minor:
                return None
            return state

        state = await eventually(reached, crash_point_s_max, "captured at the provider")
        assert state["status"] == "paid" and state["sales"] == 0 and state["codes"] == 0, state
        assert state["tickets_issued_at"] is None and state["fulfil"]["attempts"] == 1, state
        return state

    async def pg_state(self, order: Order) -> dict[str, Any]:
        conn = await asyncpg.connect(self.database_url)
        try:
            row = await conn.fetchrow("SELECT status, tickets_issued_at FROM orders WHERE id = $1", order.order_id)
            attempt = await conn.fetchrow("SELECT status, captured_minor FROM payment_attempts WHERE order_id = $1",
                                          order.order_id)  # fmt: skip
            sales = await conn.fetchval("SELECT count(*) FROM sales WHERE order_ref = $1", order.order_id)
            codes = await conn.fetchval("SELECT count(*) FROM ticket_codes WHERE order_id = $1", order.order_id)
            fulfil = await conn.fetchrow("SELECT attempts, done_at, stuck, last_error FROM outbox"
                                         " WHERE topic = 'orders.fulfil' AND key = $1", order.order_id)  # fmt: skip
        finally:
            await conn.close()
        return {"status": row["status"], "tickets_issued_at": row["tickets_issued_at"], "sales": sales,
                "codes": codes, "attempt": dict(attempt), "fulfil": dict(fulfil) if fulfil else None}  # fmt: skip

    async def tickets(self, order: Order, within_s: float = recovery_s_max) -> dict[str, Any]:
        async def issued() -> dict[str, Any] | None:
            try:
                answer = await self.client.get(f"/v1/orders/{order.order_id}")
            except httpx.HTTPError:
                return None
            body: dict[str, Any] = answer.json()
            return body if answer.status_code == 200 and body["tickets"] else None

        return await eventually(issued, within_s, f"{order.order_id} issued")

    async def kill_inventory(self, order: Order) -> None:
        name = dedicated_name(order.org_id, order.event_id)
        handle = await asyncio.to_thread(ray.get_actor, name, namespace=self.rig.gateway.env["VOELGOED_RAY_NAMESPACE"])
        await asyncio.to_thread(ray.kill, handle, no_restart=False)

    async def kill_gateway_and_restart(self, while_down: Callable[[], Awaitable[None]] | None = None) -> None:
        await asyncio.to_thread(self.rig.gateway.kill)
        if while_down is not None:
            await while_down()
        await self.rig.sim("DELETE", "/_sim/faults")  # the restarted gateway's calls are answered at once
        await asyncio.to_thread(self.rig.gateway.start)

    async def audit(self, order: Order, issued: dict[str, Any], captures_before: int, refunds_before: int
                    ) -> dict[str, Any]:
        """Tickets exactly once, one sale, one capture, no refund, the ledger balanced, nothing owed; answers the
        fulfil row (its attempts say how often the fulfilment ran)."""
        assert issued["status"] == "paid", issued
        ticket_ids = [t["ticket_id"] for t in issued["tickets"]]
        assert len(ticket_ids) == len(set(ticket_ids)) == QUANTITY, issued
        listed = await self.client.get(f"/v1/orders/{order.order_id}/tickets")
        assert listed.status_code == 200 and sorted(t["ticket_id"] for t in listed.json()) == sorted(ticket_ids)

        async def settled() -> dict[str, Any] | None:  # the fulfil row is marked done just after the issue
            conn = await asyncpg.connect(self.database_url)
            try:
                rows = await conn.fetch("SELECT topic, attempts, done_at, stuck, last_error FROM outbox"
                                        " WHERE key = $1 OR payload->>'order_id' = $1", order.order_id)  # fmt: skip
            finally:
                await conn.close()
            return {r["topic"]: dict(r) for r in rows} if all(r["done_at"] for r in rows) else None

        outbox = await eventually(settled, outbox_done_s_max, "the outbox done for the order")
        assert set(outbox) == {"orders.fulfil"} and not outbox["orders.fulfil"]["stuck"], outbox
        conn = await asyncpg.connect(self.database_url)
        try:
            sales = await conn.fetch("SELECT id FROM sales WHERE order_ref = $1", order.order_id)
            assert len(sales) == 1, sales
            sold = await conn.fetch("SELECT id FROM tickets WHERE sale_id = $1 AND status = 'live'", sales[0]["id"])
            codes = await conn.fetch("SELECT ticket_id FROM ticket_codes WHERE order_id = $1", order.order_id)
            issued_at = await conn.fetchval("SELECT tickets_issued_at FROM orders WHERE id = $1", order.order_id)
            kinds = await conn.fetch("SELECT kind FROM ledger_transactions WHERE order_id = $1 ORDER BY seq",
                                     order.order_id)  # fmt: skip
            capture_audits = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE action = 'payment.capture' AND after->>'order_id' = $1",
                order.order_id,
            )  # fmt: skip
            unbalanced = await conn.fetchval(
                "SELECT count(*) FROM (SELECT e.transaction_id FROM ledger_entries e JOIN ledger_transactions t"
                " ON t.id = e.transaction_id WHERE t.org_id = $1 GROUP BY e.transaction_id"
                " HAVING sum(e.amount_minor) <> 0) AS x", order.org_id,
            )  # fmt: skip
        finally:
            await conn.close()
        assert sorted(r["id"] for r in sold) == sorted(r["ticket_id"] for r in codes) == sorted(ticket_ids)
        assert issued_at is not None
        assert [r["kind"] for r in kinds] == ["capture"], kinds  # the order's money in the ledger, once
        assert unbalanced == 0 and capture_audits == 1
        stats = await self.rig.sim("GET", "/_sim/stats")
        assert (stats["captures"] - captures_before, stats["refunds"] - refunds_before) == (1, 0), stats
        intent = await self.rig.sim("GET", f"/v1/intents/{order.intent_id}")
        assert (intent["status"], intent["captured_minor"], intent["refunded_minor"]) == (
            "captured", order.total_minor, 0), intent  # fmt: skip
        fulfil: dict[str, Any] = outbox["orders.fulfil"]
        return fulfil


async def _counts(crash: Crash) -> tuple[int, int]:
    stats = await crash.rig.sim("GET", "/_sim/stats")
    return stats["captures"], stats["refunds"]


async def test_gateway_killed_between_payment_success_and_confirm(crash: Crash) -> None:
    """Crash point a, the gateway (and with it the fulfilment) killed: captured at the provider, its answer lost,
    and the provider's ``payment.captured`` webhook already recorded on the attempt (so the retry does not call the
    provider again). The restarted gateway's drain retries the row when its lease ends: the ledger's capture
    (which the killed attempt never posted), the confirm, the issue.

    Before the fix in services/orders/fulfilment.py ``_capture`` this lost the ledger's capture: the retry saw the
    attempt captured (by the webhook) and skipped the posting, so the buyer's money was taken at the provider but
    the order had no capture in the ledger (and no ``payment.capture`` audit entry)."""
    order = await crash.order()
    captures, refunds = await _counts(crash)
    paying = await crash.pay_slowly(order)
    at_kill = await crash.captured_at_provider_unanswered(order, captures, webhook_recorded=True)
    await crash.kill_gateway_and_restart()
    assert (await paying).status_code == 200
    issued = await crash.tickets(order)
    fulfil = await crash.audit(order, issued, captures, refunds)
    assert fulfil["attempts"] == 2, fulfil  # the killed claim, then the retry after the lease: nothing else
    print(f"crash point a hit: {at_kill}; fulfil row after recovery: {fulfil}")


@pytest.mark.parametrize("kill_inventory", [False, True], ids=["gateway", "gateway+inventory"])
async def test_gateway_killed_between_confirm_and_ticket_issue(crash: Crash, kill_inventory: bool) -> None:
    """Crash point b: the sale made (in Postgres), the tickets not issued. The gateway is killed (and, in the
    second case, the event's inventory actor too); the restarted gateway's retry skips the recorded capture, sends
    the same confirm (``fulfil:<order>``), which the inventory (restarted from Postgres) answers with the sale it
    made, and issues the tickets."""
    order = await crash.order()
    captures, refunds = await _counts(crash)
    paying = await crash.pay_slowly(order)
    await crash.captured_at_provider_unanswered(order, captures)
    blocker = await asyncpg.connect(crash.database_url)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE", order.order_id)

        async def waiting_to_issue() -> dict[str, Any] | None:
            state = await crash.pg_state(order)
            # a backend blocked by this lock while it inserts ticket codes (it holds ticket_codes' lock): the issue
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks w JOIN pg_locks h ON h.pid = w.pid AND h.granted"
                " AND h.relation = 'ticket_codes'::regclass"
                " WHERE NOT w.granted AND pg_backend_pid() = ANY(pg_blocking_pids(w.pid))"
            )  # fmt: skip
            return state if state["sales"] == 1 and waiting else None

        at_kill = await eventually(waiting_to_issue, crash_point_s_max, "the fulfilment waiting to issue")
        assert at_kill["tickets_issued_at"] is None and at_kill["codes"] == 0, at_kill
        assert at_kill["attempt"]["captured_minor"] == order.total_minor, at_kill  # the capture recorded

        async def down() -> None:
            await lock.rollback()  # the dead gateway's transaction never commits: its backend ends on the EOF
            if kill_inventory:
                await crash.kill_inventory(order)

        await crash.kill_gateway_and_restart(down)
    finally:
        await blocker.close()
    assert (await paying).status_code == 200
    issued = await crash.tickets(order)
    fulfil = await crash.audit(order, issued, captures, refunds)
    assert fulfil["attempts"] == 2, fulfil
    print(f"crash point b hit: {at_kill}; fulfil row after recovery: {fulfil}")


async def test_inventory_actor_killed_between_payment_success_and_confirm(crash: Crash) -> None:
    """Crash point a with the gateway alive: the event's inventory actor killed while the capture's answer is on
    its way. The confirm reaches the restarted actor, which recovered the hold from Postgres and Redis (or fails
    while it restarts, and the drain retries it after its backoff)."""
    order = await crash.order()
    captures, refunds = await _counts(crash)
    paying = await crash.pay_slowly(order)
    at_kill = await crash.captured_at_provider_unanswered(order, captures)
    await crash.kill_inventory(order)
    assert (await paying).status_code == 200
    issued = await crash.tickets(order)
    fulfil = await crash.audit(order, issued, captures, refunds)
    assert 1 <= fulfil["attempts"] <= 3, fulfil
    print(f"crash point a hit (inventory actor): {at_kill}; fulfil row after recovery: {fulfil}")
