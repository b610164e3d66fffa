"""Stateful property test of engine.inventory.machine against an independent reference model.

The model is written from the rules (module docstrings of engine/inventory/machine.py and
engine/inventory/commands.py, and the HTTP contract), with plain dicts; it never calls the engine. The one thing
it takes from the engine is *which* GA unit numbers a new hold gets, and it checks those are valid (count, range
1..capacity, not in use) before accepting them.

The inventory is tiny so that conflicts (taken seats, sold-out GA, buyer caps, expiry races) are common.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from engine import limits
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
)
from engine.inventory.machine import Changes, Inventory, InventorySpec

EVENT_HEX = "0123456789abcdef" * 2
EVENT_ID = "evt_" + EVENT_HEX
SEATS = tuple(f"A-1-{n}" for n in range(1, 7))
SEATED_TYPE = "SEAT"
GA_CAPACITY = {"GA": 5, "VIP": 2}
HOLD_TTL_S = 30
MAX_PER_BUYER = 3
BUYERS = ("b1", "b2", "b3")
UNKNOWN_SEAT = "Z-9-9"
UNKNOWN_TYPE = "NOPE"
NEVER_USED_HOLD = f"hld_{EVENT_HEX}{'f' * 20}"
ORDER_REFS = ("o1", "o2")
START_TIME_S = 1_000.0
# who confirms, as the gateway names a caller (engine.inventory.commands.actor_ref); the core only carries it
CONFIRMER = "key:key_test"

SPEC = InventorySpec(
    event_id=EVENT_ID,
    seat_ids=SEATS,
    seated_type=SEATED_TYPE,
    ga_capacity=tuple(GA_CAPACITY.items()),
    hold_ttl_s=HOLD_TTL_S,
    max_tickets_per_buyer=MAX_PER_BUYER,
)

ttls = st.sampled_from([None, None, 1, 5, HOLD_TTL_S, HOLD_TTL_S + 1, 0])
# an extension's ttl: shorter than what is left (ignored), longer, the payment window's bound, and out of bounds
extend_ttls = st.sampled_from([1, 5, HOLD_TTL_S, 2 * HOLD_TTL_S, limits.payment_window_s_max, 0,
                               limits.payment_window_s_max + 1])
clock_steps_s = st.sampled_from([0.5, 1.0, 4.0, 5.0, 10.0, 29.0, 30.0, 31.0])


# ---- the reference model ---------------------------------------------------------------------------------------


@dataclass
class ModelHold:
    hold_id: str
    buyer_id: str
    seats: tuple[str, ...]
    ticket_type: str
    quantity: int
    units: tuple[int, ...]
    expires_at: float
    order_ref: str | None = None  # set once sold
    tickets: tuple[TicketView, ...] = ()  # once sold: its live tickets (seats, units and quantity follow them)
    given_back: set[str] = field(default_factory=set)  # ticket ids its sale gave back (CancelTickets)


@dataclass(frozen=True)
class Refusal:
    """What the model expects instead of an Ok: the code, and the details keys it can predict."""

    code: str
    details: dict[str, object] = field(default_factory=dict)


Expected = Ok | Refusal


def suffix(hold_id: str) -> str:
    return hold_id.removeprefix("hld_")


@dataclass
class Model:
    now: float = START_TIME_S
    holds: dict[str, ModelHold] = field(default_factory=dict)  # live and sold
    ended: dict[str, str] = field(default_factory=dict)  # hold id -> "expired" | "released" | "cancelled"
    pending: set[str] = field(default_factory=set)  # sold since the last drain
    answers: dict[str, Result] = field(default_factory=dict)  # cmd id -> first answer (the engine's)
    # hold id -> cmd ids answered while that hold's sale was pending: an abort forgets those answers
    pending_answers: dict[str, list[str]] = field(default_factory=dict)

    # -- derived state --
    def seat_states(self) -> dict[str, str]:
        states = dict.fromkeys(SEATS, "available")
        for hold in self.holds.values():
            for seat in hold.seats:
                assert states[seat] == "available", f"model: seat {seat} twice"
                states[seat] = "sold" if hold.order_ref else "held"
        return states

    def ga_counts(self) -> dict[str, tuple[int, int, int, int]]:
        counts = {}
        for code, capacity in GA_CAPACITY.items():
            held = sum(h.quantity for h in self.holds.values() if h.ticket_type == code and not h.order_ref)
            sold = sum(h.quantity for h in self.holds.values() if h.ticket_type == code and h.order_ref)
            counts[code] = (capacity, capacity - held - sold, held, sold)
        return counts

    def units_in_use(self, code: str) -> set[int]:
        return {u for h in self.holds.values() if h.ticket_type == code for u in h.units}

    def buyer_total(self, buyer_id: str) -> int:
        return sum(h.quantity for h in self.holds.values() if h.buyer_id == buyer_id)

    def view(self, hold: ModelHold) -> HoldView:
        status = "sold" if hold.order_ref else "held"
        return HoldView(
            hold.hold_id, hold.buyer_id, hold.seats, hold.ticket_type, hold.quantity, hold.units,
            hold.expires_at, status,
        )

    def sale(self, hold: ModelHold) -> SaleView:
        assert hold.order_ref is not None
        return SaleView(f"sal_{suffix(hold.hold_id)}", hold.hold_id, hold.buyer_id, hold.order_ref, hold.tickets)

    @staticmethod
    def tickets_sold(hold: ModelHold) -> tuple[TicketView, ...]:
        tickets = [TicketView(f"tkt_{suffix(hold.hold_id)}_{n}", SEATED_TYPE, seat, None)
                   for n, seat in enumerate(hold.seats, 1)]
        tickets += [TicketView(f"tkt_{suffix(hold.hold_id)}_{n}", hold.ticket_type, None, unit)
                    for n, unit in enumerate(hold.units, 1)]
        return tuple(tickets)

    def live_views(self) -> dict[str, HoldView]:
        return {hid: self.view(h) for hid, h in self.holds.items() if h.order_ref is None}

    def sales(self) -> dict[str, SaleView]:
        return {hid: self.sale(h) for hid, h in self.holds.items() if h.order_ref is not None}

    # -- transitions --
    def sweep(self) -> set[str]:
        due = {hid for hid, h in self.holds.items() if h.order_ref is None and h.expires_at <= self.now}
        for hid in due:
            self.end(hid, "expired")
        return due

    def end(self, hold_id: str, how: str) -> None:
        del self.holds[hold_id]
        self.ended[hold_id] = how

    def ended_refusal(self, hold_id: str) -> Refusal:
        how = self.ended.get(hold_id)
        if how == "expired":
            return Refusal("hold_expired", {"hold_id": hold_id})
        if how == "released":
            return Refusal("invalid_transition", {"hold_id": hold_id})
        return Refusal("hold_not_found", {"hold_id": hold_id})

    def hold(self, cmd: Hold, answer: Result) -> Expected:
        existing = self.holds.get(cmd.hold_id)
        if existing is not None:
            if existing.buyer_id != cmd.buyer_id:
                return Refusal("invalid_hold_request", {"hold_id": cmd.hold_id})
            return Ok(self.view(existing))
        if self.ended.get(cmd.hold_id) == "cancelled":
            return Refusal("invalid_hold_request", {"hold_id": cmd.hold_id})
        ttl_s = HOLD_TTL_S if cmd.ttl_s is None else cmd.ttl_s
        if not 1 <= ttl_s <= HOLD_TTL_S:
            return Refusal("invalid_hold_request", {"field": "ttl_s"})
        if cmd.seats and cmd.ticket_type is None and cmd.quantity == 0:
            return self.hold_seats(cmd, self.now + ttl_s)
        if not cmd.seats and cmd.ticket_type is not None and cmd.quantity > 0:
            return self.hold_units(cmd, self.now + ttl_s, answer)
        return Refusal("invalid_hold_request")

    def buyer_refusal(self, buyer_id: str, size: int) -> Refusal | None:
        total = self.buyer_total(buyer_id)
        if total + size <= MAX_PER_BUYER:
            return None
        details: dict[str, object] = {"max_tickets_per_buyer": MAX_PER_BUYER, "held_or_bought": total,
                                      "requested": size}
        return Refusal("buyer_limit_exceeded", details)

    def hold_seats(self, cmd: Hold, expires_at: float) -> Expected:
        if len(set(cmd.seats)) != len(cmd.seats):
            return Refusal("invalid_hold_request")
        unknown = [s for s in cmd.seats if s not in SEATS]
        if unknown:
            return Refusal("unknown_seats", {"seats": unknown})
        refusal = self.buyer_refusal(cmd.buyer_id, len(cmd.seats))
        if refusal:
            return refusal
        states = self.seat_states()
        taken = [s for s in cmd.seats if states[s] != "available"]
        if taken:
            return Refusal("seats_unavailable", {"seats": taken})
        hold = ModelHold(cmd.hold_id, cmd.buyer_id, cmd.seats, SEATED_TYPE, len(cmd.seats), (), expires_at)
        self.holds[cmd.hold_id] = hold
        return Ok(self.view(hold))

    def hold_units(self, cmd: Hold, expires_at: float, answer: Result) -> Expected:
        code = cmd.ticket_type
        assert code is not None
        if code not in GA_CAPACITY:
            return Refusal("unknown_ticket_type", {"ticket_type": code})
        refusal = self.buyer_refusal(cmd.buyer_id, cmd.quantity)
        if refusal:
            return refusal
        available = self.ga_counts()[code][1]
        if cmd.quantity > available:
            return Refusal("insufficient_inventory", {"ticket_type": code, "available": available})
        units = self.accept_units(code, cmd.quantity, answer)
        hold = ModelHold(cmd.hold_id, cmd.buyer_id, (), code, cmd.quantity, units, expires_at)
        self.holds[cmd.hold_id] = hold
        return Ok(self.view(hold))

    def accept_units(self, code: str, quantity: int, answer: Result) -> tuple[int, ...]:
        """The engine picks the unit numbers; the model only checks they are free and in range."""
        assert isinstance(answer, Ok) and isinstance(answer.value, HoldView), f"expected a hold, got {answer}"
        units = answer.value.units
        assert len(units) == quantity == len(set(units)), units
        assert all(1 <= u <= GA_CAPACITY[code] for u in units), units
        assert not set(units) & self.units_in_use(code), (units, self.units_in_use(code))
        return units

    def confirm(self, cmd: Confirm) -> Expected:
        hold = self.holds.get(cmd.hold_id)
        if hold is None:
            return self.ended_refusal(cmd.hold_id)
        if hold.order_ref is not None:
            if hold.order_ref == cmd.order_ref:
                return Ok(self.sale(hold))
            return Refusal("invalid_transition", {"hold_id": cmd.hold_id})
        if hold.expires_at <= self.now:
            self.end(cmd.hold_id, "expired")
            return self.ended_refusal(cmd.hold_id)
        hold.order_ref = cmd.order_ref
        hold.tickets = self.tickets_sold(hold)
        self.pending.add(cmd.hold_id)
        return Ok(self.sale(hold))

    def release(self, cmd: Release) -> Expected:
        hold = self.holds.get(cmd.hold_id)
        if hold is None:
            return self.ended_refusal(cmd.hold_id)
        if hold.order_ref is not None:
            return Refusal("invalid_transition", {"hold_id": cmd.hold_id})
        if hold.expires_at <= self.now:
            self.end(cmd.hold_id, "expired")
            return self.ended_refusal(cmd.hold_id)
        self.end(cmd.hold_id, "released")
        return Ok(None)

    def extend(self, cmd: ExtendHold) -> Expected:
        if not 1 <= cmd.ttl_s <= limits.payment_window_s_max:
            return Refusal("invalid_hold_request", {"field": "ttl_s"})
        hold = self.holds.get(cmd.hold_id)
        if hold is None:
            return self.ended_refusal(cmd.hold_id)
        if hold.order_ref is not None:
            return Refusal("invalid_transition", {"hold_id": cmd.hold_id})
        if hold.expires_at <= self.now:
            self.end(cmd.hold_id, "expired")
            return self.ended_refusal(cmd.hold_id)
        hold.expires_at = max(hold.expires_at, self.now + cmd.ttl_s)  # never shortened
        return Ok(self.view(hold))

    def cancel_sale(self, cmd: CancelSale) -> Expected:
        hold = self.holds.get(cmd.hold_id)
        if hold is None or hold.order_ref is None:
            return Refusal("hold_not_found", {"hold_id": cmd.hold_id})
        sale = self.sale(hold)
        self.end(cmd.hold_id, "cancelled")
        return Ok(sale)

    def cancel_tickets(self, cmd: CancelTickets) -> Expected:
        ids = cmd.ticket_ids
        if not 1 <= len(ids) <= limits.tickets_per_cancel_max or len(set(ids)) != len(ids):
            return Refusal("invalid_hold_request", {"field": "ticket_ids"})
        hold = self.holds.get(cmd.hold_id)
        if hold is None or hold.order_ref is None:
            return Refusal("hold_not_found", {"hold_id": cmd.hold_id})
        if cmd.hold_id in self.pending:
            return Refusal("invalid_transition", {"hold_id": cmd.hold_id})
        live = {t.ticket_id: t for t in hold.tickets}
        unknown = [t for t in ids if t not in live and t not in hold.given_back]
        if unknown:
            return Refusal("ticket_not_found", {"hold_id": cmd.hold_id, "ticket_ids": unknown})
        going = [live[t] for t in ids if t in live]
        hold.given_back |= {t.ticket_id for t in going}
        hold.tickets = tuple(t for t in hold.tickets if t.ticket_id not in hold.given_back)
        hold.seats = tuple(s for s in hold.seats if s not in {t.seat_id for t in going})
        hold.units = tuple(u for u in hold.units if u not in {t.unit for t in going})
        hold.quantity = len(hold.tickets)
        sale = self.sale(hold)
        if not hold.tickets:  # the last ticket: the sale ends as a cancelled one
            self.end(cmd.hold_id, "cancelled")
        return Ok(sale)

    def lookup(self, cmd: LookupHold) -> Expected:
        hold = self.holds.get(cmd.hold_id)
        if hold is None:
            return self.ended_refusal(cmd.hold_id)
        if hold.order_ref is None and hold.expires_at <= self.now:
            return Refusal("hold_expired", {"hold_id": cmd.hold_id})
        return Ok(self.view(hold))

    def execute(self, cmd: Command, answer: Result) -> Expected:
        if isinstance(cmd, Hold):
            return self.hold(cmd, answer)
        if isinstance(cmd, Confirm):
            return self.confirm(cmd)
        if isinstance(cmd, Release):
            return self.release(cmd)
        if isinstance(cmd, CancelSale):
            return self.cancel_sale(cmd)
        if isinstance(cmd, ExtendHold):
            return self.extend(cmd)
        if isinstance(cmd, CancelTickets):
            return self.cancel_tickets(cmd)
        assert isinstance(cmd, LookupHold), f"the model has no rule for {cmd}"
        return self.lookup(cmd)

    def abort(self, hold_ids: list[str]) -> None:
        for hold_id in hold_ids:
            self.holds[hold_id].order_ref = None
            self.holds[hold_id].tickets = ()
            self.pending.discard(hold_id)
            for cmd_id in self.pending_answers.pop(hold_id, []):
                self.answers.pop(cmd_id, None)

    def restore(self) -> None:
        """A restart: live holds come back unless expired, sales stay; every in-memory record is gone."""
        self.answers.clear()
        self.pending.clear()
        self.pending_answers.clear()
        self.ended.clear()
        for hold in self.holds.values():
            if hold.order_ref is not None:
                hold.expires_at = 0.0  # a sale does not keep its hold's expiry, so a restored one reads 0
        self.sweep()  # marks the dropped ones "expired", so a late confirm still answers hold_expired


def assert_answer(cmd: Command, actual: Result, expected: Expected) -> None:
    if isinstance(expected, Refusal):
        assert isinstance(actual, Rejected), f"{cmd}: expected {expected.code}, got {actual}"
        assert actual.code == expected.code, f"{cmd}: expected {expected.code}, got {actual}"
        for key, value in expected.details.items():
            assert actual.details.get(key) == value, f"{cmd}: details[{key}] {actual.details} != {value}"
    else:
        assert actual == expected, f"{cmd}: expected {expected}, got {actual}"


def expected_bitmap(states: list[str]) -> bytes:
    if not states:
        return b""
    value = 0
    for state in states:
        value = (value << 1) | (state == "available")
    padding = -len(states) % 8
    return (value << padding).to_bytes((len(states) + padding) // 8, "big")


# ---- the machine -----------------------------------------------------------------------------------------------


@dataclass
class Mirror:
    """What the shell's caches would hold if it wrote every drained Changes through (Redis and Postgres)."""

    seats: dict[int, int] = field(default_factory=dict)
    holds: dict[str, HoldView] = field(default_factory=dict)
    ga: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    sales: dict[str, SaleView] = field(default_factory=dict)


class InventoryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Inventory(SPEC)
        self.model = Model()
        self.sent: list[Command] = []  # every state-changing command ever sent, for retries
        self.hold_ids: list[str] = [NEVER_USED_HOLD]
        self.cmd_count = 0
        self.last_version = 0
        self.restored_since_drain = False
        self.mirror = Mirror(
            seats=dict.fromkeys(range(len(SEATS)), 0),
            ga={code: (cap, cap, 0, 0) for code, cap in GA_CAPACITY.items()},
        )

    # -- helpers --
    def new_cmd_id(self) -> str:
        self.cmd_count += 1
        return f"cmd-{self.cmd_count}"

    def new_hold_id(self) -> str:
        hold_id = f"hld_{EVENT_HEX}{len(self.hold_ids):020x}"
        self.hold_ids.append(hold_id)
        return hold_id

    def send(self, commands: list[Command]) -> list[Result]:
        """Apply one batch to both: expiry first (apply sweeps due holds), then each command in order."""
        answers = self.engine.apply(commands, self.model.now)
        assert len(answers) == len(commands)
        self.model.sweep()
        for cmd, answer in zip(commands, answers, strict=True):
            self.check_one(cmd, answer)
        return answers

    def check_one(self, cmd: Command, answer: Result) -> None:
        model = self.model
        if isinstance(cmd, LookupHold):
            assert_answer(cmd, answer, model.lookup(cmd))
            return
        self.sent.append(cmd)
        first = model.answers.get(cmd.cmd_id)
        if first is not None:
            assert answer == first, f"retry of {cmd} answered {answer}, first {first}"
            return
        assert_answer(cmd, answer, model.execute(cmd, answer))
        event(f"{type(cmd).__name__} -> {answer.code if isinstance(answer, Rejected) else 'ok'}")
        model.answers[cmd.cmd_id] = answer
        if cmd.hold_id in model.pending:
            model.pending_answers.setdefault(cmd.hold_id, []).append(cmd.cmd_id)

    def state(self) -> tuple[object, ...]:
        engine = self.engine
        return engine.snapshot(), engine.seat_counts(), engine.ga_counts(), engine.availability_bitmap()

    def draw_hold_id(self, data: st.DataObject, among: list[str] | None = None) -> str:
        """Mostly a hold that exists now (``among`` when given), sometimes any id ever used, or none."""
        current = list(self.model.holds) if among is None else among
        prefer_current = data.draw(st.integers(0, 3), label="prefer current") > 0
        pool = current if current and prefer_current else self.hold_ids
        return data.draw(st.sampled_from(pool), label="hold_id")

    # -- rules: commands --
    @initialize()
    def start(self) -> None:
        self.engine.check_invariants()

    @rule(
        buyer=st.sampled_from(BUYERS),
        seats=st.lists(st.sampled_from((*SEATS, UNKNOWN_SEAT)), min_size=0, max_size=4),
        ttl_s=ttls,
        with_type=st.integers(0, 9),
    )
    def hold_seats(self, buyer: str, seats: list[str], ttl_s: int | None, with_type: int) -> None:
        ticket_type = "GA" if with_type == 0 else None  # now and then a malformed mix of seats and a type
        cmd = Hold(self.new_cmd_id(), self.new_hold_id(), buyer, tuple(seats), ticket_type, 0, ttl_s)
        self.send([cmd])

    @rule(
        buyer=st.sampled_from(BUYERS),
        ticket_type=st.sampled_from(("GA", "GA", "VIP", UNKNOWN_TYPE)),
        quantity=st.integers(-1, 4),
        ttl_s=ttls,
    )
    def hold_ga(self, buyer: str, ticket_type: str, quantity: int, ttl_s: int | None) -> None:
        cmd = Hold(self.new_cmd_id(), self.new_hold_id(), buyer, (), ticket_type, quantity, ttl_s)
        self.send([cmd])

    @precondition(lambda self: len(self.hold_ids) > 1)
    @rule(data=st.data(), other_buyer=st.booleans())
    def hold_existing_id(self, data: st.DataObject, other_buyer: bool) -> None:
        """A Hold that names an existing (or ended) hold id under a new cmd id."""
        hold_id = data.draw(st.sampled_from(self.hold_ids[1:]), label="hold_id")
        hold = self.model.holds.get(hold_id)
        buyer = hold.buyer_id if hold and not other_buyer else data.draw(st.sampled_from(BUYERS))
        self.send([Hold(self.new_cmd_id(), hold_id, buyer, (), "GA", 1)])

    @rule(data=st.data(), order_ref=st.sampled_from(ORDER_REFS))
    def confirm(self, data: st.DataObject, order_ref: str) -> None:
        self.send([Confirm(self.new_cmd_id(), self.draw_hold_id(data), order_ref, CONFIRMER, None)])

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        self.send([Release(self.new_cmd_id(), self.draw_hold_id(data))])

    @rule(data=st.data())
    def cancel_sale(self, data: st.DataObject) -> None:
        # The core refuses (InvariantViolation) to cancel a sale that is not yet written through; the shell
        # drains between batches, so only drained sales are cancelled here.
        model = self.model
        sold = [h for h, hold in model.holds.items() if hold.order_ref and h not in model.pending]
        hold_id = self.draw_hold_id(data, sold)
        if hold_id not in model.pending:
            self.send([CancelSale(self.new_cmd_id(), hold_id)])

    @precondition(lambda self: any(hold.order_ref for hold in self.model.holds.values()))
    @rule(data=st.data(), shape=st.sampled_from(("some",) * 6 + ("with-unknown", "twice", "none", "pending")))
    def cancel_tickets(self, data: st.DataObject, shape: str) -> None:
        """Give back some of a sale's tickets: live ones, ones given back before (a retry), or ones never sold;
        now and then of a sale not committed yet (refused: the shell drains between batches)."""
        model = self.model
        sold = [h for h, hold in model.holds.items() if hold.order_ref and (h in model.pending) == (shape == "pending")]
        hold_id = self.draw_hold_id(data, sold)
        hold = model.holds.get(hold_id)
        known = [] if hold is None else [*(t.ticket_id for t in hold.tickets), *sorted(hold.given_back)]
        never_sold = f"tkt_{suffix(hold_id)}_99"
        candidates = st.sampled_from(known or [never_sold])
        picked = data.draw(st.lists(candidates, min_size=1, max_size=4, unique=True), label="tickets")
        if shape == "with-unknown":
            picked.append(never_sold)
        elif shape == "twice":
            picked.append(picked[0])
        elif shape == "none":
            picked = []
        self.send([CancelTickets(self.new_cmd_id(), hold_id, tuple(picked))])

    @rule(data=st.data(), ttl_s=extend_ttls)
    def extend(self, data: st.DataObject, ttl_s: int) -> None:
        self.send([ExtendHold(self.new_cmd_id(), self.draw_hold_id(data), ttl_s)])

    @rule(data=st.data())
    def lookup(self, data: st.DataObject) -> None:
        self.send([LookupHold(self.new_cmd_id(), self.draw_hold_id(data))])

    @rule(data=st.data(), size=st.integers(2, 5))
    def mixed_batch(self, data: st.DataObject, size: int) -> None:
        """Several commands in one apply: later ones see the effects of earlier ones."""
        commands: list[Command] = []
        for _ in range(size):
            kind = data.draw(st.sampled_from(("seats", "ga", "confirm", "release", "extend", "retry")))
            cmd_id = self.new_cmd_id()
            if kind == "seats":
                seats = data.draw(st.lists(st.sampled_from(SEATS), min_size=1, max_size=3, unique=True))
                commands.append(Hold(cmd_id, self.new_hold_id(), data.draw(st.sampled_from(BUYERS)), tuple(seats)))
            elif kind == "ga":
                buyer = data.draw(st.sampled_from(BUYERS))
                commands.append(Hold(cmd_id, self.new_hold_id(), buyer, (), "GA", data.draw(st.integers(1, 3))))
            elif kind == "confirm":
                commands.append(Confirm(cmd_id, self.draw_hold_id(data), "o1", CONFIRMER, None))
            elif kind == "release":
                commands.append(Release(cmd_id, self.draw_hold_id(data)))
            elif kind == "extend":
                commands.append(ExtendHold(cmd_id, self.draw_hold_id(data), data.draw(extend_ttls)))
            elif commands:
                commands.append(data.draw(st.sampled_from(commands)))  # the same cmd id twice in one batch
        self.send(commands)

    # -- rules: time --
    @rule(step_s=clock_steps_s)
    def advance_clock(self, step_s: float) -> None:
        self.model.now += step_s

    @rule()
    def expire(self) -> None:
        expired = self.engine.expire(self.model.now)
        assert len(expired) == len(set(expired))
        assert set(expired) == self.model.sweep()

    # -- rules: idempotency --
    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        """Re-send an earlier command unchanged. If its answer is remembered: same answer, nothing changes."""
        pending = self.model.pending
        retryable = [c for c in self.sent if not (isinstance(c, CancelSale) and c.hold_id in pending)]
        cmd = data.draw(st.sampled_from(retryable), label="retried")
        self.send([])  # settle expiry first, so "nothing changes" is about the retry alone
        remembered = self.model.answers.get(cmd.cmd_id)
        before = self.state()
        (answer,) = self.send([cmd])
        if remembered is not None:
            assert answer == remembered
            assert self.state() == before, f"retry of {cmd} changed the state"

    # -- rules: write-through --
    @precondition(lambda self: any(h.order_ref is None for h in self.model.holds.values()))
    @rule(data=st.data())
    def abort_sales(self, data: st.DataObject) -> None:
        """Confirm some holds (maybe twice, maybe touch them again), their commit fails: all as before."""
        self.send([])
        live = [hid for hid, h in self.model.holds.items() if h.order_ref is None]
        if not live:
            return
        chosen = data.draw(st.lists(st.sampled_from(live), min_size=1, unique=True), label="confirmed")
        before = self.state()
        commands: list[Command] = [Confirm(self.new_cmd_id(), hid, "o1", CONFIRMER, None) for hid in chosen]
        for hid in chosen:  # commands whose answers depend on the sale that will be aborted
            extra = data.draw(st.sampled_from(
                ("none", "confirm-same", "confirm-other", "release", "hold", "extend", "cancel-tickets")
            ))
            if extra.startswith("confirm"):
                order_ref = "o1" if extra == "confirm-same" else "o2"
                commands.append(Confirm(self.new_cmd_id(), hid, order_ref, CONFIRMER, None))
            elif extra == "release":
                commands.append(Release(self.new_cmd_id(), hid))
            elif extra == "hold":
                commands.append(Hold(self.new_cmd_id(), hid, self.model.holds[hid].buyer_id, (), "GA", 1))
            elif extra == "extend":
                commands.append(ExtendHold(self.new_cmd_id(), hid, limits.payment_window_s_max))
            elif extra == "cancel-tickets":  # refused: the sale is not committed yet
                commands.append(CancelTickets(self.new_cmd_id(), hid, (f"tkt_{suffix(hid)}_1",)))
        self.send(commands)
        sweep_during_commit = data.draw(st.booleans(), label="sweep during commit")
        if sweep_during_commit:  # the shell's sweeper runs while the commit is in flight
            self.advance_clock(data.draw(clock_steps_s))
            self.expire()
        self.engine.abort_sales(chosen)
        self.model.abort(chosen)
        if not sweep_during_commit:
            assert self.state() == before, "abort_sales did not put the holds back as they were"

    @rule()
    def drain_changes(self) -> None:
        changes = self.engine.drain_changes()
        if changes is not None:
            assert changes.version > self.last_version
            assert changes.version == self.engine.version
            self.last_version = changes.version
            assert changes.full == self.restored_since_drain
            self.write_through(changes)
        else:
            assert not self.restored_since_drain, "a restore must ask for a full rewrite"
        self.restored_since_drain = False
        self.model.pending.clear()
        self.model.pending_answers.clear()
        model = self.model
        states = model.seat_states()
        assert self.mirror.seats == {i: ("available", "held", "sold").index(states[s]) for i, s in enumerate(SEATS)}
        assert self.mirror.holds == model.live_views()
        assert self.mirror.ga == model.ga_counts()
        assert self.mirror.sales == model.sales()

    def write_through(self, changes: Changes) -> None:
        assert not set(changes.holds_put) & changes.holds_removed
        assert not set(changes.sales) & set(changes.sales_cancelled)
        live = self.model.live_views()
        assert not changes.holds_removed & set(live), "a live hold was drained as removed"
        mirror = self.mirror
        if changes.full:  # the Redis side is rewritten whole; Postgres keeps its sales
            mirror.seats = {i: self.engine.seat_state(i) for i in range(len(SEATS))}
            mirror.holds = {v.hold_id: v for v in self.engine.snapshot().holds}
        mirror.seats.update(changes.seats)
        for hold_id in changes.holds_removed:
            mirror.holds.pop(hold_id, None)
        mirror.holds.update(changes.holds_put)
        counts = self.engine.ga_counts()
        mirror.ga.update({code: counts[code] for code in changes.ga_types})
        for hold_id, given_back in changes.tickets_cancelled.items():  # written before the sales cancelled
            sale = mirror.sales.get(hold_id)
            assert sale is not None, f"sale {hold_id} gave back tickets but was never written"
            going = {t.ticket_id for t in given_back.tickets}
            assert going <= {t.ticket_id for t in sale.tickets}, f"sale {hold_id} gave back tickets it lacks"
            mirror.sales[hold_id] = replace(sale, tickets=tuple(t for t in sale.tickets if t.ticket_id not in going))
        for hold_id in changes.sales_cancelled:
            assert mirror.sales.pop(hold_id, None) is not None, f"cancelled sale {hold_id} was never written"
        for hold_id, sale in changes.sales.items():
            assert hold_id not in mirror.sales, f"sale {hold_id} written twice"
            mirror.sales[hold_id] = sale

    @rule(downtime_s=st.sampled_from([0.0, 0.0, HOLD_TTL_S + 1.0]))
    def restore(self, downtime_s: float) -> None:
        """A restart (maybe after a while down: holds expire meanwhile) from a snapshot of holds and sales."""
        snapshot = self.engine.snapshot()
        self.model.now += downtime_s
        self.engine = Inventory.restore(SPEC, snapshot, self.model.now)
        self.mirror.sales = {sale.hold_id: sale for sale in snapshot.sales}  # recovery reads Postgres's sales
        assert self.engine.version == snapshot.version
        self.model.restore()
        self.restored_since_drain = True

    # -- invariants --
    @invariant()
    def engine_invariants_hold(self) -> None:
        self.engine.check_invariants()

    @invariant()
    def counts_add_up_and_match_the_model(self) -> None:
        available, held, sold = self.engine.seat_counts()
        assert available + held + sold == len(SEATS)
        states = list(self.model.seat_states().values())
        assert (available, held, sold) == tuple(states.count(s) for s in ("available", "held", "sold"))
        ga = self.engine.ga_counts()
        for capacity, available, held, sold in ga.values():
            assert available + held + sold == capacity
        assert ga == self.model.ga_counts()

    @invariant()
    def holds_and_sales_are_disjoint_and_in_range(self) -> None:
        snapshot = self.engine.snapshot()
        seats = [s for h in snapshot.holds for s in h.seats]
        seats += [t.seat_id for sale in snapshot.sales for t in sale.tickets if t.seat_id is not None]
        assert len(seats) == len(set(seats)), "a seat in two holds or sales"
        for code, capacity in GA_CAPACITY.items():
            units = [u for h in snapshot.holds if h.ticket_type == code for u in h.units]
            units += [t.unit for s in snapshot.sales for t in s.tickets if t.ticket_type == code and t.unit]
            assert len(units) == len(set(units)), f"a {code} unit in two holds or sales"
            assert all(1 <= u <= capacity for u in units)
        per_buyer: dict[str, int] = {}
        for view in snapshot.holds:
            per_buyer[view.buyer_id] = per_buyer.get(view.buyer_id, 0) + view.quantity
        for sale in snapshot.sales:
            per_buyer[sale.buyer_id] = per_buyer.get(sale.buyer_id, 0) + len(sale.tickets)
        assert all(n <= MAX_PER_BUYER for n in per_buyer.values()), per_buyer

    @invariant()
    def engine_state_equals_the_model(self) -> None:
        snapshot = self.engine.snapshot()
        assert {v.hold_id: v for v in snapshot.holds} == self.model.live_views()
        assert {s.hold_id: s for s in snapshot.sales} == self.model.sales()

    @invariant()
    def bitmap_matches_seat_states(self) -> None:
        states = [("available", "held", "sold")[self.engine.seat_state(i)] for i in range(len(SEATS))]
        assert states == list(self.model.seat_states().values())
        assert self.engine.availability_bitmap() == expected_bitmap(states)


InventoryMachine.TestCase.settings = settings(
    max_examples=500,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    report_multiple_bugs=False,
)
TestInventoryMachine = InventoryMachine.TestCase


def test_model_is_not_vacuous() -> None:
    """Guard against a model that agrees with the engine by never reaching interesting states."""
    model = Model()
    first = Hold("c1", f"hld_{EVENT_HEX}{1:020x}", "b1", ("A-1-1",))
    expected = model.hold(first, Ok(None))
    assert isinstance(expected, Ok)
    clash = model.hold(Hold("c2", f"hld_{EVENT_HEX}{2:020x}", "b2", ("A-1-1", "A-1-2")), Ok(None))
    assert clash == Refusal("seats_unavailable", {"seats": ["A-1-1"]})
