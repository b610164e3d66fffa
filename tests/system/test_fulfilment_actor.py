"""The fulfilment actor (actors/fulfilment.py) on real Ray, Postgres, Redis and the payment simulator (a
subprocess): a gateway in this process with VOELGOED_ORDERS_WORKER=off (its inventory the session's Ray actors)
takes the checkout and the forwarded webhook; only the actor may fulfil.

- a paid order gets its tickets from the actor: its codes stored, ``tickets_issued_at`` set, one capture at the
  simulator, one capture in the ledger, one ``order.tickets_issued`` audited by ``system:fulfilment``;
- the actor killed by Ray (allowed to restart) after the simulator captured but before the answer arrived: the
  restarted incarnation claims the row once its lease ends and finishes it, still one capture and one set of
  tickets;
- a gateway with VOELGOED_ORDERS_WORKER=actor (as `voelgoed up` starts it) makes the actor from its own settings
  and runs no worker of its own: its paid order is fulfilled by the actor it made.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import ray

from actors.fulfilment import FULFILMENT_ACTOR_NAME, FulfilmentConfig, get_or_create
from engine.payments.reconcile import ReconcilePolicy
from engine.tickets.sealing import MasterKey
from gateway.app import create_app
from gateway.checkout import Payments
from gateway.timer_client import NullSchedules
from services.outbox import DrainPolicy
from tests.fakes import TEST_SESSION_SECRET, event_body, new_org
from tests.paysim_fixtures import PAYSIM_API_KEY, PAYSIM_SECRET, PaysimProcess, RunningSimulator
from tests.system.waiting import eventually
from voelgoed.settings import ORDERS_WORKER_ACTOR, ORDERS_WORKER_OFF, PaymentsSettings, Settings
from voelgoed.ticket_master_key import ensure_ticket_master_key

SUCCESS_CARD = "4242424242424242"
BUYER = {"email": "buyer@example.com", "name": "A Buyer"}
QUANTITY = 2
MASTER_SECRET = secrets.token_bytes(32)  # the gateway's and the actor's: the same ticket master key
reconcile_never_s = 86_400.0  # the webhooks are forwarded by hand: the reconciler stays out of the way
# short leases so that a row the killed incarnation held is claimed again within the test; a handler's bound
# stays above the simulator's delayed answer below
drain_policy = DrainPolicy(lease_s=6.0, handler_s_max=5.0, backoff_s_first=0.2, backoff_s_max=1.0)
answer_delay_s = 2.0  # the simulator's answers wait this long while the actor is killed
actor_up_s_max = 30.0
issued_s_max = 30.0


@pytest.fixture(scope="module")
def fulfilment_actor(settings: Settings, paysim_process: PaysimProcess, ray_driver: None) -> Iterator[Any]:
    config = FulfilmentConfig(
        database_url=settings.database_url, redis_url=settings.redis_url, hosts_count=settings.inventory_hosts,
        provider_url=paysim_process.url, webhook_secret=PAYSIM_SECRET, master_secret=MASTER_SECRET,
        api_key=PAYSIM_API_KEY, drain=drain_policy, reconcile=ReconcilePolicy(after_s=reconcile_never_s),
    )  # fmt: skip
    handle = get_or_create(config, settings.ray_namespace)
    assert ray.get(handle.start.remote(), timeout=actor_up_s_max) is True
    yield handle
    _kill_for_good(handle)


def _kill_for_good(handle: Any) -> None:
    """Detached: left alive, it would drain the session's outbox for every later test."""
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def _named_actor(namespace: str) -> Any:
    try:
        return ray.get_actor(FULFILMENT_ACTOR_NAME, namespace=namespace)
    except ValueError:
        return None


@pytest.fixture
async def gw(settings: Settings, paysim: RunningSimulator, fulfilment_actor: Any) -> AsyncIterator[httpx.AsyncClient]:
    payments = Payments({paysim.provider.name: paysim.provider}, MasterKey(MASTER_SECRET),
                        reconcile=ReconcilePolicy(after_s=reconcile_never_s))
    async with _gateway(_gateway_settings(settings, ORDERS_WORKER_OFF), payments) as client:
        yield client


