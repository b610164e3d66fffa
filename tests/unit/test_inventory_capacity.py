"""The inventory core's lifecycle parts (engine/inventory/machine.py): capacity changes serialized with holds
(grow any time, shrink only down to held + sold), the sale gate a status sets, and nothing_left for sold_out.

A Hypothesis state machine drives holds, releases, confirms, capacity changes, gate changes and rebuilds (as
after a restart: sales and live holds restored, with the highest capacity ever as the unit bound) against a
small model of counts; every step keeps held + sold <= capacity, units unique and within 1..units_max.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from engine.inventory.commands import Confirm, Hold, HoldView, Ok, Rejected, Release, SaleView, SetCapacity
from engine.inventory.machine import Inventory, InventorySpec
from engine.refusals import Refusal

EVENT_HEX = "0123456789abcdef" * 2
EVENT_ID = "evt_" + EVENT_HEX
BY = "key:key_test"
NOW = 1_000.0


def spec(capacity: int, units_max: int = 0, *, max_per_buyer: int = 100) -> InventorySpec:
    return InventorySpec(
        event_id=EVENT_ID,
        seat_ids=(),
        seated_type=None,
        ga_capacity=(("GA", capacity),),
        hold_ttl_s=600,
        max_tickets_per_buyer=max_per_buyer,
        ga_units_max=(("GA", units_max),) if units_max > capacity else (),
    )


def hold_id(n: int) -> str:
    return f"hld_{EVENT_HEX}{n:020x}"


def hold(inventory: Inventory, n: int, quantity: int, buyer: str = "b") -> Ok | Rejected:
    [result] = inventory.apply([Hold(f"h{n}", hold_id(n), buyer, ticket_type="GA", quantity=quantity)], NOW)
    return result


def set_capacity(inventory: Inventory, cmd: str, capacity: int) -> Ok | Rejected:
    [result] = inventory.apply([SetCapacity(cmd, "GA", capacity, BY, None)], NOW)
    return result


def test_capacity_grows_any_time_and_shrinks_down_to_held_plus_sold() -> None:
    inventory = Inventory(spec(10))
    assert isinstance(hold(inventory, 1, 4), Ok)
    [sold] = inventory.apply([Hold("h2", hold_id(2), "c", ticket_type="GA", quantity=2)], NOW)
    assert isinstance(sold, Ok)
    inventory.apply([Confirm("c2", hold_id(2), "o", BY, None)], NOW)
    refused = set_capacity(inventory, "s1", 5)
    assert refused == Rejected(
        Refusal.CAPACITY_BELOW_COMMITTED,
        "capacity cannot go below what is held and sold",
        {"ticket_type": "GA", "capacity": 5, "held": 4, "sold": 2},
    )
    assert set_capacity(inventory, "s2", 6) == Ok(None)  # exactly held + sold
    assert inventory.ga_counts()["GA"] == (6, 0, 4, 2)
    assert inventory.nothing_left()
    assert isinstance(hold(inventory, 3, 1), Rejected)
    assert set_capacity(inventory, "s3", 50) == Ok(None)
    assert not inventory.nothing_left()
    assert inventory.pending_capacities() == {"GA": (10, 50, BY, None)}  # first before, last after


def test_a_repeated_capacity_command_gets_its_first_answer() -> None:
    inventory = Inventory(spec(10))
    assert set_capacity(inventory, "s1", 3) == Ok(None)
    assert isinstance(hold(inventory, 1, 3), Ok)
    assert set_capacity(inventory, "s1", 3) == Ok(None)  # the same command: answered from its record
    assert set_capacity(inventory, "s2", 20) == Ok(None)
    assert set_capacity(inventory, "s1", 3) == Ok(None)  # still its first answer, and nothing applied
    assert inventory.ga_counts()["GA"][0] == 20


def test_capacity_of_an_unknown_or_seated_type_is_refused() -> None:
    inventory = Inventory(spec(10))
    [result] = inventory.apply([SetCapacity("s", "SEAT", 3, BY, None)], NOW)
    assert isinstance(result, Rejected) and result.code is Refusal.UNKNOWN_TICKET_TYPE


def test_the_gate_stops_holds_but_not_confirms_releases_or_lookups() -> None:
    inventory = Inventory(spec(10))
    assert isinstance(hold(inventory, 1, 1), Ok)
    assert isinstance(hold(inventory, 2, 1), Ok)
    inventory.set_gate(holds_open=False, confirms_open=True)  # paused
    refused = hold(inventory, 3, 1)
    assert isinstance(refused, Rejected) and refused.code is Refusal.NOT_ON_SALE
    assert isinstance(hold(inventory, 1, 1), Ok)  # the same hold again is still answered as itself
    [confirmed] = inventory.apply([Confirm("c1", hold_id(1), "o", BY, None)], NOW)
    assert isinstance(confirmed, Ok) and isinstance(confirmed.value, SaleView)
    assert inventory.apply([Release("r2", hold_id(2))], NOW) == [Ok(None)]
    assert isinstance(hold(inventory, 4, 1), Ok) is False
    inventory.set_gate(holds_open=False, confirms_open=False)  # cancelled
    assert isinstance(hold(inventory, 5, 1), Ok) is False
    inventory.set_gate(holds_open=True, confirms_open=True)
    assert isinstance(hold(inventory, 6, 1), Ok)


def test_cancelled_refuses_confirms_but_answers_a_confirmed_one() -> None:
    inventory = Inventory(spec(10))
    hold(inventory, 1, 1)
    hold(inventory, 2, 1)
    [first] = inventory.apply([Confirm("c1", hold_id(1), "o", BY, None)], NOW)
    inventory.set_gate(holds_open=False, confirms_open=False)
    [again] = inventory.apply([Confirm("c1b", hold_id(1), "o", BY, None)], NOW)
    assert again == first  # its sale exists: the same answer
    [refused] = inventory.apply([Confirm("c2", hold_id(2), "o", BY, None)], NOW)
    assert isinstance(refused, Rejected) and refused.code is Refusal.NOT_ON_SALE


def test_units_sold_above_a_shrunk_capacity_stay_valid_after_a_rebuild() -> None:
    inventory = Inventory(spec(10))
    for n in range(1, 11):
        assert isinstance(hold(inventory, n, 1, buyer=f"b{n}"), Ok)
    for n in range(1, 6):
        assert inventory.apply([Release(f"r{n}", hold_id(n))], NOW) == [Ok(None)]
    assert set_capacity(inventory, "s", 5) == Ok(None)
    for n in range(6, 11):
        inventory.apply([Confirm(f"c{n}", hold_id(n), "o", BY, None)], NOW)
    inventory.drain_changes()
    snapshot = inventory.snapshot()
    units = sorted(t.unit for s in snapshot.sales for t in s.tickets if t.unit is not None)
    assert units == [6, 7, 8, 9, 10]  # above the capacity of 5, within the highest it ever was
    rebuilt = Inventory.restore(spec(5, units_max=10), snapshot, NOW)
    assert rebuilt.ga_counts()["GA"] == (5, 0, 0, 5)
    assert rebuilt.nothing_left()
    assert set_capacity(rebuilt, "s2", 7) == Ok(None)
    [grown] = rebuilt.apply([Hold("h", hold_id(99), "z", ticket_type="GA", quantity=2)], NOW)
    assert isinstance(grown, Ok) and isinstance(grown.value, HoldView)
    assert all(1 <= u <= 10 for u in grown.value.units)
    rebuilt.check_invariants()


class CapacityMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.capacity = 4
        self.units_max = 4
        self.inventory = Inventory(spec(self.capacity))
        self.held: dict[str, int] = {}
        self.sold: dict[str, int] = {}
        self.next = 0
        self.holds_open = True

    @rule(quantity=st.integers(1, 3))
    def place(self, quantity: int) -> None:
        self.next += 1
        result = hold(self.inventory, self.next, quantity, buyer=f"b{self.next}")
        room = self.capacity - sum(self.held.values()) - sum(self.sold.values())
        if not self.holds_open:
            assert isinstance(result, Rejected) and result.code is Refusal.NOT_ON_SALE
        elif quantity <= room:
            assert isinstance(result, Ok) and isinstance(result.value, HoldView)
            assert len(set(result.value.units)) == quantity
            assert all(1 <= u <= self.units_max for u in result.value.units)
            self.held[hold_id(self.next)] = quantity
        else:
            assert isinstance(result, Rejected) and result.code is Refusal.INSUFFICIENT_INVENTORY

    @rule(data=st.data())
    def release_or_confirm(self, data: st.DataObject) -> None:
        if not self.held:
            return
        target = data.draw(st.sampled_from(sorted(self.held)))
        if data.draw(st.booleans()):
            assert self.inventory.apply([Release(f"r{target}", target)], NOW) == [Ok(None)]
            del self.held[target]
        else:
            [result] = self.inventory.apply([Confirm(f"c{target}", target, "o", BY, None)], NOW)
            assert isinstance(result, Ok)
            self.sold[target] = self.held.pop(target)

    @rule(capacity=st.integers(0, 12))
    def change_capacity(self, capacity: int) -> None:
        self.next += 1
        result = set_capacity(self.inventory, f"s{self.next}", capacity)
        committed = sum(self.held.values()) + sum(self.sold.values())
        if capacity >= committed:
            assert result == Ok(None)
            self.capacity = capacity
            self.units_max = max(self.units_max, capacity)
        else:
            assert isinstance(result, Rejected) and result.code is Refusal.CAPACITY_BELOW_COMMITTED
            assert (result.details["held"], result.details["sold"]) == (
                sum(self.held.values()), sum(self.sold.values())
            )

    @rule(holds_open=st.booleans())
    def gate(self, holds_open: bool) -> None:
        self.holds_open = holds_open
        self.inventory.set_gate(holds_open=holds_open, confirms_open=True)

    @rule()
    def rebuild(self) -> None:
        self.inventory.drain_changes()
        snapshot = self.inventory.snapshot()
        self.inventory = Inventory.restore(spec(self.capacity, self.units_max), snapshot, NOW)
        self.inventory.set_gate(holds_open=self.holds_open, confirms_open=True)

    @invariant()
    def counts_agree(self) -> None:
        capacity, available, held, sold = self.inventory.ga_counts()["GA"]
        assert (capacity, held, sold) == (self.capacity, sum(self.held.values()), sum(self.sold.values()))
        assert held + sold <= capacity and available == capacity - held - sold
        assert self.inventory.nothing_left() == (available == 0)
        self.inventory.check_invariants()


TestCapacityMachine = CapacityMachine.TestCase
TestCapacityMachine.settings = settings(
    max_examples=150, stateful_step_count=30, suppress_health_check=[HealthCheck.too_slow], deadline=None
)
