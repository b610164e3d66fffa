"""Focused examples of the inventory core's rules (engine/inventory/machine.py)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from engine import limits
from engine.audit_chain import actor_id_chars_max, ip_chars_max
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
    Release,
    Result,
    SaleView,
    TicketView,
    actor_ref,
)
from engine.inventory.machine import InvariantViolation, Inventory, InventorySnapshot, InventorySpec

EVENT_ID = "evt_" + "ab" * 16
SEATS = tuple(f"A-1-{n}" for n in range(1, 11))
HOLD_TTL_S = 60
NOW = 10_000.0
# who confirms, as the gateway names a caller (engine.inventory.commands.actor_ref); the core only carries it
CONFIRMER = "key:key_test"

_numbers = itertools.count(1)


def spec(**overrides: object) -> InventorySpec:
    fields: dict[str, object] = {
        "event_id": EVENT_ID,
        "seat_ids": SEATS,
        "seated_type": "SEAT",
        "ga_capacity": (("GA", 5),),
        "hold_ttl_s": HOLD_TTL_S,
        "max_tickets_per_buyer": 4,
    }
    fields.update(overrides)
    return InventorySpec(**fields)  # type: ignore[arg-type]


def new_hold_id() -> str:
    return hold_id_for(EVENT_ID, f"{next(_numbers):020x}")


def cmd_id() -> str:
    return f"cmd-{next(_numbers)}"


def hold_seats(buyer: str, *seats: str, ttl_s: int | None = None, hold_id: str | None = None) -> Hold:
    return Hold(cmd_id(), hold_id or new_hold_id(), buyer, tuple(seats), ttl_s=ttl_s)


def hold_ga(buyer: str, quantity: int, ticket_type: str = "GA") -> Hold:
    return Hold(cmd_id(), new_hold_id(), buyer, (), ticket_type, quantity)


def one(inventory: Inventory, command: Command, now: float = NOW) -> Result:
    (result,) = inventory.apply([command], now)
    return result


def held(inventory: Inventory, command: Hold, now: float = NOW) -> HoldView:
    result = one(inventory, command, now)
    assert isinstance(result, Ok) and isinstance(result.value, HoldView), result
    return result.value


def sold(inventory: Inventory, hold_id: str, order_ref: str = "order-1", now: float = NOW) -> SaleView:
    result = one(inventory, Confirm(cmd_id(), hold_id, order_ref, CONFIRMER, None), now)
    assert isinstance(result, Ok) and isinstance(result.value, SaleView), result
    return result.value


def refused(result: Result, code: str) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.code == code, result
    return result


# ---- holds -----------------------------------------------------------------------------------------------------


def test_a_hold_is_all_or_nothing() -> None:
    inventory = Inventory(spec())
    held(inventory, hold_seats("b1", "A-1-2"))
    before = (inventory.seat_counts(), inventory.snapshot().holds)

    refusal = refused(one(inventory, hold_seats("b2", "A-1-1", "A-1-2", "A-1-3")), "seats_unavailable")

    assert refusal.details["seats"] == ["A-1-2"]
    assert (inventory.seat_counts(), inventory.snapshot().holds) == before
    assert [inventory.seat_state(i) for i in (0, 1, 2)] == [0, 1, 0]


def test_unknown_seats_are_listed_and_nothing_is_held() -> None:
    inventory = Inventory(spec())
    refusal = refused(one(inventory, hold_seats("b1", "A-1-1", "Z-9-9")), "unknown_seats")
    assert refusal.details["seats"] == ["Z-9-9"]
    assert inventory.seat_counts() == (len(SEATS), 0, 0)


def test_a_sold_seat_is_unavailable_too() -> None:
    inventory = Inventory(spec())
    sold(inventory, held(inventory, hold_seats("b1", "A-1-4")).hold_id)
    refusal = refused(one(inventory, hold_seats("b2", "A-1-4", "A-1-5")), "seats_unavailable")
    assert refusal.details["seats"] == ["A-1-4"]


@pytest.mark.parametrize(
    "command",
    [
        Hold("c", "h", "b1"),  # neither seats nor a quantity
        Hold("c", "h", "b1", ("A-1-1",), "GA", 1),  # both
        Hold("c", "h", "b1", ("A-1-1", "A-1-1")),  # a seat twice
        Hold("c", "h", "b1", (), "GA", 0),
        Hold("c", "h", "b1", (), "GA", -1),
        Hold("c", "h", "b1", (), "GA", limits.quantity_per_hold_max + 1),
        Hold("c", "h", "b1", tuple(f"S{n}" for n in range(limits.seats_per_hold_max + 1))),
    ],
)
def test_malformed_holds_are_refused(command: Hold) -> None:
    inventory = Inventory(spec(seat_ids=tuple(f"S{n}" for n in range(200)), max_tickets_per_buyer=100))
    refused(one(inventory, replace(command, hold_id=new_hold_id())), "invalid_hold_request")
    assert inventory.snapshot().holds == ()


def test_ga_holds_refuse_unknown_types_and_overselling() -> None:
    inventory = Inventory(spec())
    refused(one(inventory, hold_ga("b1", 1, "VIP")), "unknown_ticket_type")
    refused(one(inventory, hold_ga("b1", 1, "SEAT")), "unknown_ticket_type")  # the seated type is not GA
    held(inventory, hold_ga("b1", 3))
    refusal = refused(one(inventory, hold_ga("b2", 3)), "insufficient_inventory")
    assert refusal.details == {"ticket_type": "GA", "available": 2}
    held(inventory, hold_ga("b2", 2))
    assert inventory.ga_counts() == {"GA": (5, 0, 5, 0)}


# ---- TTL and expiry --------------------------------------------------------------------------------------------


def test_ttl_defaults_to_and_is_capped_by_the_events_hold_ttl() -> None:
    inventory = Inventory(spec())
    assert held(inventory, hold_seats("b1", "A-1-1")).expires_at == NOW + HOLD_TTL_S
    assert held(inventory, hold_seats("b1", "A-1-2", ttl_s=HOLD_TTL_S)).expires_at == NOW + HOLD_TTL_S
    assert held(inventory, hold_seats("b1", "A-1-3", ttl_s=1)).expires_at == NOW + 1
    for ttl_s in (HOLD_TTL_S + 1, 0, -5):
        refusal = refused(one(inventory, hold_seats("b2", "A-1-9", ttl_s=ttl_s)), "invalid_hold_request")
        assert refusal.details == {"field": "ttl_s"}
    assert inventory.seat_state(8) == 0


def test_an_expired_hold_cannot_be_confirmed_even_before_the_sweeper_ran() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    assert isinstance(one(inventory, LookupHold(cmd_id(), view.hold_id), NOW + 9.9), Ok)

    # No expire() call in between: the hold's own expires_at decides, at the boundary too.
    refused(one(inventory, Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None), NOW + 10), "hold_expired")

    assert inventory.seat_counts() == (len(SEATS), 0, 0)
    assert inventory.live_hold_ids() == []


def test_confirm_checks_expiry_itself_when_the_sweep_is_capped() -> None:
    """More holds are due than one batch sweeps: the unswept ones still cannot be confirmed."""
    due = limits.expire_batch_holds_max + 1
    inventory = Inventory(spec(seat_ids=(), seated_type=None, ga_capacity=(("GA", due),)))
    views = [held(inventory, hold_ga(f"b{n}", 1)) for n in range(due)]
    later = NOW + HOLD_TTL_S
    unswept = max(v.hold_id for v in views)  # the sweep goes in (expires_at, hold_id) order

    refused(one(inventory, Confirm(cmd_id(), unswept, "order-1", CONFIRMER, None), later), "hold_expired")

    assert inventory.ga_counts() == {"GA": (due, due, 0, 0)}
    inventory.check_invariants()


def test_expire_ends_due_holds_and_remembers_why() -> None:
    inventory = Inventory(spec())
    short = held(inventory, hold_seats("b1", "A-1-1", ttl_s=5))
    long = held(inventory, hold_seats("b1", "A-1-2", ttl_s=50))
    assert inventory.expire(NOW + 4.9) == []
    assert inventory.expire(NOW + 5) == [short.hold_id]
    assert inventory.live_hold_ids() == [long.hold_id]
    refused(one(inventory, LookupHold(cmd_id(), short.hold_id), NOW + 6), "hold_expired")
    refused(one(inventory, Release(cmd_id(), short.hold_id), NOW + 6), "hold_expired")


def test_expire_respects_its_cap() -> None:
    inventory = Inventory(spec())
    for seat in SEATS[:5]:
        held(inventory, hold_seats("b" + seat, seat, ttl_s=1))
    assert len(inventory.expire(NOW + 1, holds_max=2)) == 2
    assert inventory.seat_counts() == (len(SEATS) - 3, 3, 0)
    assert len(inventory.expire(NOW + 1)) == 3


# ---- confirm, release, cancel ----------------------------------------------------------------------------------


def test_confirm_makes_a_sale_with_one_ticket_per_seat_or_unit() -> None:
    inventory = Inventory(spec())
    seats = held(inventory, hold_seats("b1", "A-1-3", "A-1-1"))
    sale = sold(inventory, seats.hold_id, "order-9")
    suffix = seats.hold_id.removeprefix("hld_")
    assert sale == SaleView(
        f"sal_{suffix}", seats.hold_id, "b1", "order-9",
        (TicketView(f"tkt_{suffix}_1", "SEAT", "A-1-3", None), TicketView(f"tkt_{suffix}_2", "SEAT", "A-1-1", None)),
    )
    ga = held(inventory, hold_ga("b2", 2))
    assert [(t.ticket_type, t.seat_id, t.unit) for t in sold(inventory, ga.hold_id).tickets] == [
        ("GA", None, ga.units[0]), ("GA", None, ga.units[1])
    ]
    assert inventory.seat_counts() == (len(SEATS) - 2, 0, 2)
    assert inventory.ga_counts() == {"GA": (5, 3, 0, 2)}


def test_confirm_twice_same_order_ref_same_sale_other_order_ref_refused() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    first = sold(inventory, view.hold_id, "order-1")
    assert sold(inventory, view.hold_id, "order-1", NOW + 1) == first
    refusal = refused(one(inventory, Confirm(cmd_id(), view.hold_id, "order-2", CONFIRMER, None)), "invalid_transition")
    assert refusal.details == {"hold_id": view.hold_id}
    assert inventory.seat_counts() == (len(SEATS) - 1, 0, 1)


def test_a_sold_hold_stays_sold_past_its_expiry() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=1))
    first = sold(inventory, view.hold_id)
    assert inventory.expire(NOW + 100) == []
    assert sold(inventory, view.hold_id, now=NOW + 100) == first


def test_release_of_a_sold_hold_is_an_invalid_transition() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    sold(inventory, view.hold_id)
    refused(one(inventory, Release(cmd_id(), view.hold_id)), "invalid_transition")
    assert inventory.seat_state(0) == 2


def test_release_frees_at_once_and_a_released_hold_cannot_be_confirmed() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    assert one(inventory, Release(cmd_id(), view.hold_id)) == Ok(None)
    assert inventory.seat_state(0) == 0
    refused(one(inventory, Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None)), "invalid_transition")
    refused(one(inventory, Release(cmd_id(), new_hold_id())), "hold_not_found")
    held(inventory, hold_seats("b2", "A-1-1"))


def test_cancel_sale_frees_the_seats_and_units() -> None:
    inventory = Inventory(spec())
    seats = held(inventory, hold_seats("b1", "A-1-1"))
    ga = held(inventory, hold_ga("b1", 2))
    sale = sold(inventory, seats.hold_id)
    ga_sale = sold(inventory, ga.hold_id)
    inventory.drain_changes()  # the core cancels only sales that are written through

    assert one(inventory, CancelSale(cmd_id(), seats.hold_id)) == Ok(sale)
    assert one(inventory, CancelSale(cmd_id(), ga.hold_id)) == Ok(ga_sale)

    assert inventory.seat_counts() == (len(SEATS), 0, 0)
    assert inventory.ga_counts() == {"GA": (5, 5, 0, 0)}
    refused(one(inventory, CancelSale(cmd_id(), seats.hold_id)), "hold_not_found")
    changes = inventory.drain_changes()
    assert changes is not None and set(changes.sales_cancelled) == {seats.hold_id, ga.hold_id}


def test_cancel_sale_of_a_live_hold_is_not_found() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    refused(one(inventory, CancelSale(cmd_id(), view.hold_id)), "hold_not_found")
    assert inventory.seat_state(0) == 1


# ---- cancel tickets (a refund of some of a sale's tickets) -----------------------------------------------------


def cancel_tickets(hold_id: str, *ticket_ids: str) -> CancelTickets:
    return CancelTickets(cmd_id(), hold_id, ticket_ids)


def given_back(inventory: Inventory, command: CancelTickets) -> SaleView:
    result = one(inventory, command)
    assert isinstance(result, Ok) and isinstance(result.value, SaleView), result
    inventory.check_invariants()
    return result.value


def committed_sale(inventory: Inventory, hold: Hold) -> SaleView:
    sale = sold(inventory, held(inventory, hold).hold_id)
    inventory.drain_changes()  # the core cancels only sales that are written through
    return sale


def test_cancel_one_of_two_seat_tickets_frees_that_seat_only() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    first, second = sale.tickets

    assert given_back(inventory, cancel_tickets(sale.hold_id, first.ticket_id)) == replace(sale, tickets=(second,))

    assert [inventory.seat_state(i) for i in (0, 1)] == [0, 2]
    assert inventory.seat_counts() == (len(SEATS) - 1, 0, 1)
    assert inventory.seated_counts() == {"SEAT": (len(SEATS), len(SEATS) - 1, 0, 1)}
    assert inventory.availability_bitmap()[0] & 0x80 and not inventory.availability_bitmap()[0] & 0x40
    changes = inventory.drain_changes()
    assert changes is not None and changes.seats == {0: 0} and not changes.sales_cancelled
    assert changes.tickets_cancelled == {sale.hold_id: replace(sale, tickets=(first,))}
    held(inventory, hold_seats("b2", "A-1-1"))  # sellable again at once
    assert one(inventory, LookupHold(cmd_id(), sale.hold_id)) == Ok(
        HoldView(sale.hold_id, "b1", ("A-1-2",), "SEAT", 1, (), NOW + HOLD_TTL_S, "sold")
    )


def test_cancel_one_of_two_ga_tickets_frees_that_unit_only() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_ga("b1", 2))
    first, second = sale.tickets

    assert given_back(inventory, cancel_tickets(sale.hold_id, second.ticket_id)) == replace(sale, tickets=(first,))

    assert inventory.ga_counts() == {"GA": (5, 4, 0, 1)}
    changes = inventory.drain_changes()
    assert changes is not None and changes.ga_types == {"GA"} and set(changes.tickets_cancelled) == {sale.hold_id}
    # the freed unit is taken again first; the one still sold never is
    again = held(inventory, hold_ga("b2", 4))
    assert second.unit in again.units and first.unit not in again.units
    refused(one(inventory, hold_ga("b3", 1)), "insufficient_inventory")


def test_the_buyer_gets_room_back_for_the_tickets_given_back() -> None:
    inventory = Inventory(spec())  # max_tickets_per_buyer 4
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2", "A-1-3", "A-1-4"))
    refused(one(inventory, hold_ga("b1", 1)), "buyer_limit_exceeded")
    given_back(inventory, cancel_tickets(sale.hold_id, sale.tickets[0].ticket_id, sale.tickets[2].ticket_id))
    held(inventory, hold_ga("b1", 2))
    refused(one(inventory, hold_ga("b1", 1)), "buyer_limit_exceeded")


def test_a_retried_cancel_tickets_changes_nothing_and_answers_ok() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2", "A-1-3"))
    command = cancel_tickets(sale.hold_id, sale.tickets[0].ticket_id)
    first = given_back(inventory, command)
    inventory.drain_changes()
    counts = (inventory.seat_counts(), inventory.availability_bitmap())

    assert one(inventory, command) == Ok(first)  # the same cmd_id
    assert given_back(inventory, cancel_tickets(sale.hold_id, sale.tickets[0].ticket_id)) == first  # a new one
    assert (inventory.seat_counts(), inventory.availability_bitmap()) == counts
    assert inventory.drain_changes() is None
    # given back and still live together: only the live one goes
    rest = given_back(inventory, cancel_tickets(sale.hold_id, sale.tickets[0].ticket_id, sale.tickets[1].ticket_id))
    assert rest == replace(sale, tickets=(sale.tickets[2],))
    changes = inventory.drain_changes()
    assert changes is not None and changes.tickets_cancelled == {sale.hold_id: replace(sale, tickets=sale.tickets[1:2])}


def test_an_unknown_ticket_is_refused_and_nothing_changes() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    other = committed_sale(inventory, hold_ga("b2", 1))
    before = (inventory.snapshot(), inventory.seat_counts(), inventory.ga_counts())
    stranger = f"tkt_{sale.hold_id.removeprefix('hld_')}_3"  # the shape of this sale's ids, but never sold

    for ticket_ids in ((stranger,), (sale.tickets[0].ticket_id, other.tickets[0].ticket_id)):
        refusal = refused(one(inventory, cancel_tickets(sale.hold_id, *ticket_ids)), "ticket_not_found")
        assert refusal.details == {"hold_id": sale.hold_id, "ticket_ids": [ticket_ids[-1]]}

    assert (inventory.snapshot(), inventory.seat_counts(), inventory.ga_counts()) == before
    assert inventory.drain_changes() is None


@pytest.mark.parametrize("count", [0, limits.tickets_per_cancel_max + 1])
def test_cancel_tickets_bounds_how_many_it_names(count: int) -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1"))
    ticket_ids = [f"tkt_x_{n}" for n in range(count)]
    refusal = refused(one(inventory, cancel_tickets(sale.hold_id, *ticket_ids)), "invalid_hold_request")
    assert refusal.details == {"field": "ticket_ids"}


def test_cancel_tickets_refuses_a_ticket_named_twice() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    ticket_id = sale.tickets[0].ticket_id
    refused(one(inventory, cancel_tickets(sale.hold_id, ticket_id, ticket_id)), "invalid_hold_request")
    assert inventory.seat_counts() == (len(SEATS) - 2, 0, 2)


def test_the_last_ticket_ends_the_sale_as_cancel_sale_does() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    first, second = sale.tickets
    given_back(inventory, cancel_tickets(sale.hold_id, first.ticket_id))
    command = cancel_tickets(sale.hold_id, first.ticket_id, second.ticket_id)

    assert given_back(inventory, command) == replace(sale, tickets=())

    assert inventory.seat_counts() == (len(SEATS), 0, 0)
    changes = inventory.drain_changes()
    assert changes is not None and changes.sales_cancelled == {sale.hold_id: replace(sale, tickets=(second,))}
    assert changes.tickets_cancelled == {sale.hold_id: replace(sale, tickets=(first,))}  # written before the sale
    refused(one(inventory, LookupHold(cmd_id(), sale.hold_id)), "hold_not_found")
    refused(one(inventory, CancelSale(cmd_id(), sale.hold_id)), "hold_not_found")
    refused(one(inventory, cancel_tickets(sale.hold_id, second.ticket_id)), "hold_not_found")
    assert one(inventory, command) == Ok(replace(sale, tickets=()))  # its cmd_id keeps its answer
    refused(one(inventory, hold_seats("b1", "A-1-3", hold_id=sale.hold_id)), "invalid_hold_request")  # id is spent


def test_all_tickets_at_once_end_a_ga_sale() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_ga("b1", 3))
    assert given_back(inventory, cancel_tickets(sale.hold_id, *(t.ticket_id for t in sale.tickets))).tickets == ()
    assert inventory.ga_counts() == {"GA": (5, 5, 0, 0)}
    changes = inventory.drain_changes()
    assert changes is not None and changes.sales_cancelled == {sale.hold_id: sale} and not changes.tickets_cancelled


def test_cancel_sale_after_cancel_tickets_frees_only_what_is_left() -> None:
    inventory = Inventory(spec())
    sale = committed_sale(inventory, hold_ga("b1", 3))
    given_back(inventory, cancel_tickets(sale.hold_id, sale.tickets[1].ticket_id))
    held(inventory, hold_ga("b2", 1))  # takes the freed unit
    inventory.drain_changes()

    rest = replace(sale, tickets=(sale.tickets[0], sale.tickets[2]))
    assert one(inventory, CancelSale(cmd_id(), sale.hold_id)) == Ok(rest)

    assert inventory.ga_counts() == {"GA": (5, 4, 1, 0)}
    changes = inventory.drain_changes()
    assert changes is not None and changes.sales_cancelled == {sale.hold_id: rest}
    inventory.check_invariants()


def test_cancel_tickets_of_an_uncommitted_sale_is_an_invalid_transition() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    sale = sold(inventory, view.hold_id)  # not drained: its commit is still to come
    refusal = refused(one(inventory, cancel_tickets(view.hold_id, sale.tickets[0].ticket_id)), "invalid_transition")
    assert refusal.details == {"hold_id": view.hold_id}
    assert inventory.seat_counts() == (len(SEATS) - 2, 0, 2)
    changes = inventory.drain_changes()
    assert changes is not None and not changes.tickets_cancelled


def test_cancel_tickets_of_no_sale_is_not_found() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    ticket_id = f"tkt_{view.hold_id.removeprefix('hld_')}_1"
    refused(one(inventory, cancel_tickets(view.hold_id, ticket_id)), "hold_not_found")
    refused(one(inventory, cancel_tickets(new_hold_id(), ticket_id)), "hold_not_found")
    assert inventory.seat_state(0) == 1


def test_a_sale_restores_with_its_live_tickets_and_remembers_those_given_back() -> None:
    inventory = Inventory(spec())
    seats = committed_sale(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    ga = committed_sale(inventory, hold_ga("b2", 3))
    given_back(inventory, cancel_tickets(seats.hold_id, seats.tickets[0].ticket_id))
    given_back(inventory, cancel_tickets(ga.hold_id, ga.tickets[2].ticket_id))  # the highest unit
    inventory.drain_changes()
    snapshot = inventory.snapshot()
    assert snapshot.tickets_cancelled == ((seats.hold_id, seats.tickets[0].ticket_id),
                                          (ga.hold_id, ga.tickets[2].ticket_id))

    restored = Inventory.restore(spec(), snapshot, NOW + 1)

    assert restored.snapshot() == snapshot
    assert (restored.seat_counts(), restored.ga_counts()) == (inventory.seat_counts(), inventory.ga_counts())
    assert restored.availability_bitmap() == inventory.availability_bitmap()
    # a retry after the rebuild is still skipped, a ticket never sold still refused
    assert given_back(restored, cancel_tickets(seats.hold_id, seats.tickets[0].ticket_id)).tickets == seats.tickets[1:]
    refused(one(restored, cancel_tickets(seats.hold_id, seats.tickets[0].ticket_id[:-1] + "3")), "ticket_not_found")
    held(restored, hold_ga("b3", 3))  # the freed unit is free again, below the capacity


def test_restore_refuses_a_ticket_given_back_by_no_sale() -> None:
    sale = seat_sale(new_hold_id(), "b1", "A-1-1")
    stray = InventorySnapshot(0, (), (sale,), ((new_hold_id(), "tkt_x_1"),))
    with pytest.raises(InvariantViolation):
        Inventory.restore(spec(), stray, NOW)
    both = InventorySnapshot(0, (), (sale,), ((sale.hold_id, sale.tickets[0].ticket_id),))
    with pytest.raises(InvariantViolation):
        Inventory.restore(spec(), both, NOW)


# ---- extend (checkout's payment window) ------------------------------------------------------------------------


def extended(inventory: Inventory, hold_id: str, ttl_s: int, now: float = NOW) -> HoldView:
    result = one(inventory, ExtendHold(cmd_id(), hold_id, ttl_s), now)
    assert isinstance(result, Ok) and isinstance(result.value, HoldView), result
    return result.value


def test_extend_pushes_the_expiry_out_and_writes_it_through() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    inventory.drain_changes()

    moved = extended(inventory, view.hold_id, limits.payment_window_s_max, NOW + 5)

    assert moved == replace(view, expires_at=NOW + 5 + limits.payment_window_s_max)
    assert limits.payment_window_s_max > HOLD_TTL_S  # the payment window is not bound by the event's hold_ttl_s
    assert one(inventory, LookupHold(cmd_id(), view.hold_id), NOW + 5) == Ok(moved)
    changes = inventory.drain_changes()
    assert changes is not None and changes.holds_put == {view.hold_id: moved} and not changes.holds_removed
    assert changes.seats == {} and changes.ga_types == set()  # nothing else moved
    inventory.check_invariants()


def test_an_extension_never_shortens_a_hold() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=50))
    inventory.drain_changes()
    assert extended(inventory, view.hold_id, 10, NOW + 1) == view  # now + 10 is before its expiry: kept
    assert extended(inventory, view.hold_id, 49, NOW + 1) == view  # exactly its expiry: kept
    assert inventory.drain_changes() is None  # nothing changed, nothing to write through


def test_the_hold_expires_at_its_new_time_not_the_old_one() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    other = held(inventory, hold_seats("b2", "A-1-2", ttl_s=10))
    extended(inventory, view.hold_id, 100, NOW + 1)

    assert inventory.expire(NOW + 10) == [other.hold_id]  # the old time passes: only the unextended hold ends
    assert inventory.live_hold_ids() == [view.hold_id]
    assert isinstance(one(inventory, Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None), NOW + 50), Ok)

    again = held(inventory, hold_seats("b3", "A-1-3", ttl_s=10))
    extended(inventory, again.hold_id, 20, NOW + 5)
    assert inventory.expire(NOW + 24.9) == []
    assert inventory.expire(NOW + 25) == [again.hold_id]
    refused(one(inventory, LookupHold(cmd_id(), again.hold_id), NOW + 25), "hold_expired")
    inventory.check_invariants()


def test_the_sweep_in_apply_also_honours_the_new_time() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    extended(inventory, view.hold_id, 60)
    assert inventory.apply([], NOW + 30) == [] and inventory.live_hold_ids() == [view.hold_id]
    refused(one(inventory, hold_seats("b2", "A-1-1"), NOW + 30), "seats_unavailable")


def test_extend_refuses_as_release_does() -> None:
    inventory = Inventory(spec())
    refused(one(inventory, ExtendHold(cmd_id(), new_hold_id(), 60)), "hold_not_found")

    due = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    # no sweep in between: the hold's own expires_at decides, at the boundary too, and the hold ends
    refused(one(inventory, ExtendHold(cmd_id(), due.hold_id, 60), NOW + 10), "hold_expired")
    assert inventory.seat_state(0) == 0 and inventory.live_hold_ids() == []
    refused(one(inventory, ExtendHold(cmd_id(), due.hold_id, 60), NOW + 11), "hold_expired")

    gone = held(inventory, hold_seats("b1", "A-1-2"))
    one(inventory, Release(cmd_id(), gone.hold_id))
    refused(one(inventory, ExtendHold(cmd_id(), gone.hold_id, 60)), "invalid_transition")

    paid = held(inventory, hold_seats("b1", "A-1-3"))
    sold(inventory, paid.hold_id)
    refused(one(inventory, ExtendHold(cmd_id(), paid.hold_id, 60)), "invalid_transition")
    inventory.drain_changes()
    one(inventory, CancelSale(cmd_id(), paid.hold_id))
    refused(one(inventory, ExtendHold(cmd_id(), paid.hold_id, 60)), "hold_not_found")


@pytest.mark.parametrize("ttl_s", [0, -1, limits.payment_window_s_max + 1])
def test_extend_bounds_its_ttl_by_the_payment_window(ttl_s: int) -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    refusal = refused(one(inventory, ExtendHold(cmd_id(), view.hold_id, ttl_s)), "invalid_hold_request")
    assert refusal.details == {"field": "ttl_s"}
    assert inventory.snapshot().holds == (view,)


def test_a_replayed_extend_answers_the_recorded_answer() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    command = ExtendHold(cmd_id(), view.hold_id, 60)
    first = one(inventory, command, NOW + 1)
    assert isinstance(first, Ok) and isinstance(first.value, HoldView) and first.value.expires_at == NOW + 61
    inventory.drain_changes()

    assert one(inventory, command, NOW + 30) == first  # not now + 30 + 60: the replay changes nothing
    assert inventory.snapshot().holds == (first.value,)
    assert inventory.drain_changes() is None
    one(inventory, Release(cmd_id(), view.hold_id), NOW + 30)
    assert one(inventory, command, NOW + 31) == first  # still the recorded answer, after the hold ended


def test_an_extended_hold_restores_with_its_new_expiry() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    moved = extended(inventory, view.hold_id, 100)
    restored = Inventory.restore(spec(), inventory.snapshot(), NOW + 50)
    assert restored.snapshot().holds == (moved,)
    assert restored.expire(NOW + 99.9) == [] and restored.expire(NOW + 100) == [view.hold_id]


def test_an_extend_that_relied_on_an_aborted_sale_is_forgotten() -> None:
    """Refused because the hold was (pending) sold: the abort forgets that answer, so a retry extends."""
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=10))
    inventory.drain_changes()
    command = ExtendHold(cmd_id(), view.hold_id, 60)
    confirm = Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None)
    _, refusal = inventory.apply([confirm, command], NOW)
    refused(refusal, "invalid_transition")

    inventory.abort_sales([view.hold_id])

    assert one(inventory, command) == Ok(replace(view, expires_at=NOW + 60))
    inventory.check_invariants()


# ---- buyer cap -------------------------------------------------------------------------------------------------


def test_the_buyer_cap_counts_holds_and_sales_together() -> None:
    inventory = Inventory(spec(max_tickets_per_buyer=3))
    bought = held(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    sold(inventory, bought.hold_id)
    ga = held(inventory, hold_ga("b1", 1))

    refusal = refused(one(inventory, hold_seats("b1", "A-1-3")), "buyer_limit_exceeded")
    assert refusal.details == {"max_tickets_per_buyer": 3, "held_or_bought": 3, "requested": 1}
    refused(one(inventory, hold_ga("b1", 1)), "buyer_limit_exceeded")
    held(inventory, hold_ga("b2", 3))  # other buyers are not affected

    one(inventory, Release(cmd_id(), ga.hold_id))
    held(inventory, hold_seats("b1", "A-1-3"))  # room again once a hold ends
    refused(one(inventory, hold_seats("b1", "A-1-4")), "buyer_limit_exceeded")


def test_a_single_hold_over_the_cap_is_refused() -> None:
    inventory = Inventory(spec(max_tickets_per_buyer=2))
    refused(one(inventory, hold_seats("b1", "A-1-1", "A-1-2", "A-1-3")), "buyer_limit_exceeded")
    refused(one(inventory, hold_ga("b1", 3)), "buyer_limit_exceeded")
    assert inventory.seat_counts() == (len(SEATS), 0, 0)


# ---- GA unit numbering -----------------------------------------------------------------------------------------


def test_ga_units_reuse_freed_numbers_and_never_pass_capacity() -> None:
    inventory = Inventory(spec(max_tickets_per_buyer=100))
    first = held(inventory, hold_ga("b1", 3))
    second = held(inventory, hold_ga("b1", 2))
    assert sorted(first.units + second.units) == [1, 2, 3, 4, 5]
    refused(one(inventory, hold_ga("b1", 1)), "insufficient_inventory")

    one(inventory, Release(cmd_id(), first.hold_id))
    third = held(inventory, hold_ga("b1", 3))
    assert sorted(third.units) == sorted(first.units)

    for _ in range(20):  # churn: release and re-hold, numbers stay within 1..capacity
        one(inventory, Release(cmd_id(), third.hold_id))
        third = held(inventory, hold_ga("b1", 2))
        one(inventory, Release(cmd_id(), third.hold_id))
        third = held(inventory, hold_ga("b1", 3))
        assert set(third.units).isdisjoint(second.units)
        assert all(1 <= unit <= 5 for unit in third.units)
    inventory.check_invariants()


# ---- idempotency and batches -----------------------------------------------------------------------------------


def test_a_repeated_cmd_id_gets_the_first_answer_and_changes_nothing() -> None:
    inventory = Inventory(spec())
    command = hold_seats("b1", "A-1-1")
    first = one(inventory, command)
    one(inventory, Release(cmd_id(), command.hold_id))
    assert one(inventory, command) == first
    assert inventory.seat_counts() == (len(SEATS), 0, 0)
    # Even a different command under a used cmd_id is answered from the record, never applied.
    assert one(inventory, replace(hold_seats("b2", "A-1-5"), cmd_id=command.cmd_id)) == first
    assert inventory.seat_state(4) == 0


def test_the_same_cmd_id_twice_in_one_batch_applies_once() -> None:
    inventory = Inventory(spec())
    command = hold_ga("b1", 2)
    first, second = inventory.apply([command, command], NOW)
    assert first == second
    assert inventory.ga_counts() == {"GA": (5, 3, 2, 0)}


def test_a_hold_id_already_held_answers_that_hold() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    assert held(inventory, hold_seats("b1", "A-1-2", hold_id=view.hold_id)) == view
    refused(one(inventory, hold_seats("b2", "A-1-2", hold_id=view.hold_id)), "invalid_hold_request")
    assert inventory.seat_state(1) == 0


def test_lookups_are_never_recorded() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=5))
    lookup = LookupHold(cmd_id(), view.hold_id)
    assert one(inventory, lookup) == Ok(view)
    refused(one(inventory, lookup, NOW + 5), "hold_expired")


def test_a_batch_over_the_limit_is_refused_whole() -> None:
    inventory = Inventory(spec())
    due = held(inventory, hold_seats("b1", "A-1-1", ttl_s=1))
    inventory.drain_changes()
    batch = [hold_seats("b2", "A-1-2")] * limits.batch_commands_max + [hold_seats("b3", "A-1-3")]

    results = inventory.apply(batch, NOW + 10)

    assert len(results) == len(batch)
    assert {r.code for r in results if isinstance(r, Rejected)} == {"batch_too_large"}
    assert all(isinstance(r, Rejected) for r in results)
    assert inventory.live_hold_ids() == [due.hold_id]  # not even the expiry sweep ran
    assert inventory.drain_changes() is None


def test_a_batch_at_the_limit_is_applied() -> None:
    inventory = Inventory(spec())
    batch = [LookupHold(cmd_id(), new_hold_id()) for _ in range(limits.batch_commands_max - 1)]
    results = inventory.apply([*batch, hold_ga("b1", 1)], NOW)
    assert isinstance(results[-1], Ok)


# ---- drain and abort -------------------------------------------------------------------------------------------


def test_drain_versions_increase_and_report_what_changed() -> None:
    inventory = Inventory(spec(), version=7)
    assert inventory.drain_changes() is None
    view = held(inventory, hold_seats("b1", "A-1-2"))
    ga = held(inventory, hold_ga("b1", 1))
    changes = inventory.drain_changes()
    assert changes is not None and changes.version == 8 == inventory.version
    assert changes.seats == {1: 1}
    assert changes.holds_put == {view.hold_id: view, ga.hold_id: ga}
    assert changes.ga_types == {"GA"}

    sale, ga_sale = sold(inventory, view.hold_id), sold(inventory, ga.hold_id)
    changes = inventory.drain_changes()
    assert changes is not None and changes.version == 9
    assert changes.sales == {view.hold_id: sale, ga.hold_id: ga_sale}
    assert changes.holds_removed == {view.hold_id, ga.hold_id} and changes.holds_put == {}
    assert changes.seats == {1: 2}
    assert changes.ga_types == {"GA"}  # the GA counts moved from held to sold
    assert inventory.drain_changes() is None


def test_abort_sales_puts_holds_back_as_they_were() -> None:
    inventory = Inventory(spec())
    seats = held(inventory, hold_seats("b1", "A-1-1", "A-1-2"))
    ga = held(inventory, hold_ga("b2", 2))
    inventory.drain_changes()
    before = (inventory.snapshot(), inventory.seat_counts(), inventory.ga_counts())
    confirm = Confirm(cmd_id(), seats.hold_id, "order-1", CONFIRMER, None)
    inventory.apply([confirm, Confirm(cmd_id(), ga.hold_id, "order-2", CONFIRMER, None)], NOW + 1)

    inventory.abort_sales([seats.hold_id, ga.hold_id])

    assert (inventory.snapshot(), inventory.seat_counts(), inventory.ga_counts()) == before
    changes = inventory.drain_changes()
    assert changes is not None and changes.sales == {}
    assert changes.holds_put == {seats.hold_id: seats, ga.hold_id: ga}
    assert isinstance(one(inventory, confirm, NOW + 2), Ok)  # the retried confirm runs again
    assert inventory.seat_counts() == (len(SEATS) - 2, 0, 2)


def test_abort_sales_forgets_every_answer_that_relied_on_the_sale() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    again = Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None)
    release = Release(cmd_id(), view.hold_id)
    inventory.apply([Confirm(cmd_id(), view.hold_id, "order-1", CONFIRMER, None), again, release], NOW)
    inventory.abort_sales([view.hold_id])

    # Were the second confirm's Ok(sale) replayed, a buyer would hold a receipt for a sale that never committed.
    assert one(inventory, release) == Ok(None)
    refused(one(inventory, again), "invalid_transition")
    assert inventory.seat_counts() == (len(SEATS), 0, 0)


def test_a_hold_put_back_by_abort_sales_still_expires() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1", ttl_s=5))
    sold(inventory, view.hold_id)
    assert inventory.expire(NOW + 10) == []  # the sweeper runs while the commit is in flight
    inventory.abort_sales([view.hold_id])
    assert inventory.expire(NOW + 10) == [view.hold_id]
    assert inventory.seat_counts() == (len(SEATS), 0, 0)


def test_abort_sales_refuses_a_hold_without_a_pending_sale() -> None:
    inventory = Inventory(spec())
    view = held(inventory, hold_seats("b1", "A-1-1"))
    with pytest.raises(InvariantViolation):
        inventory.abort_sales([view.hold_id])
    sold(inventory, view.hold_id)
    inventory.drain_changes()
    with pytest.raises(InvariantViolation):  # already written through: too late to abort
        inventory.abort_sales([view.hold_id])


# ---- restore ---------------------------------------------------------------------------------------------------


def seat_sale(hold_id: str, buyer: str, *seats: str) -> SaleView:
    suffix = hold_id.removeprefix("hld_")
    tickets = tuple(TicketView(f"tkt_{suffix}_{n}", "SEAT", s, None) for n, s in enumerate(seats, 1))
    return SaleView(f"sal_{suffix}", hold_id, buyer, "order-1", tickets)


def ga_sale(hold_id: str, buyer: str, *units: int) -> SaleView:
    suffix = hold_id.removeprefix("hld_")
    tickets = tuple(TicketView(f"tkt_{suffix}_{n}", "GA", None, u) for n, u in enumerate(units, 1))
    return SaleView(f"sal_{suffix}", hold_id, buyer, "order-1", tickets)


def seat_hold(hold_id: str, buyer: str, *seats: str, expires_at: float = NOW + 30) -> HoldView:
    return HoldView(hold_id, buyer, seats, "SEAT", len(seats), (), expires_at, "held")


def ga_hold(hold_id: str, buyer: str, *units: int, expires_at: float = NOW + 30) -> HoldView:
    return HoldView(hold_id, buyer, (), "GA", len(units), units, expires_at, "held")


def test_restore_round_trips_a_snapshot() -> None:
    inventory = Inventory(spec())
    held(inventory, hold_seats("b1", "A-1-1"))
    sold(inventory, held(inventory, hold_seats("b2", "A-1-2")).hold_id)
    ga = held(inventory, hold_ga("b3", 2))
    sold(inventory, held(inventory, hold_ga("b3", 1)).hold_id)
    one(inventory, Release(cmd_id(), ga.hold_id))
    held(inventory, hold_ga("b1", 2))
    inventory.drain_changes()

    restored = Inventory.restore(spec(), inventory.snapshot(), NOW + 1)

    assert restored.snapshot() == inventory.snapshot()
    assert restored.version == inventory.version
    assert restored.ga_counts() == inventory.ga_counts()
    assert restored.availability_bitmap() == inventory.availability_bitmap()
    changes = restored.drain_changes()
    assert changes is not None and changes.full and changes.version == inventory.version + 1
    # Freed unit numbers are reused after a restore as before it: 5 units, all reachable.
    held(restored, hold_ga("b2", 2))
    refused(one(restored, hold_ga("b2", 1)), "insufficient_inventory")
    restored.check_invariants()


def test_restore_drops_expired_holds_and_a_late_confirm_answers_expired() -> None:
    live = seat_hold(new_hold_id(), "b1", "A-1-1", expires_at=NOW + 1)
    expired = seat_hold(new_hold_id(), "b2", "A-1-2", expires_at=NOW)
    restored = Inventory.restore(spec(), InventorySnapshot(3, (live, expired), ()), NOW)
    assert restored.live_hold_ids() == [live.hold_id]
    assert restored.seat_counts() == (len(SEATS) - 1, 1, 0)
    refused(one(restored, Confirm(cmd_id(), expired.hold_id, "order-1", CONFIRMER, None)), "hold_expired")
    changes = restored.drain_changes()
    assert changes is not None and changes.holds_removed == {expired.hold_id}


def test_restore_drops_a_hold_whose_hold_id_has_a_sale() -> None:
    hold_id = new_hold_id()
    sale = seat_sale(hold_id, "b1", "A-1-1")
    snapshot = InventorySnapshot(5, (seat_hold(hold_id, "b1", "A-1-1"),), (sale,))
    restored = Inventory.restore(spec(), snapshot, NOW)
    assert restored.live_hold_ids() == []
    assert restored.snapshot().sales == (sale,)
    assert restored.seat_counts() == (len(SEATS) - 1, 0, 1)
    assert one(restored, Confirm(cmd_id(), hold_id, "order-1", CONFIRMER, None)) == Ok(sale)
    changes = restored.drain_changes()
    assert changes is not None and changes.holds_removed == {hold_id}


@pytest.mark.parametrize(
    "holds, sales",
    [
        pytest.param((), ("seat", "seat"), id="a seat in two sales"),
        pytest.param(("seat", "seat"), (), id="a seat in two holds"),
        pytest.param(("unit6",), (), id="a held unit above capacity"),
        pytest.param((), ("unit6",), id="a sold unit above capacity"),
        pytest.param(("unknown-seat",), (), id="an unknown seat"),
    ],
)
def test_restore_refuses_a_corrupted_snapshot_loudly(holds: tuple[str, ...], sales: tuple[str, ...]) -> None:
    def hold_of(kind: str) -> HoldView:
        if kind == "seat":
            return seat_hold(new_hold_id(), "b1", "A-1-1")
        if kind == "unknown-seat":
            return seat_hold(new_hold_id(), "b1", "Z-9-9")
        return ga_hold(new_hold_id(), "b1", int(kind.removeprefix("unit")))

    def sale_of(kind: str) -> SaleView:
        if kind == "seat":
            return seat_sale(new_hold_id(), "b2", "A-1-1")
        return ga_sale(new_hold_id(), "b2", int(kind.removeprefix("unit")))

    snapshot = InventorySnapshot(1, tuple(map(hold_of, holds)), tuple(map(sale_of, sales)))
    with pytest.raises(InvariantViolation):
        Inventory.restore(spec(), snapshot, NOW)


def test_restore_drops_a_stale_hold_on_what_a_sale_took() -> None:
    """Redis can come back older than Postgres: a hold on a sold seat or unit ended before that sale."""
    stale_seat, stale_unit = seat_hold(new_hold_id(), "b1", "A-1-1"), ga_hold(new_hold_id(), "b1", 1)
    sales = (seat_sale(new_hold_id(), "b2", "A-1-1"), ga_sale(new_hold_id(), "b2", 1))
    inventory = Inventory.restore(spec(), InventorySnapshot(1, (stale_seat, stale_unit), sales), NOW)
    assert inventory.live_hold_ids() == []
    changes = inventory.drain_changes()
    assert changes is not None and changes.holds_removed == {stale_seat.hold_id, stale_unit.hold_id}
    [answer] = inventory.apply([Confirm("c", stale_seat.hold_id, "o", CONFIRMER, None)], NOW)
    assert isinstance(answer, Rejected) and answer.code == "hold_expired"


def test_restore_refuses_a_buyer_over_the_cap() -> None:
    sales = tuple(seat_sale(new_hold_id(), "b1", seat) for seat in SEATS[:5])
    with pytest.raises(InvariantViolation):
        Inventory.restore(spec(max_tickets_per_buyer=4), InventorySnapshot(1, (), sales), NOW)


# ---- availability bitmap ---------------------------------------------------------------------------------------


def test_availability_bitmap_is_msb_first() -> None:
    inventory = Inventory(spec())  # 10 seats: two bytes, the last six bits padding
    assert inventory.availability_bitmap() == bytes([0b11111111, 0b11000000])
    held(inventory, hold_seats("b1", "A-1-1"))
    sold(inventory, held(inventory, hold_seats("b1", "A-1-10")).hold_id)
    assert inventory.availability_bitmap() == bytes([0b01111111, 0b10000000])


def test_availability_bitmap_edges() -> None:
    assert Inventory(spec(seat_ids=(), seated_type=None)).availability_bitmap() == b""
    eight = Inventory(spec(seat_ids=SEATS[:8]))
    held(eight, hold_seats("b1", "A-1-8"))
    assert eight.availability_bitmap() == bytes([0b11111110])
    big = Inventory(spec(seat_ids=tuple(f"S{n}" for n in range(limits.seats_per_event_max))))
    held(big, hold_seats("b1", f"S{limits.seats_per_event_max - 1}"))
    bitmap = big.availability_bitmap()
    assert len(bitmap) == limits.seats_per_event_max // 8
    assert bitmap[:-1] == b"\xff" * (len(bitmap) - 1) and bitmap[-1] == 0b11111110


# ---- InventorySpec ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"seat_ids": ("A-1-1", "A-1-1")}, id="duplicate seats"),
        pytest.param({"seated_type": None}, id="seats without a seated type"),
        pytest.param({"seat_ids": ()}, id="a seated type without seats"),
        pytest.param({"ga_capacity": (("GA", 5), ("GA", 6))}, id="duplicate GA codes"),
        pytest.param({"ga_capacity": (("SEAT", 5),)}, id="GA code equal to the seated type"),
        pytest.param({"ga_capacity": (("GA", -1),)}, id="negative capacity"),
        pytest.param({"ga_capacity": (("GA", limits.ga_capacity_max + 1),)}, id="capacity over the max"),
        pytest.param({"hold_ttl_s": limits.hold_ttl_s_min - 1}, id="ttl under the min"),
        pytest.param({"hold_ttl_s": limits.hold_ttl_s_max + 1}, id="ttl over the max"),
        pytest.param({"max_tickets_per_buyer": 0}, id="buyer cap zero"),
        pytest.param({"max_tickets_per_buyer": limits.max_tickets_per_buyer_max + 1}, id="buyer cap over max"),
        pytest.param(
            {"seat_ids": tuple(f"S{n}" for n in range(limits.seats_per_event_max + 1))}, id="too many seats"
        ),
    ],
)
def test_inventory_spec_rejects_bad_shapes(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        spec(**overrides)


def test_inventory_spec_accepts_the_limits() -> None:
    spec(hold_ttl_s=limits.hold_ttl_s_max, max_tickets_per_buyer=limits.max_tickets_per_buyer_max,
         ga_capacity=(("GA", limits.ga_capacity_max), ("FREE", 0)))
    spec(seat_ids=(), seated_type=None, hold_ttl_s=limits.hold_ttl_s_min)


@pytest.mark.parametrize(
    ("by", "ip"),
    [
        ("key_abc", None),  # no actor type
        ("robot:abc", None),  # not an audit actor type
        ("key:", None),  # no id
        ("key:" + "x" * (actor_id_chars_max + 1), None),
        ("user:usr_a\x00", None),  # Postgres text refuses NUL
        ("key:key_abc", "1" * (ip_chars_max + 1)),
    ],
)
def test_a_confirm_with_a_malformed_actor_is_refused_where_it_is_built(by: str, ip: str | None) -> None:
    """Not in a later group commit, whose audit append would then fail for every sale of the batch."""
    with pytest.raises(ValueError, match="audit"):
        Confirm(cmd_id(), "hld_x", "order-1", by, ip)


def test_who_confirmed_does_not_change_the_sale() -> None:
    """The core only carries the confirming actor (for the shell's audit entry); the sale is the same."""
    sales = []
    for by, ip in ((CONFIRMER, None), (actor_ref("user", "usr_" + "a" * 32), "2001:db8::1")):
        inventory = Inventory(spec())
        view = held(inventory, hold_seats("b1", "A-1-1", hold_id=hold_id_for(EVENT_ID, "1" * 20)))
        sales.append(one(inventory, Confirm(cmd_id(), view.hold_id, "order-1", by, ip)))
    assert sales[0] == sales[1] and isinstance(sales[0], Ok)
