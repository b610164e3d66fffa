"""The actor's per-event shell on real Postgres and Redis: recovery, write-through, and Postgres failures."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest
from redis.asyncio import Redis

from actors.event_inventory import EventInventory, InventoryLost
from actors.wire import decode_results
from engine.ids import hold_id_for
from engine.inventory.commands import (
    Command,
    Confirm,
    ExtendHold,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Result,
    actor_ref,
)
from persistence.access.orgs import create_org
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event, publish_event
from persistence.db import create_pool
from persistence.inventory import live_state, redis_keys
from persistence.tenancy import org_transaction
from tests.fakes.clock import FakeClock

KEY = actor_ref("key", "key_shell")  # who confirms, as the gateway names an API key
KEY_IP = "203.0.113.5"


class UnreachablePool:
    """Postgres down: every acquire fails before anything is sent."""

    async def acquire(self, timeout: float | None = None) -> Any:
        raise ConnectionRefusedError("postgres is down")

    async def release(self, conn: Any) -> None:
        raise AssertionError("nothing was acquired")


async def on_sale_event(database_url: str) -> tuple[str, str]:
    """(org_id, event_id) of a new org's on-sale event."""
    conn = await asyncpg.connect(database_url)
    try:
        org_id, _ = await create_org(conn, "shell test")
        new = NewEvent(
            name="shell", starts_at=dt.datetime(2026, 12, 31, tzinfo=dt.UTC), hold_ttl_s=600,
            max_tickets_per_buyer=10, seating={"sections": [{"name": "A", "rows": [{"label": "1", "seats": 4}]}]},
            seat_ids=("A-1-1", "A-1-2", "A-1-3", "A-1-4"),
            ticket_types=(TicketTypeRecord("SEAT", "seated", 4, 100, "ZAR"),), dedicated=False,
        )
        async with org_transaction(conn, org_id) as db:
            event = await create_event(db, new)
            await publish_event(db, event.id)
    finally:
        await conn.close()
    return org_id, event.id


async def apply(shell: EventInventory, *commands: Command) -> list[Result]:
    return decode_results((await shell.apply(list(commands))).results)


async def test_postgres_down_answers_503_and_the_hold_stays_held(database_url: str, clean_redis: str) -> None:
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    shell = await EventInventory.recover(org_id, event_id, pool, redis)
    assert shell is not None
    hold = hold_id_for(event_id, "1" * 20)
    [held] = await apply(shell, Hold(hold, hold, "buyer", seats=("A-1-1",)))
    assert isinstance(held, Ok)

    shell._pool = UnreachablePool()  # type: ignore[assignment]
    confirmed, looked_up = await apply(shell, Confirm("c1", hold, "order", KEY, KEY_IP), LookupHold("l1", hold))
    assert confirmed == Rejected("persistence_unavailable", "the sale could not be committed; retry")
    assert isinstance(looked_up, Rejected) and looked_up.code == "inventory_unavailable"
    assert shell.inventory.seat_counts() == (3, 1, 0)
    view = await live_state.read_availability(redis, shell.org_id, event_id)
    assert view is not None and view.seats_available == 3

    shell._pool = pool
    # the same command id: not a replay of the 503
    [sale] = await apply(shell, Confirm("c1", hold, "order", KEY, KEY_IP))
    assert isinstance(sale, Ok)
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        assert await conn.fetchval("SELECT count(*) FROM sales WHERE hold_id = $1", hold) == 1
        # the group commit wrote the sale's audit entry in its transaction, naming who confirmed and from where
        assert await sale_entries(conn) == [("key", "key_shell", KEY_IP)]
    await pool.close()
    await redis.aclose()


async def sale_entries(conn: asyncpg.Connection) -> list[tuple[str, str, str | None]]:
    """(actor type, actor id, ip) of each sale.create entry the connection's org can see, oldest first."""
    rows = await conn.fetch("SELECT actor_type, actor_id, ip FROM audit_log WHERE action = 'sale.create' ORDER BY seq")
    return [(r["actor_type"], r["actor_id"], r["ip"]) for r in rows]


async def test_each_sale_is_audited_under_the_confirm_that_made_it(database_url: str, clean_redis: str) -> None:
    """One batch, several callers: each sale names the first confirm that sold it; a twin confirm in the same
    batch and a retried command id later leave no second entry."""
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    shell = await EventInventory.recover(org_id, event_id, pool, redis)
    assert shell is not None
    first, second = hold_id_for(event_id, "4" * 20), hold_id_for(event_id, "5" * 20)
    await apply(shell, Hold(first, first, "b1", seats=("A-1-1",)), Hold(second, second, "b2", seats=("A-1-2",)))
    person = actor_ref("user", "usr_" + "c" * 32)
    answers = await apply(
        shell,
        Confirm("c1", first, "o1", KEY, KEY_IP),
        Confirm("c2", second, "o2", person, None),
        Confirm("c3", first, "o1", person, "198.51.100.9"),  # a twin: answered with the first confirm's sale
    )
    assert all(isinstance(a, Ok) for a in answers)
    [again] = await apply(shell, Confirm("c1", first, "o1", person, "198.51.100.9"))  # a retried command id
    assert again == answers[0]
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        assert await sale_entries(conn) == [("key", "key_shell", KEY_IP), ("user", "usr_" + "c" * 32, None)]
    await pool.close()
    await redis.aclose()


