"""Stateful property test: best-available holds inside the inventory core (engine/inventory/machine.py), among
seat holds, releases, confirms, cancelled sales, expiry, aborted commits and restarts.

Each best-available hold's answer is checked against the rule read fresh from the seat states just before it
(``best_available`` over a copy of the states, itself checked against a naive reading of the rules in
tests/unit/test_best_available.py), so the index the core keeps across all those changes must never drift; and
the inventory's invariants hold after every step: a seat in at most one hold or sale, counts that add up, buyers
within their limit, and never a not-for-sale or blocked seat held or sold by best available.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine import limits
from engine.inventory.best_available import BestRequest, SeatGeometry, SeatPlace, Shortfall, best_available
from engine.inventory.commands import CancelSale, Command, Confirm, Hold, HoldView, Ok, Rejected, Release, Result
from engine.inventory.machine import SEAT_AVAILABLE, Inventory, InventorySpec
from engine.refusals import Refusal

EVENT_HEX = "0123456789abcdef" * 2
EVENT_ID = "evt_" + EVENT_HEX
HOLD_TTL_S = 30
MAX_PER_BUYER = 6
BUYERS = ("b1", "b2", "b3")
CONFIRMER = "key:key_test"


def _row(key: str, seats: int, y: float, zone: str, **attributes: str) -> list[tuple[str, SeatPlace]]:
    return [
        (f"{key}-{n}", SeatPlace(key, n, float(n), y, zone, frozenset(filter(None, [attributes.get(f"s{n}")]))))
        for n in range(1, seats + 1)
    ]


# a small hall: two floor rows (an accessible seat in front, a not-for-sale one behind), a blocked balcony seat
LAYOUT = [
    *_row("F", 5, 1.0, "FLOOR", s3="accessible"),
    *_row("M", 6, 2.0, "FLOOR", s4="not_for_sale"),
    *_row("B", 4, 3.0, "BALCONY", s1="blocked"),
]
SEAT_IDS = tuple(seat_id for seat_id, _ in LAYOUT)
GEOMETRY = SeatGeometry([place for _, place in LAYOUT])
UNSELLABLE = {SEAT_IDS[i] for i, place in enumerate(GEOMETRY.places) if not place.sellable}
SPEC = InventorySpec(
    event_id=EVENT_ID,
    seat_ids=SEAT_IDS,
    seated_type="SEAT",
    ga_capacity=(("GA", 3),),
    hold_ttl_s=HOLD_TTL_S,
    max_tickets_per_buyer=MAX_PER_BUYER,
    geometry=GEOMETRY,
)
best_requests = st.builds(
    BestRequest,
    st.integers(0, 5),
    st.sampled_from((None, None, "FLOOR", "BALCONY", "NOWHERE")),
    st.sampled_from(((), (), ("accessible",))),
)
clock_steps_s = st.sampled_from([1.0, 10.0, 29.0, 31.0])


class BestAvailableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Inventory(SPEC)
        self.now = 1_000.0
        self.count = 0
        self.hold_ids: list[str] = []
        self.best_holds = 0

    def new_id(self) -> str:
        self.count += 1
        return f"hld_{EVENT_HEX}{self.count:020x}"

    def states(self) -> list[int]:
        return [self.engine.seat_state(i) for i in range(len(SEAT_IDS))]

    def buyer_totals(self) -> dict[str, int]:
        snapshot = self.engine.snapshot()
        totals: dict[str, int] = {}
        for view in snapshot.holds:
            totals[view.buyer_id] = totals.get(view.buyer_id, 0) + view.quantity
        for sale in snapshot.sales:
            totals[sale.buyer_id] = totals.get(sale.buyer_id, 0) + len(sale.tickets)
        return totals

    def apply(self, commands: list[Command]) -> list[Result]:
        self.engine.expire(self.now)  # what apply does first, so the states read next are the ones it acts on
        return self.engine.apply(commands, self.now)

    def holds(self, *, sold: bool | None = None) -> list[str]:
        snapshot = self.engine.snapshot()
        live = [v.hold_id for v in snapshot.holds]
        done = [s.hold_id for s in snapshot.sales]
        return live if sold is False else done if sold else live + done

    # -- rules --
    @rule(data=st.data(), size=st.integers(1, 4))
    def hold_best(self, data: st.DataObject, size: int) -> None:
        """A batch of best-available holds, each checked against the rule over the states the one before left."""
        self.engine.expire(self.now)
        states, totals = self.states(), self.buyer_totals()
        commands: list[Command] = []
        expected: list[tuple[BestRequest, str | tuple[int, ...] | Shortfall]] = []
        for _ in range(size):
            request = data.draw(best_requests, label="request")
            buyer = data.draw(st.sampled_from(BUYERS), label="buyer")
            hold_id = self.new_id()
            ttl_s = data.draw(st.sampled_from((None, 5)), label="ttl_s")
            commands.append(Hold(hold_id, hold_id, buyer, ttl_s=ttl_s, best_available=request))
            if not 1 <= request.quantity <= limits.seats_per_hold_max or request.zone == "NOWHERE":
                expected.append((request, "invalid_hold_request"))
            elif totals.get(buyer, 0) + request.quantity > MAX_PER_BUYER:
                expected.append((request, "buyer_limit_exceeded"))
            else:
                picked = best_available(states, GEOMETRY, request)
                expected.append((request, picked))
                if isinstance(picked, tuple):
                    for i in picked:
                        states[i] = 1
                    totals[buyer] = totals.get(buyer, 0) + request.quantity
        answers = self.engine.apply(commands, self.now)
        for command, answer, (request, want) in zip(commands, answers, expected, strict=True):
            assert isinstance(command, Hold)
            if isinstance(want, str):
                assert isinstance(answer, Rejected) and answer.code == want, (command, answer)
            elif isinstance(want, Shortfall):
                assert isinstance(answer, Rejected) and answer.code == "insufficient_inventory", (command, answer)
                assert answer.details["available"] == want.available
            else:
                assert isinstance(answer, Ok) and isinstance(answer.value, HoldView), (command, answer)
                view = answer.value
                assert view.seats == tuple(SEAT_IDS[i] for i in want)
                assert (view.ticket_type, view.quantity, view.status) == ("SEAT", request.quantity, "held")
                assert view.expires_at == self.now + (command.ttl_s or HOLD_TTL_S)
                self.hold_ids.append(view.hold_id)
                self.best_holds += 1

    @rule(buyer=st.sampled_from(BUYERS), seats=st.lists(st.sampled_from(SEAT_IDS), min_size=1, max_size=3,
                                                         unique=True))
    def hold_seats(self, buyer: str, seats: list[str]) -> None:
        """Buyers who pick seats themselves fragment the rows."""
        if UNSELLABLE & set(seats):
            return
        hold_id = self.new_id()
        [answer] = self.apply([Hold(hold_id, hold_id, buyer, seats=tuple(seats))])
        if isinstance(answer, Ok):
            self.hold_ids.append(hold_id)

    @rule(buyer=st.sampled_from(BUYERS))
    def hold_ga(self, buyer: str) -> None:
        hold_id = self.new_id()
        self.apply([Hold(hold_id, hold_id, buyer, ticket_type="GA", quantity=1)])

    @rule(data=st.data(), best=best_requests)
    def best_with_seats_is_refused(self, data: st.DataObject, best: BestRequest) -> None:
        hold_id = self.new_id()
        [answer] = self.apply([Hold(hold_id, hold_id, "b1", seats=(SEAT_IDS[0],), best_available=best)])
        assert isinstance(answer, Rejected) and answer.code == "invalid_hold_request"

    @precondition(lambda self: bool(self.hold_ids))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(self.hold_ids))
        self.apply([Release(f"release:{hold_id}:{self.count}", hold_id)])

    @precondition(lambda self: bool(self.hold_ids))
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(self.hold_ids))
        self.apply([Confirm(f"confirm:{hold_id}", hold_id, "o1", CONFIRMER, None)])
        self.engine.drain_changes()

    @rule(data=st.data())
    def confirm_then_abort(self, data: st.DataObject) -> None:
        """A confirm whose commit fails: its seats go back to held, exactly."""
        self.engine.drain_changes()
        live = self.holds(sold=False)
        if not live:
            return
        hold_id = data.draw(st.sampled_from(live))
        self.apply([Confirm(f"confirm:{hold_id}:{self.count}", hold_id, "o1", CONFIRMER, None)])
        pending = [sale.hold_id for sale in self.engine.pending_sales()[0]]
        self.engine.abort_sales(pending)
        self.engine.drain_changes()

    @rule(data=st.data())
    def cancel_sale(self, data: st.DataObject) -> None:
        self.engine.drain_changes()
        sold = self.holds(sold=True)
        if sold:
            hold_id = data.draw(st.sampled_from(sold))
            self.count += 1
            self.apply([CancelSale(f"cancel:{self.count}", hold_id)])
            self.engine.drain_changes()

    @rule(step_s=clock_steps_s)
    def advance_clock(self, step_s: float) -> None:
        self.now += step_s

    @rule()
    def expire(self) -> None:
        self.engine.expire(self.now)

    @rule()
    def restart(self) -> None:
        """A new incarnation from the snapshot: the index is rebuilt from the restored seat states."""
        self.engine.drain_changes()
        self.engine = Inventory.restore(SPEC, self.engine.snapshot(), self.now)

    # -- invariants --
    @invariant()
    def inventory_invariants_hold(self) -> None:
        self.engine.check_invariants()
        available, held, sold = self.engine.seat_counts()
        assert available + held + sold == len(SEAT_IDS)

    @invariant()
    def no_seat_twice_and_nothing_unsellable_taken(self) -> None:
        snapshot = self.engine.snapshot()
        seats = [s for view in snapshot.holds for s in view.seats]
        seats += [t.seat_id for sale in snapshot.sales for t in sale.tickets if t.seat_id is not None]
        assert len(seats) == len(set(seats))
        assert not UNSELLABLE & set(seats)
        per_buyer = self.buyer_totals()
        assert all(n <= MAX_PER_BUYER for n in per_buyer.values())

    @invariant()
    def the_index_answers_as_a_fresh_reading(self) -> None:
        finder = self.engine._finder
        if finder is None:
            return
        states = self.states()
        for request in (BestRequest(1), BestRequest(2, "FLOOR"), BestRequest(3), BestRequest(1, None, ("accessible",))):
            assert finder.find(request) == best_available(states, GEOMETRY, request)
            assert finder.available(request) == sum(
                states[i] == SEAT_AVAILABLE and GEOMETRY.eligible(i, request.filter_key) for i in range(len(states))
            )


BestAvailableMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBestAvailableMachine = BestAvailableMachine.TestCase


def test_a_restored_inventory_picks_as_the_one_before() -> None:
    engine = Inventory(SPEC)
    first = f"hld_{EVENT_HEX}{1:020x}"
    engine.apply([Hold(first, first, "b1", best_available=BestRequest(2))], 1_000.0)
    engine.drain_changes()
    twin = Inventory.restore(SPEC, engine.snapshot(), 1_000.0)
    second = f"hld_{EVENT_HEX}{2:020x}"
    request = Hold(second, second, "b2", best_available=BestRequest(2, "FLOOR"))
    assert engine.apply([request], 1_000.0) == twin.apply([request], 1_000.0)


def test_best_available_needs_seats_a_known_zone_and_a_sane_quantity() -> None:
    ga_only = Inventory(InventorySpec(EVENT_ID, (), None, (("GA", 5),), HOLD_TTL_S, MAX_PER_BUYER))
    hold_id = f"hld_{EVENT_HEX}{1:020x}"
    [answer] = ga_only.apply([Hold(hold_id, hold_id, "b1", best_available=BestRequest(1))], 1_000.0)
    assert isinstance(answer, Rejected) and answer.code == "invalid_hold_request"
    assert answer.details["fields"][0]["field"] == "best_available"
    engine = Inventory(SPEC)
    cases = {
        BestRequest(0): ("invalid_hold_request", "best_available.quantity"),
        BestRequest(limits.seats_per_hold_max + 1): ("invalid_hold_request", "best_available.quantity"),
        BestRequest(1, "NOWHERE"): ("invalid_hold_request", "best_available.zone"),
        BestRequest(1, None, (), ("FLOOR",)): ("invalid_hold_request", "best_available.fallback_zones"),
        BestRequest(1, "FLOOR", (), ("FLOOR",)): ("invalid_hold_request", "best_available.fallback_zones"),
        BestRequest(1, "FLOOR", (), ("BALCONY", "BALCONY")): ("invalid_hold_request", "best_available.fallback_zones"),
        BestRequest(1, "FLOOR", (), ("NOWHERE",)): ("invalid_hold_request", "best_available.fallback_zones"),
        BestRequest(1, "FLOOR", (), ("BALCONY",) * (limits.best_available_fallback_zones_max + 1)): (
            "invalid_hold_request", "best_available.fallback_zones"),
    }
    for n, (request, (code, field)) in enumerate(cases.items(), 2):
        hold_id = f"hld_{EVENT_HEX}{n:020x}"
        [answer] = engine.apply([Hold(hold_id, hold_id, "b1", best_available=request)], 1_000.0)
        assert isinstance(answer, Rejected) and (answer.code, answer.details["fields"][0]["field"]) == (code, field)
    hold_id = f"hld_{EVENT_HEX}{99:020x}"
    [answer] = engine.apply([Hold(hold_id, hold_id, "b1", best_available=BestRequest(1, "BALCONY", ("accessible",)))],
                            1_000.0)
    details = {"available": 0, "zone": "BALCONY", "attributes": ["accessible"], "fallback_zones": []}
    assert answer == Rejected(Refusal.INSUFFICIENT_INVENTORY, "not enough seats left", details)
    assert engine.seat_counts() == (len(SEAT_IDS), 0, 0)


def test_a_geometry_must_place_every_seat() -> None:
    with pytest.raises(ValueError, match="geometry"):
        InventorySpec(EVENT_ID, SEAT_IDS[:-1], "SEAT", (), HOLD_TTL_S, MAX_PER_BUYER, geometry=GEOMETRY)
