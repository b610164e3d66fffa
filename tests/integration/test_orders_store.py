"""Orders and the outbox in Postgres (migration 011, persistence/orders.py, persistence/outbox.py).

- One order per hold: a second insert answers the first; the quote comes back as it went in.
- The schema refuses an order id that is not its hold's, a pending order with a reason, a paid one without paid_at.
- A provider event applies once. Ticket codes are issued once per ticket.
- The outbox: owing the same work twice leaves one row; a claim leases rows so a second claim skips them, a lease
  that ends gives them back, ``done`` retires them; a unit of work's rows commit with it or not at all.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from engine.catalog import pricing
from engine.ids import hold_id_for, order_id_of_hold, payment_attempt_id
from engine.orders import OrderStatus
from persistence import audit, orders, outbox
from persistence.tenancy import TenantPool, org_transaction, unscoped
from services import outbox as drain
from services.unit_of_work import unit_of_work_on
from tests.integration.seeding import org_and_event

TEST_ACTOR = audit.Actor("system", "test")
PRICES = pricing.PriceList(
    "ZAR", {"GA": pricing.TypePrice("GA", 15_000)}, (pricing.Fee("BOOKING", "order", 1_000),),
    pricing.Tax("VAT", 1_500, True),
)  # fmt: skip


async def _org_and_event(pool: asyncpg.Pool) -> tuple[str, str]:
    return await org_and_event(pool, "orders test org", "orders")


def _new_order(event_id: str, *, expires_in_s: float = 600) -> orders.NewOrder:
    hold_id = hold_id_for(event_id, secrets.token_hex(10))
    quote = pricing.quote(PRICES, [pricing.Item("GA", 2)], datetime.now(UTC))
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in_s)
    return orders.NewOrder(order_id_of_hold(hold_id), event_id, hold_id, "buyer-1", "a@example.com", "A", quote,
                           expires_at)  # fmt: skip


async def test_one_order_per_hold_and_its_quote_round_trips(pool: asyncpg.Pool) -> None:
    org_id, event_id = await _org_and_event(pool)
    new = _new_order(event_id)
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        first, created = await orders.insert_order(db, new)
        again, created_again = await orders.insert_order(db, new)
    assert created and not created_again
    assert again == first
    assert first.quote == new.quote and first.status is OrderStatus.PENDING_PAYMENT
    assert first.total_minor == new.quote.total_minor > 0


async def test_the_schema_refuses_orders_that_break_their_rules(pool: asyncpg.Pool) -> None:
    org_id, event_id = await _org_and_event(pool)
    new = _new_order(event_id)
    async with pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            async with org_transaction(conn, org_id) as db:
                await orders.insert_order(db, replace(new, order_id="ord_" + secrets.token_hex(26)))
        async with org_transaction(conn, org_id) as db:
            await orders.insert_order(db, new)
        with pytest.raises(asyncpg.CheckViolationError):
            async with org_transaction(conn, org_id) as db:
                await orders.move_order(db, new.order_id, OrderStatus.PAID, None)  # paid without paid_at
        with pytest.raises(asyncpg.CheckViolationError):
            async with org_transaction(conn, org_id) as db:
                await db.conn.execute("UPDATE orders SET reason = 'x' WHERE id = $1", new.order_id)


async def test_provider_events_apply_once_and_ticket_codes_issue_once(pool: asyncpg.Pool) -> None:
    org_id, event_id = await _org_and_event(pool)
    new = _new_order(event_id)
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        await orders.insert_order(db, new)
        attempt_id = payment_attempt_id(new.order_id)
        await orders.insert_attempt(db, attempt_id, new.order_id, "simulator", new.quote.total_minor, "ZAR")
        await orders.insert_attempt(db, attempt_id, new.order_id, "simulator", new.quote.total_minor, "ZAR")
        await orders.set_attempt(db, attempt_id, status="requires_payment", intent_id="pi_1", confirm_url="http://x")
        found = await orders.attempt_of_intent(db, "simulator", "pi_1")
        assert found is not None and found.attempt_id == attempt_id and found.status == "requires_payment"
        assert await orders.record_provider_event(db, "simulator", "evt_1", "payment.authorized", "pi_1", "moved")
        assert not await orders.record_provider_event(db, "simulator", "evt_1", "payment.authorized", "pi_1", "x")


async def test_owing_twice_leaves_one_row_and_claims_lease_rows(pool: asyncpg.Pool) -> None:
    org_id, _ = await _org_and_event(pool)
    topic, key = "test.lease", "work-" + secrets.token_hex(4)
    async with pool.acquire() as conn:
        async with unit_of_work_on(conn, org_id, TEST_ACTOR) as uow:
            uow.owe(outbox.Owed(topic, key, {"n": 1}))
            uow.owe(outbox.Owed(topic, key, {"n": 2}))
        now = datetime.now(UTC)
        async with unscoped(conn, reason="test: drain") as raw:
            claimed = await outbox.claim(raw, [topic], now, 30.0, 10)
        assert [(c.key, c.payload, c.attempts) for c in claimed] == [(key, {"n": 1}, 1)]
        async with unscoped(conn, reason="test: drain") as raw:
            assert await outbox.claim(raw, [topic], now, 30.0, 10) == []  # leased
            again = await outbox.claim(raw, [topic], now + timedelta(seconds=31), 30.0, 10)
        assert [c.attempts for c in again] == [2]  # the lease ended: claimed again
        async with org_transaction(conn, org_id) as db:
            await outbox.done(db, again[0].row_id)
        async with unscoped(conn, reason="test: drain") as raw:
            assert await outbox.claim(raw, [topic], now + timedelta(hours=1), 30.0, 10) == []


async def test_a_failed_unit_of_work_owes_nothing(pool: asyncpg.Pool) -> None:
    org_id, _ = await _org_and_event(pool)
    topic, key = "test.rollback", "work-" + secrets.token_hex(4)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with unit_of_work_on(conn, org_id, TEST_ACTOR) as uow:
                uow.owe(outbox.Owed(topic, key, {}))
                raise RuntimeError("the change failed")
        async with org_transaction(conn, org_id) as db:
            assert await outbox.rows_of(db, topic, key) == []


async def test_the_drain_retries_a_failing_handler_within_its_bounds_then_gives_up(pool: asyncpg.Pool) -> None:
    org_id, _ = await _org_and_event(pool)
    topic = "test.drain." + secrets.token_hex(3)
    async with pool.acquire() as conn, unit_of_work_on(conn, org_id, TEST_ACTOR) as uow:
        uow.owe(outbox.Owed(topic, "ok", {}))
        uow.owe(outbox.Owed(topic, "flaky", {}))
        uow.owe(outbox.Owed(topic, "broken", {}))
    calls: dict[str, int] = {}

    async def handler(row: outbox.Claimed) -> None:
        calls[row.key] = calls.get(row.key, 0) + 1
        if row.key == "broken" or (row.key == "flaky" and calls[row.key] < 3):
            raise RuntimeError(f"{row.key} failed")

    policy = drain.DrainPolicy(attempts_max=4, backoff_s_first=1.0, backoff_s_max=2.0)
    clock = [time.time()]
    stores = TenantPool(pool)
    passes = []
    for _ in range(8):
        passes.append(await drain.drain_once(stores, {topic: handler}, policy, lambda: clock[0]))
        clock[0] += 2.5  # past every backoff: each pass finds what is due again
    assert calls == {"ok": 1, "flaky": 3, "broken": 4}  # done once; done on its third try; given up after 4
    assert sum(p.done for p in passes) == 2 and sum(p.stuck for p in passes) == 1
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        (broken,) = await outbox.rows_of(db, topic, "broken")
    assert broken["stuck"] and broken["attempts"] == 4 and "broken failed" in broken["last_error"]