async def test_a_newer_incarnation_fences_the_old_one_out(database_url: str, clean_redis: str) -> None:
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    old = await EventInventory.recover(org_id, event_id, pool, redis)
    new = await EventInventory.recover(org_id, event_id, pool, redis)
    assert old is not None and new is not None and new.epoch == old.epoch + 1
    hold = hold_id_for(event_id, "2" * 20)
    with pytest.raises(InventoryLost):
        await apply(old, Hold(hold, hold, "buyer", seats=("A-1-2",)))  # Redis refuses the stale epoch
    [held] = await apply(new, Hold(hold, hold, "buyer", seats=("A-1-2",)))
    assert isinstance(held, Ok)
    await pool.close()
    await redis.aclose()


async def test_recovery_naming_another_org_finds_nothing_and_fences_nothing(
    database_url: str, clean_redis: str
) -> None:
    """Row-level security binds the recovery to the org it is asked for: another org's event id is unknown to
    it, and the real owner's epoch stays where it was."""
    org_id, event_id = await on_sale_event(database_url)
    other_org, _ = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    owner = await EventInventory.recover(org_id, event_id, pool, redis)
    assert owner is not None and owner.org_id == org_id
    assert await EventInventory.recover(other_org, event_id, pool, redis) is None
    hold = hold_id_for(event_id, "3" * 20)
    [held] = await apply(owner, Hold(hold, hold, "buyer", seats=("A-1-3",)))
    assert isinstance(held, Ok)  # still the current incarnation: nothing was fenced
    await pool.close()
    await redis.aclose()


async def test_expiry_follows_the_injected_clock(database_url: str, clean_redis: str) -> None:
    """Apply, the sweep and recovery all read the shell's clock: a hold lasts until that clock passes its ttl."""
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    clock = FakeClock()
    shell = await EventInventory.recover(org_id, event_id, pool, redis, clock=clock)
    assert shell is not None
    swept, recovered = hold_id_for(event_id, "6" * 20), hold_id_for(event_id, "7" * 20)
    await apply(
        shell,
        Hold(swept, swept, "b1", seats=("A-1-1",), ttl_s=1),
        Hold(recovered, recovered, "b2", seats=("A-1-2",), ttl_s=2),
    )
    assert await shell.expire(holds_max=10) == 0
    clock.advance(1)
    assert await shell.expire(holds_max=10) == 1
    assert shell.inventory.live_hold_ids() == [recovered]
    clock.advance(1)
    again = await EventInventory.recover(org_id, event_id, pool, redis, clock=clock)
    assert again is not None and again.inventory.live_hold_ids() == []  # due by the clock it was rebuilt at
    await pool.close()
    await redis.aclose()


async def test_extend_moves_the_redis_hold_records_expiry(database_url: str, clean_redis: str) -> None:
    """ExtendHold through the shell: the write-through rewrites the hold's Redis record with its new expires_at,
    the sweep lets the old time pass, and a rebuild from Redis keeps the new one."""
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    clock = FakeClock()
    shell = await EventInventory.recover(org_id, event_id, pool, redis, clock=clock)
    assert shell is not None
    hold = hold_id_for(event_id, "8" * 20)
    [held] = await apply(shell, Hold(hold, hold, "buyer", seats=("A-1-1",), ttl_s=10))
    assert isinstance(held, Ok) and isinstance(held.value, HoldView)
    record = await live_state.read_hold(redis, org_id, event_id, hold)
    assert record is not None and record.expires_at == held.value.expires_at

    clock.advance(5)
    [extended] = await apply(shell, ExtendHold("x1", hold, 900))
    assert isinstance(extended, Ok) and isinstance(extended.value, HoldView)
    assert extended.value.expires_at == clock() + 900 > held.value.expires_at
    record = await live_state.read_hold(redis, org_id, event_id, hold)
    assert record == extended.value

    clock.advance(10)  # past the old expiry
    assert await shell.expire(holds_max=10) == 0
    again = await EventInventory.recover(org_id, event_id, pool, redis, clock=clock)
    assert again is not None and again.inventory.live_hold_ids() == [hold]
    [looked_up] = await apply(again, LookupHold("l1", hold))
    assert looked_up == extended
    clock.advance(890)  # the new expiry
    assert await again.expire(holds_max=10) == 1
    assert await live_state.read_hold(redis, org_id, event_id, hold) is None
    await pool.close()
    await redis.aclose()


def test_served_event_members_carry_the_org() -> None:
    member = redis_keys.served_event_member("org_" + "a" * 32, "evt_" + "b" * 32)
    assert redis_keys.parse_served_event_member(member) == ("org_" + "a" * 32, "evt_" + "b" * 32)
    assert redis_keys.parse_served_event_member("evt_" + "b" * 32) is None  # an older member without its org
