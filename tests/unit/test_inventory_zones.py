"""engine/inventory/machine.py with several seated ticket types (an event on a layout's zones) and blocked seats:
a blocked seat is never available, held or sold; each seated type's counts follow its own seats; a ticket is its
seat's type; the availability and sold bitmaps agree with the seat states."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ids import hold_id_for
from engine.inventory.commands import Command, Confirm, Hold, HoldView, Ok, Rejected, Release, SaleView
from engine.inventory.machine import (
    SEAT_AVAILABLE,
    SEAT_BLOCKED,
    SEAT_SOLD,
    Inventory,
    InventorySnapshot,
    InventorySpec,
)
from engine.refusals import Refusal

EVENT = "evt_" + "a" * 32
SEATS = tuple(f"A-1-{n}" for n in range(1, 9))
TYPES: tuple[str | None, ...] = ("FLOOR", "FLOOR", "FLOOR", None, "BALC", "BALC", None, "FLOOR")


def _spec(types: tuple[str | None, ...] = TYPES) -> InventorySpec:
    return InventorySpec(EVENT, SEATS, "FLOOR", (("GA", 5),), 600, 8, types)


def _hold_id(n: int) -> str:
    return hold_id_for(EVENT, f"{n:020x}")


def _bits(bitmap: bytes, count: int) -> list[int]:
    return [(bitmap[i // 8] >> (7 - i % 8)) & 1 for i in range(count)]


def test_blocked_seats_are_never_available() -> None:
    inventory = Inventory(_spec())
    assert [inventory.seat_state(i) for i in (3, 6)] == [SEAT_BLOCKED, SEAT_BLOCKED]
    assert inventory.seat_counts() == (6, 0, 0)
    assert _bits(inventory.availability_bitmap(), 8) == [1, 1, 1, 0, 1, 1, 0, 1]
    [refused] = inventory.apply([Hold("c1", _hold_id(1), "b", seats=("A-1-4", "A-1-1"))], 0.0)
    assert isinstance(refused, Rejected) and refused.code == Refusal.SEATS_UNAVAILABLE
    assert refused.details == {"seats": ["A-1-4"]}
    assert inventory.seated_counts() == {"FLOOR": (4, 4, 0, 0), "BALC": (2, 2, 0, 0)}


def test_each_ticket_is_its_seats_type_and_each_type_counts_its_own_seats() -> None:
    inventory = Inventory(_spec())
    hold_id = _hold_id(1)
    [held] = inventory.apply([Hold("c1", hold_id, "b", seats=("A-1-5", "A-1-1"))], 0.0)
    assert isinstance(held, Ok) and isinstance(held.value, HoldView) and held.value.ticket_type == "BALC"
    assert inventory.seated_counts() == {"FLOOR": (4, 3, 1, 0), "BALC": (2, 1, 1, 0)}
    [sold] = inventory.apply([Confirm("c2", hold_id, "order-1", "key:k", None)], 1.0)
    assert isinstance(sold, Ok) and isinstance(sold.value, SaleView)
    assert [(t.seat_id, t.ticket_type) for t in sold.value.tickets] == [("A-1-5", "BALC"), ("A-1-1", "FLOOR")]
    assert inventory.seated_counts() == {"FLOOR": (4, 3, 0, 1), "BALC": (2, 1, 0, 1)}
    assert _bits(inventory.sold_bitmap(), 8) == [1, 0, 0, 0, 1, 0, 0, 0]
    inventory.check_invariants()


def test_a_restore_rebuilds_the_blocked_seats_and_the_type_counts() -> None:
    inventory = Inventory(_spec())
    inventory.apply([Hold("c1", _hold_id(1), "b", seats=("A-1-2",)), Hold("c2", _hold_id(2), "c", seats=("A-1-6",))], 0)
    inventory.apply([Confirm("c3", _hold_id(2), "o", "key:k", None)], 1.0)
    snapshot = inventory.snapshot()
    restored = Inventory.restore(_spec(), InventorySnapshot(snapshot.version, snapshot.holds, snapshot.sales), 2.0)
    assert restored.seated_counts() == inventory.seated_counts() == {"FLOOR": (4, 3, 1, 0), "BALC": (2, 1, 0, 1)}
    assert restored.availability_bitmap() == inventory.availability_bitmap()
    assert restored.sold_bitmap() == inventory.sold_bitmap()


def test_one_seated_type_without_seat_types_is_as_before() -> None:
    inventory = Inventory(InventorySpec(EVENT, SEATS, "SEAT", (), 600, 8))
    assert inventory.seated_counts() == {"SEAT": (8, 8, 0, 0)}
    [held] = inventory.apply([Hold("c1", _hold_id(1), "b", seats=("A-1-4",))], 0.0)
    assert isinstance(held, Ok) and isinstance(held.value, HoldView) and held.value.ticket_type == "SEAT"


seat_picks = st.lists(st.integers(0, len(SEATS) - 1), min_size=1, max_size=3, unique=True)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("hold"), st.integers(0, 5), seat_picks),
        st.tuples(st.just("confirm"), st.integers(0, 5), st.just([])),
        st.tuples(st.just("release"), st.integers(0, 5), st.just([])),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["FLOOR", "BALC", None]), min_size=len(SEATS), max_size=len(SEATS)), operations)
def test_type_counts_and_bitmaps_always_agree_with_the_seats(
    types: list[str | None], ops: list[tuple[str, int, list[int]]]
) -> None:
    if all(t is None for t in types):
        types[0] = "FLOOR"
    spec = InventorySpec(EVENT, SEATS, next(t for t in types if t is not None), (), 600, 8, tuple(types))
    inventory = Inventory(spec)
    now = 0.0
    for step, (kind, n, picks) in enumerate(ops):
        now += 1.0
        hold_id = _hold_id(n)
        command: Command
        if kind == "hold":
            command = Hold(f"c{step}", hold_id, f"b{n}", seats=tuple(SEATS[i] for i in picks))
        elif kind == "confirm":
            command = Confirm(f"c{step}", hold_id, f"o{n}", "key:k", None)
        else:
            command = Release(f"c{step}", hold_id)
        inventory.apply([command], now)
        inventory.check_invariants()
        expected: dict[str, list[int]] = {}
        for index, code in enumerate(types):
            state = inventory.seat_state(index)
            if code is None:
                assert state == SEAT_BLOCKED
                continue
            expected.setdefault(code, [0, 0, 0])[state] += 1
        counts = inventory.seated_counts()
        assert {code: list(c[1:]) for code, c in counts.items()} == expected
        states = [inventory.seat_state(i) for i in range(len(SEATS))]
        assert _bits(inventory.availability_bitmap(), len(SEATS)) == [int(s == SEAT_AVAILABLE) for s in states]
        assert _bits(inventory.sold_bitmap(), len(SEATS)) == [int(s == SEAT_SOLD) for s in states]
