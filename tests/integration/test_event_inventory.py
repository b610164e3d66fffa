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
    CancelSale,
    CancelTickets,
    Command,
    Confirm,
    ExtendHold,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Result,
    SaleView,
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


async def on_sale_event(database_url: str, *, ga_capacity: int = 0) -> tuple[str, str]:
    """(org_id, event_id) of a new org's on-sale event: four seats, and a GA type when ``ga_capacity``."""
    conn = await asyncpg.connect(database_url)
    try:
        org_id, _ = await create_org(conn, "shell test")
        new = NewEvent(
            name="shell", starts_at=dt.datetime(2026, 12, 31, tzinfo=dt.UTC), hold_ttl_s=600,
            max_tickets_per_buyer=10, seating={"sections": [{"name": "A", "rows": [{"label": "1", "seats": 4}]}]},
            seat_ids=("A-1-1", "A-1-2", "A-1-3", "A-1-4"),
            ticket_types=(
                TicketTypeRecord("SEAT", "seated", 4, 100, "ZAR"),
                *((TicketTypeRecord("GA", "ga", ga_capacity, 50, "ZAR"),) if ga_capacity else ()),
            ),
            dedicated=False,
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


async def sold_through(shell: EventInventory, hold: Hold) -> SaleView:
    """A hold confirmed and committed (the group commit wrote it): a sale CancelTickets may give tickets back of."""
    [held] = await apply(shell, hold)
    assert isinstance(held, Ok), held
    [sale] = await apply(shell, Confirm("c-" + hold.cmd_id, hold.hold_id, "order-1", KEY, KEY_IP))
    assert isinstance(sale, Ok) and isinstance(sale.value, SaleView), sale
    return sale.value


async def ticket_statuses(pool: asyncpg.Pool, org_id: str, sale_id: str) -> dict[str, str]:
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        rows = await conn.fetch("SELECT id, status FROM tickets WHERE sale_id = $1", sale_id)
        return {row["id"]: row["status"] for row in rows}


async def sale_status(pool: asyncpg.Pool, org_id: str, sale_id: str) -> str:
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        status = await conn.fetchval("SELECT status FROM sales WHERE id = $1", sale_id)
        assert isinstance(status, str)
        return status


async def test_cancel_tickets_frees_seats_and_units_at_once_and_a_rebuild_agrees(
    database_url: str, clean_redis: str
) -> None:
    """CancelTickets through the shell: the tickets are cancelled in Postgres (the sale stands, audited), their
    seat is holdable and sellable again at once, Redis shows it available, and an actor rebuilt from Postgres
    agrees, still skipping a retried give-back."""
    org_id, event_id = await on_sale_event(database_url, ga_capacity=3)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    shell = await EventInventory.recover(org_id, event_id, pool, redis)
    assert shell is not None
    seats_hold, ga_hold = hold_id_for(event_id, "a" * 20), hold_id_for(event_id, "b" * 20)
    seats = await sold_through(shell, Hold(seats_hold, seats_hold, "b1", seats=("A-1-1", "A-1-2", "A-1-3")))
    ga = await sold_through(shell, Hold(ga_hold, ga_hold, "b2", (), "GA", 2))
    first, second, third = seats.tickets

    [kept] = await apply(shell, CancelTickets("t1", seats_hold, (first.ticket_id,)))
    [ga_kept] = await apply(shell, CancelTickets("t2", ga_hold, (ga.tickets[1].ticket_id,)))

    assert kept == Ok(SaleView(seats.sale_id, seats_hold, "b1", "order-1", (second, third)))
    assert ga_kept == Ok(SaleView(ga.sale_id, ga_hold, "b2", "order-1", ga.tickets[:1]))
    assert await ticket_statuses(pool, org_id, seats.sale_id) == {
        first.ticket_id: "cancelled", second.ticket_id: "live", third.ticket_id: "live",
    }
    assert await ticket_statuses(pool, org_id, ga.sale_id) == {
        ga.tickets[0].ticket_id: "live", ga.tickets[1].ticket_id: "cancelled",
    }
    assert await sale_status(pool, org_id, seats.sale_id) == "live"
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        audited = await conn.fetch(
            "SELECT object_id, before FROM audit_log WHERE action = 'sale.cancel_tickets' ORDER BY seq"
        )
    assert [row["object_id"] for row in audited] == [seats.sale_id, ga.sale_id]
    view = await live_state.read_availability(redis, org_id, event_id)
    assert view is not None and view.seats_available == 2 and view.bitmap[0] & 0x80  # A-1-1 available again
    assert [(t.code, t.available, t.sold) for t in view.ticket_types] == [("SEAT", 2, 2), ("GA", 2, 1)]

    again = hold_id_for(event_id, "c" * 20)
    resold = await sold_through(shell, Hold(again, again, "b3", seats=("A-1-1",)))  # the live seat index allows it
    [ga_again] = await apply(shell, Hold("h-ga", hold_id_for(event_id, "d" * 20), "b3", (), "GA", 2))
    assert isinstance(ga_again, Ok) and isinstance(ga_again.value, HoldView)
    assert ga.tickets[1].unit in ga_again.value.units  # the unit given back is held again

    [retried] = await apply(shell, CancelTickets("t3", seats_hold, (first.ticket_id,)))  # a new cmd id: skipped
    assert retried == kept
    before = (shell.inventory.seat_counts(), shell.inventory.ga_counts(), shell.inventory.snapshot().sales)

    rebuilt = await EventInventory.recover(org_id, event_id, pool, redis)
    assert rebuilt is not None
    inventory = rebuilt.inventory
    assert (inventory.seat_counts(), inventory.ga_counts(), inventory.snapshot().sales) == before
    assert {s.hold_id: s.tickets for s in inventory.snapshot().sales}[seats_hold] == (second, third)
    assert resold.tickets[0].seat_id == "A-1-1"
    [after_rebuild] = await apply(rebuilt, CancelTickets("t4", seats_hold, (first.ticket_id,)))
    assert after_rebuild == kept  # the rebuild remembers which tickets were given back
    never_sold = first.ticket_id[:-1] + "9"
    [unknown] = await apply(rebuilt, CancelTickets("t5", seats_hold, (never_sold,)))
    assert isinstance(unknown, Rejected) and unknown.code == "ticket_not_found"
    assert unknown.details == {"hold_id": seats_hold, "ticket_ids": [never_sold]}
    await pool.close()
    await redis.aclose()


async def test_the_last_ticket_cancels_the_sale_in_postgres(database_url: str, clean_redis: str) -> None:
    """Giving back a sale's last tickets ends it as CancelSale does: the sale row is cancelled (with every
    ticket), audited as a cancellation, and a rebuild brings nothing of it back."""
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    shell = await EventInventory.recover(org_id, event_id, pool, redis)
    assert shell is not None
    hold = hold_id_for(event_id, "e" * 20)
    sale = await sold_through(shell, Hold(hold, hold, "b1", seats=("A-1-1", "A-1-2")))
    first, second = sale.tickets
    # one batch: the first ticket, then both (the first skipped): its tickets go before the sale is cancelled
    partly, ended = await apply(
        shell,
        CancelTickets("t1", hold, (first.ticket_id,)),
        CancelTickets("t2", hold, (first.ticket_id, second.ticket_id)),
    )
    assert partly == Ok(SaleView(sale.sale_id, hold, "b1", "order-1", (second,)))
    assert ended == Ok(SaleView(sale.sale_id, hold, "b1", "order-1", ()))
    assert await sale_status(pool, org_id, sale.sale_id) == "cancelled"
    assert set((await ticket_statuses(pool, org_id, sale.sale_id)).values()) == {"cancelled"}
    async with pool.acquire() as conn, org_transaction(conn, org_id):
        actions = await conn.fetch("SELECT action FROM audit_log WHERE object_id = $1 ORDER BY seq", sale.sale_id)
    assert [row["action"] for row in actions] == ["sale.create", "sale.cancel_tickets", "sale.cancel"]
    [gone] = await apply(shell, CancelSale("s1", hold))
    assert isinstance(gone, Rejected) and gone.code == "hold_not_found"

    rebuilt = await EventInventory.recover(org_id, event_id, pool, redis)
    assert rebuilt is not None and rebuilt.inventory.snapshot().sales == ()
    assert rebuilt.inventory.seat_counts() == (4, 0, 0)
    [looked_up] = await apply(rebuilt, LookupHold("l1", hold))
    assert isinstance(looked_up, Rejected) and looked_up.code == "hold_not_found"
    await pool.close()
    await redis.aclose()


async def test_a_failed_commit_of_tickets_given_back_gives_the_event_up(database_url: str, clean_redis: str) -> None:
    """Memory freed the seat already, so like a failed cancel commit the incarnation is lost (never aborted); the
    rebuild from Postgres has the ticket still live."""
    org_id, event_id = await on_sale_event(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    redis = Redis.from_url(clean_redis)
    shell = await EventInventory.recover(org_id, event_id, pool, redis)
    assert shell is not None
    hold = hold_id_for(event_id, "f" * 20)
    sale = await sold_through(shell, Hold(hold, hold, "b1", seats=("A-1-1", "A-1-2")))

    shell._pool = UnreachablePool()  # type: ignore[assignment]
    with pytest.raises(InventoryLost):
        await apply(shell, CancelTickets("t1", hold, (sale.tickets[0].ticket_id,)))
    with pytest.raises(InventoryLost):
        await apply(shell, LookupHold("l1", hold))  # given up: rebuilt on the next call

    rebuilt = await EventInventory.recover(org_id, event_id, pool, redis)
    assert rebuilt is not None and rebuilt.inventory.snapshot().sales == (sale,)
    assert await ticket_statuses(pool, org_id, sale.sale_id) == {t.ticket_id: "live" for t in sale.tickets}
    [given_back] = await apply(rebuilt, CancelTickets("t1", hold, (sale.tickets[0].ticket_id,)))
    assert given_back == Ok(SaleView(sale.sale_id, hold, "b1", "order-1", sale.tickets[1:]))
    await pool.close()
    await redis.aclose()


def test_served_event_members_carry_the_org() -> None:
    member = redis_keys.served_event_member("org_" + "a" * 32, "evt_" + "b" * 32)
    assert redis_keys.parse_served_event_member(member) == ("org_" + "a" * 32, "evt_" + "b" * 32)
    assert redis_keys.parse_served_event_member("evt_" + "b" * 32) is None  # an older member without its org