def _gateway_settings(settings: Settings, orders_worker: str, **more: Any) -> Settings:
    return Settings(
        database_url=settings.database_url, redis_url=settings.redis_url, ray_address=settings.ray_address,
        ray_namespace=settings.ray_namespace, inventory_hosts=settings.inventory_hosts,
        session_secret=TEST_SESSION_SECRET, orders_worker=orders_worker, **more,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _gateway(gateway_settings: Settings, payments: Payments) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(gateway_settings, timer=NullSchedules(), payments=payments)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=60) as client,
    ):
        yield client


async def _paid_order(gw: httpx.AsyncClient, paysim: RunningSimulator, database_url: str) -> tuple[str, str]:
    """(order id, intent id) of an order paid with the success card, its webhook forwarded to the gateway."""
    _, key = await new_org(database_url, "fulfilment actor org")
    owner = {"Authorization": f"Bearer {key}"}
    created = await gw.post("/v1/events", json=event_body(), headers=owner)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]
    assert (await gw.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    held = await gw.post(f"/v1/events/{event_id}/holds", headers=owner,
                         json={"buyer_id": "buyer-1", "ticket_type": "GA", "quantity": QUANTITY})
    assert held.status_code == 201, held.text
    made = await gw.post(f"/v1/holds/{held.json()['hold_id']}/checkout", json={"buyer": BUYER}, headers=owner)
    assert made.status_code == 201, made.text
    order = made.json()
    confirm_url: str = order["payment"]["confirm_url"]
    async with httpx.AsyncClient() as http:
        assert (await http.post(confirm_url, json={"card_number": SUCCESS_CARD})).status_code == 200
    intent_id = confirm_url.rstrip("/").split("/")[-2]
    await paysim.receiver.wait_for(lambda _: len(paysim.receiver.for_intent(intent_id)) >= 1)
    return order["order_id"], intent_id


async def _forward_webhook(gw: httpx.AsyncClient, paysim: RunningSimulator, intent_id: str) -> None:
    for delivery in paysim.receiver.for_intent(intent_id):
        answer = await gw.post("/v1/payments/webhooks/simulator", content=delivery.body,
                               headers={"Voelgoed-Signature": delivery.signature, "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text


async def _fulfilled(database_url: str, order_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            "status": await conn.fetchval("SELECT status FROM orders WHERE id = $1", order_id),
            "issued": await conn.fetchval("SELECT tickets_issued_at IS NOT NULL FROM orders WHERE id = $1", order_id),
            "codes": await conn.fetchval("SELECT count(*) FROM ticket_codes WHERE order_id = $1", order_id),
            "captures": await conn.fetchval(
                "SELECT count(*) FROM ledger_transactions WHERE order_id = $1 AND kind = 'capture'", order_id),
            "issued_audits": await conn.fetch(
                "SELECT actor_type || ':' || actor_id AS actor FROM audit_log"
                " WHERE object_id = $1 AND action = 'order.tickets_issued'", order_id),
        }  # fmt: skip
    finally:
        await conn.close()


async def _issued(database_url: str, order_id: str) -> dict[str, Any]:
    return await eventually(lambda: _fulfilled(database_url, order_id), lambda f: f["issued"], within_s=issued_s_max)


def _check_once(state: dict[str, Any]) -> None:
    assert (state["status"], state["issued"], state["codes"], state["captures"]) == ("paid", True, QUANTITY, 1)
    assert [r["actor"] for r in state["issued_audits"]] == ["system:fulfilment"]


async def _captures_at(paysim: RunningSimulator, intent_id: str) -> int:
    intent = await paysim.provider.get_intent(intent_id)
    return intent.captured_minor


async def test_the_actor_issues_a_paid_orders_tickets_once(
    gw: httpx.AsyncClient, paysim: RunningSimulator, database_url: str, fulfilment_actor: Any
) -> None:
    order_id, intent_id = await _paid_order(gw, paysim, database_url)
    before = (await paysim.stats())["captures"]
    await _forward_webhook(gw, paysim, intent_id)
    _check_once(await _issued(database_url, order_id))
    assert (await paysim.stats())["captures"] - before == 1
    assert await _captures_at(paysim, intent_id) > 0
    stats = await asyncio.wrap_future(fulfilment_actor.stats.remote().future())
    assert stats["ready"] and stats["worker"]["done"] >= 1, stats


async def test_a_restarted_actor_finishes_the_work_of_the_one_killed_once(
    gw: httpx.AsyncClient, paysim: RunningSimulator, database_url: str, fulfilment_actor: Any
) -> None:
    first = await asyncio.wrap_future(fulfilment_actor.stats.remote().future())
    order_id, intent_id = await _paid_order(gw, paysim, database_url)
    before = (await paysim.stats())["captures"]
    await paysim.set_faults(response_delay_s=answer_delay_s)  # the capture is made; its answer waits
    await _forward_webhook(gw, paysim, intent_id)
    captured = await eventually(paysim.stats, lambda s: s["captures"] > before, within_s=issued_s_max)
    assert captured["captures"] == before + 1
    killed_at = time.monotonic()
    await asyncio.to_thread(ray.kill, fulfilment_actor, no_restart=False)  # mid-capture: the answer is lost
    assert time.monotonic() - killed_at < answer_delay_s, "killed after the answer: the test proves nothing"
    await paysim.reset_faults()
    assert not (await _fulfilled(database_url, order_id))["issued"]
    state = await _issued(database_url, order_id)  # the restarted incarnation, once the row's lease ended
    _check_once(state)
    assert (await paysim.stats())["captures"] == before + 1  # the retried capture was answered, not made again
    after = await eventually(lambda: asyncio.wrap_future(fulfilment_actor.stats.remote().future()),
                             lambda s: s["ready"], within_s=actor_up_s_max)
    assert after["pid"] != first["pid"] and after["restarted"], (first, after)


async def test_a_gateway_in_actor_mode_makes_the_actor_and_leaves_the_work_to_it(
    settings: Settings, paysim: RunningSimulator, paysim_process: PaysimProcess, database_url: str,
    fulfilment_actor: Any, tmp_path: Path,
) -> None:
    _kill_for_good(fulfilment_actor)  # the gateway must make its own
    gone = await eventually(lambda: asyncio.to_thread(_named_actor, settings.ray_namespace), lambda h: h is None,
                            within_s=actor_up_s_max)
    assert gone is None
    master = ensure_ticket_master_key(tmp_path, {})  # the data folder the gateway reads the secret from
    provider = PaymentsSettings(paysim_process.url, PAYSIM_SECRET.decode(), PAYSIM_API_KEY)
    gateway_settings = _gateway_settings(settings, ORDERS_WORKER_ACTOR, data_dir=tmp_path, payments=provider)
    payments = Payments({paysim.provider.name: paysim.provider}, master,
                        reconcile=ReconcilePolicy(after_s=reconcile_never_s))
    try:
        async with _gateway(gateway_settings, payments) as gw:
            made = await eventually(lambda: asyncio.to_thread(_named_actor, settings.ray_namespace),
                                    lambda h: h is not None, within_s=actor_up_s_max)
            assert made is not None, "the gateway never made the fulfilment actor"
            order_id, intent_id = await _paid_order(gw, paysim, database_url)
            await _forward_webhook(gw, paysim, intent_id)
            _check_once(await _issued(database_url, order_id))
            stats = await asyncio.wrap_future(made.stats.remote().future())
            assert stats["worker"]["done"] >= 1, stats
    finally:
        made = await asyncio.to_thread(_named_actor, settings.ray_namespace)
        if made is not None:
            _kill_for_good(made)
