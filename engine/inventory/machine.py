"""One event's inventory: seated seats and GA ticket types, as a serialized state machine.

Rules (asserted, never repaired):
- a seat is exactly one of available / held / sold;
- per GA type, held + sold <= capacity; units are numbered 1..capacity and each is in at most one hold or sale;
- per buyer, held + bought <= max_tickets_per_buyer;
- holds are all-or-nothing; an expired hold cannot be confirmed; a TTL never exceeds the event's hold_ttl_s;
- an extension (ExtendHold: checkout's payment window) never shortens a hold and reaches at most
  payment_window_s_max past its time; an expired, released or sold hold is never extended;
- a best-available hold's seats are picked (engine/inventory/best_available.py) and held in the same step;
- a committed sale may give back some of its tickets (CancelTickets: a partial refund), each at most once; their
  seats and units are free at once, and a sale with no ticket left has ended as if cancelled.

The shell calls ``apply`` with a batch and the current time, then ``drain_changes`` to learn what to write through.
If the sales of a batch fail to commit, ``abort_sales`` puts their holds back exactly as they were.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine import limits
from engine.catalog import rules as catalog
from engine.catalog.rules import TicketKind
from engine.ids import sale_id_of_hold, ticket_id_of_hold
from engine.inventory.best_available import (
    BestRequest,
    SeatFinder,
    SeatGeometry,
    Shortfall,
    geometry_from_seat_ids,
)
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
    SetCapacity,
    TicketView,
)
from engine.refusals import Refusal

SEAT_AVAILABLE = 0
SEAT_HELD = 1
SEAT_SOLD = 2
SEAT_BLOCKED = 3  # a seat no ticket type sells (on a layout: not for sale, or in no type's zone); never changes
SEAT_STATE_NAMES = ("available", "held", "sold", "blocked")
_AVAILABLE_BIT_CHARS = bytes.maketrans(b"\x00\x01\x02\x03", b"1000")
_SOLD_BIT_CHARS = bytes.maketrans(b"\x00\x01\x02\x03", b"0010")
ended_holds_remembered_max = 65_536


class InvariantViolation(AssertionError):
    """The inventory's state broke a rule. The owner must stop serving: never repair silently."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantViolation(message)


@dataclass(frozen=True, slots=True)
class InventorySpec:
    """The static shape of one event's inventory: a stocked event's (engine/catalog/rules.py), whose rules it
    asserts."""

    event_id: str
    seat_ids: tuple[str, ...]
    seated_type: str | None
    ga_capacity: tuple[tuple[str, int], ...]
    hold_ttl_s: int
    max_tickets_per_buyer: int
    # per seat index, the seated ticket type selling it, None: blocked (an event on a layout with zones:
    # engine/catalog/layout_events.py); empty: every seat is ``seated_type``'s
    seat_types: tuple[str | None, ...] = ()

    @property
    def seated_types(self) -> tuple[str, ...]:
        """The seated ticket types with seats, ``seated_type`` first."""
        codes = dict.fromkeys(() if self.seated_type is None else (self.seated_type,))
        codes.update(dict.fromkeys(code for code in self.seat_types if code is not None))
        return tuple(codes)
    # per GA type whose capacity once was higher (it shrank since): the highest unit number ever issuable, so
    # units sold before the shrink stay valid (catalog lifecycle; Postgres keeps it as ticket_types.units_max)
    ga_units_max: tuple[tuple[str, int], ...] = ()
    # where each seat is, for best-available holds; None: read from the seat ids (geometry_from_seat_ids)
    geometry: SeatGeometry | None = None

    def __post_init__(self) -> None:
        if self.seat_types:
            counts = {code: 0 for code in self.seated_types}
            for code in self.seat_types:
                if code is not None:
                    counts[code] += 1
            seated = tuple((code, TicketKind.SEATED, n) for code, n in counts.items() if n)
        elif self.seated_type is not None:
            seated = ((self.seated_type, TicketKind.SEATED, len(self.seat_ids)),)
        else:
            seated = ()
        ga = tuple((code, TicketKind.GA, capacity) for code, capacity in self.ga_capacity)
        problems = [
            *catalog.stock_problems(self.seat_ids, (*seated, *ga), self.seat_types),
            *catalog.sale_limit_problems(self.hold_ttl_s, self.max_tickets_per_buyer),
        ]
        if problems:
            raise ValueError(catalog.describe(problems))
        if self.geometry is not None and len(self.geometry) != len(self.seat_ids):
            raise ValueError(f"geometry: {len(self.geometry)} places for {len(self.seat_ids)} seats")


@dataclass(slots=True)
class _Hold:
    hold_id: str
    buyer_id: str
    seats: tuple[int, ...]
    ticket_type: str
    units: tuple[int, ...]
    expires_at: float
    sale: SaleView | None = None
    # ids of the sale's tickets given back (CancelTickets): a retry skips them, where an id never sold is refused
    tickets_cancelled: set[str] = field(default_factory=set)

    @property
    def size(self) -> int:
        return len(self.seats) or len(self.units)


@dataclass(slots=True)
class _GaType:
    capacity: int
    units_max: int  # units are numbered 1..units_max: the highest capacity the type ever had
    held: int = 0
    sold: int = 0
    next_unit: int = 1
    free_units: list[int] = field(default_factory=list)

    @property
    def available(self) -> int:
        return self.capacity - self.held - self.sold

    def take(self, quantity: int) -> tuple[int, ...]:
        reused = min(quantity, len(self.free_units))
        units = [self.free_units.pop() for _ in range(reused)]
        fresh = quantity - reused
        units.extend(range(self.next_unit, self.next_unit + fresh))
        self.next_unit += fresh
        return tuple(units)


@dataclass(slots=True)
class Changes:
    """What changed since the last drain: the shell writes exactly this through to Redis and Postgres.

    A hold id is in at most one of ``holds_put`` (live now) and ``holds_removed`` (no longer live).
    ``seats`` maps seat index -> final state. ``full`` asks for every cache to be rewritten (after a restore).
    """

    version: int
    holds_put: dict[str, HoldView] = field(default_factory=dict)
    holds_removed: set[str] = field(default_factory=set)
    seats: dict[int, int] = field(default_factory=dict)
    ga_types: set[str] = field(default_factory=set)
    sales: dict[str, SaleView] = field(default_factory=dict)
    sales_cancelled: dict[str, SaleView] = field(default_factory=dict)
    # hold id -> the tickets its sale gave back since the last drain (a SaleView of just those; the sale stands:
    # once its last ticket goes, it is in sales_cancelled instead, with the tickets it had then)
    tickets_cancelled: dict[str, SaleView] = field(default_factory=dict)
    capacities: dict[str, tuple[int, int, str, str | None]] = field(default_factory=dict)  # code -> (before,
    # after, by, ip) of a capacity changed since the last drain: the shell commits it (fenced) before writing Redis
    full: bool = False  # True after a restore: rewrite every cached structure, not just the deltas

    def is_empty(self) -> bool:
        return not (
            self.holds_put
            or self.holds_removed
            or self.seats
            or self.ga_types
            or self.sales
            or self.sales_cancelled
            or self.tickets_cancelled
            or self.capacities
            or self.full
        )


@dataclass(frozen=True, slots=True)
class InventorySnapshot:
    """Everything needed to rebuild an inventory: live holds (Redis) and sales (Postgres), each sale with its live
    tickets only; ``tickets_cancelled`` (Postgres) names the tickets live sales gave back, as (hold id, ticket id),
    so a retried CancelTickets still answers Ok after a rebuild."""

    version: int
    holds: tuple[HoldView, ...]
    sales: tuple[SaleView, ...]
    tickets_cancelled: tuple[tuple[str, str], ...] = ()


class Inventory:
    def __init__(self, spec: InventorySpec, version: int = 0) -> None:
        self.spec = spec
        self.version = version
        self._seat_index = {seat_id: i for i, seat_id in enumerate(spec.seat_ids)}
        self._seats = bytearray(len(spec.seat_ids))
        self._seats_held = 0
        self._seats_sold = 0
        # Several seated types, or blocked seats: each seat's type, and per type its seats by state
        # [available, held, sold] (kept as seats change state); else None and the seat counts are the one type's.
        self._seat_type = spec.seat_types
        self._type_counts: dict[str, list[int]] | None = None
        self._seats_blocked = 0
        if spec.seat_types:
            self._type_counts = {code: [0, 0, 0] for code in spec.seated_types}
            for index, code in enumerate(spec.seat_types):
                if code is None:
                    self._seats[index] = SEAT_BLOCKED
                    self._seats_blocked += 1
                else:
                    self._type_counts[code][SEAT_AVAILABLE] += 1
        units_max = dict(spec.ga_units_max)
        self._ga = {
            code: _GaType(capacity, max(capacity, units_max.get(code, 0))) for code, capacity in spec.ga_capacity
        }
        self._holds: dict[str, _Hold] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._buyer_tickets: dict[str, int] = {}
        self._results: OrderedDict[str, Result] = OrderedDict()
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._journal = Changes(version)
        # hold id -> cmd ids answered while its sale was pending: an abort must forget all of those answers
        self._confirm_cmds: dict[str, list[str]] = {}
        self._restored_units: dict[str, set[int]] = {}
        # The sale gate, set by the shell from the event's status (engine/catalog/lifecycle.py): not journaled,
        # since it lives in Postgres (the status) and is set again on every recovery.
        self._holds_open = True
        self._confirms_open = True
        self._finder: SeatFinder | None = None  # best available's index, made on the first such hold

    # ---- the batch interface -------------------------------------------------------------------------------

    def apply(self, commands: Sequence[Command], now: float) -> list[Result]:
        """Apply commands in order at time ``now``; answer each. A repeated cmd_id gets its first answer."""
        if len(commands) > limits.batch_commands_max:
            refusal = Rejected(Refusal.BATCH_TOO_LARGE, f"at most {limits.batch_commands_max} commands per batch")
            return [refusal] * len(commands)
        self._expire_due(now, limits.expire_batch_holds_max)
        results = [self._apply_one(command, now) for command in commands]
        self._check_counts()
        return results

    def expire(self, now: float, holds_max: int = limits.expire_batch_holds_max) -> list[str]:
        """Expire at most ``holds_max`` holds whose time has come; returns their ids."""
        expired = self._expire_due(now, holds_max)
        self._check_counts()
        return expired

    def drain_changes(self) -> Changes | None:
        """Hand the shell what changed since the last drain (None when nothing did); each drain is a version."""
        if self._journal.is_empty():
            return None
        self.version += 1
        changes = self._journal
        changes.version = self.version
        self._journal = Changes(self.version)
        self._confirm_cmds.clear()
        return changes

    def pending_sales(self) -> tuple[list[SaleView], list[SaleView]]:
        """Sales made and cancelled since the last drain: the shell commits these before it drains."""
        return list(self._journal.sales.values()), list(self._journal.sales_cancelled.values())

    def pending_ticket_cancels(self) -> list[SaleView]:
        """Tickets given back by sales that stand, since the last drain (each a SaleView of just those tickets):
        the shell commits these with the sales, before it drains."""
        return list(self._journal.tickets_cancelled.values())

    def pending_capacities(self) -> dict[str, tuple[int, int, str, str | None]]:
        """Capacities changed since the last drain, code -> (before, after, by, ip): committed before the drain."""
        return dict(self._journal.capacities)

    def set_gate(self, *, holds_open: bool, confirms_open: bool) -> None:
        """What the event's status lets buyers do: new holds, confirms (releases and lookups always work)."""
        self._holds_open = holds_open
        self._confirms_open = confirms_open

    def set_limits(self, *, hold_ttl_s: int, max_tickets_per_buyer: int) -> None:
        """The event's new sale limits (an organizer's edit): they bound new holds; existing holds keep their
        expiry. The catalog lets max_tickets_per_buyer only grow once the inventory is live, so no buyer is over."""
        self.spec = dataclasses.replace(self.spec, hold_ttl_s=hold_ttl_s, max_tickets_per_buyer=max_tickets_per_buyer)

    def nothing_left(self) -> bool:
        """Every seat and every GA unit is held or sold (the catalog calls the event sold out)."""
        return self._seats_held + self._seats_sold == len(self._seats) and all(
            ga.available <= 0 for ga in self._ga.values()
        )

    def abort_sales(self, hold_ids: Iterable[str]) -> None:
        """Undo not-yet-drained confirms whose commit failed: their holds are held again, as before."""
        for hold_id in hold_ids:
            sale = self._journal.sales.pop(hold_id, None)
            hold = self._holds.get(hold_id)
            _require(sale is not None and hold is not None and hold.sale is sale, f"no pending sale {hold_id}")
            assert hold is not None
            hold.sale = None
            # a sweep while the sale was pending dropped its heap entry (sold holds do not expire)
            heapq.heappush(self._expiry_heap, (hold.expires_at, hold_id))
            self._mark_seats(hold.seats, SEAT_HELD)
            self._seats_sold -= len(hold.seats)
            self._seats_held += len(hold.seats)
            if hold.units:
                ga = self._ga[hold.ticket_type]
                ga.sold -= len(hold.units)
                ga.held += len(hold.units)
                self._journal.ga_types.add(hold.ticket_type)
            self._journal.holds_removed.discard(hold_id)
            self._journal.holds_put[hold_id] = self._view(hold)
            for cmd_id in self._confirm_cmds.pop(hold_id, ()):
                self._results.pop(cmd_id, None)
        self._check_counts()

    # ---- reads ---------------------------------------------------------------------------------------------

    def seat_counts(self) -> tuple[int, int, int]:
        """(available, held, sold) seats (blocked seats are none of these)."""
        total = len(self._seats) - self._seats_blocked
        return total - self._seats_held - self._seats_sold, self._seats_held, self._seats_sold

    def seated_counts(self) -> dict[str, tuple[int, int, int, int]]:
        """Per seated type: (capacity, available, held, sold), in the spec's order (``seated_types``)."""
        if self._type_counts is None:
            code = self.spec.seated_type
            return {} if code is None else {code: (len(self._seats), *self.seat_counts())}
        return {code: (sum(c), c[0], c[1], c[2]) for code, c in self._type_counts.items()}

    def ga_counts(self) -> dict[str, tuple[int, int, int, int]]:
        """Per GA type: (capacity, available, held, sold)."""
        return {code: (ga.capacity, ga.available, ga.held, ga.sold) for code, ga in self._ga.items()}

    def availability_bitmap(self) -> bytes:
        """Bit i is 1 when seat i is available, most significant bit first."""
        return self._bitmap(_AVAILABLE_BIT_CHARS)

    def sold_bitmap(self) -> bytes:
        """Bit i is 1 when seat i is sold, most significant bit first."""
        return self._bitmap(_SOLD_BIT_CHARS)

    def _bitmap(self, bit_chars: bytes) -> bytes:
        if not self._seats:
            return b""
        bits = self._seats.translate(bit_chars)
        padding = -len(bits) % 8
        return int(bits + b"0" * padding, 2).to_bytes((len(bits) + padding) // 8, "big")

    def seat_state(self, index: int) -> int:
        return self._seats[index]

    def live_hold_ids(self) -> list[str]:
        return [hold_id for hold_id, hold in self._holds.items() if hold.sale is None]

    def snapshot(self) -> InventorySnapshot:
        holds = tuple(self._view(h) for h in self._holds.values() if h.sale is None)
        sales = tuple(h.sale for h in self._holds.values() if h.sale is not None)
        given_back = tuple(
            (h.hold_id, ticket_id) for h in self._holds.values() for ticket_id in sorted(h.tickets_cancelled)
        )
        return InventorySnapshot(self.version, holds, sales, given_back)

    # ---- rebuild -------------------------------------------------------------------------------------------

    @classmethod
    def restore(cls, spec: InventorySpec, snapshot: InventorySnapshot, now: float) -> Inventory:
        """Rebuild from sales (the truth) and live holds; drop expired or already-sold holds; check everything.

        The returned inventory's pending changes are a full rewrite, so the shell refreshes every cache.
        """
        inventory = cls(spec, snapshot.version)
        sold_holds = {sale.hold_id for sale in snapshot.sales}
        for sale in snapshot.sales:
            inventory._restore_sale(sale)
        for hold_id, ticket_id in snapshot.tickets_cancelled:
            inventory._restore_ticket_cancelled(hold_id, ticket_id)
        sold_units = {code: set(units) for code, units in inventory._restored_units.items()}
        dropped = set()
        for view in snapshot.holds:
            # A hold on what a sale took is a leftover from a Redis that went back in time (an fsync window, a
            # failover): that hold ended before the sale was made, so the sales, being the truth, win.
            if view.hold_id in sold_holds or view.expires_at <= now or inventory._sold_under(view, sold_units):
                dropped.add(view.hold_id)
                if view.hold_id not in sold_holds:  # a late confirm still answers hold_expired, not not-found
                    inventory._ended[view.hold_id] = "expired"
            else:
                inventory._restore_hold(view)
        inventory._settle_restored_units()
        inventory.check_invariants()
        journal = inventory._journal
        journal.full = True
        journal.holds_removed = dropped
        journal.ga_types = set(inventory._ga)
        return inventory

    def _sold_under(self, view: HoldView, sold_units: dict[str, set[int]]) -> bool:
        index_of = self._seat_index
        seats_sold = any(
            (i := index_of.get(seat_id)) is not None and self._seats[i] == SEAT_SOLD for seat_id in view.seats
        )
        return seats_sold or any(unit in sold_units.get(view.ticket_type, ()) for unit in view.units)

    def _restore_sale(self, sale: SaleView) -> None:
        _require(sale.hold_id not in self._holds, f"two sales for hold {sale.hold_id}")
        seats = [t.seat_id for t in sale.tickets if t.seat_id is not None]
        units = [t.unit for t in sale.tickets if t.unit is not None]
        ticket_type = sale.tickets[0].ticket_type if sale.tickets else ""
        hold = self._claim(sale.hold_id, sale.buyer_id, seats, ticket_type, units, SEAT_SOLD, 0.0)
        hold.sale = sale

    def _restore_ticket_cancelled(self, hold_id: str, ticket_id: str) -> None:
        hold = self._holds.get(hold_id)
        _require(hold is not None and hold.sale is not None, f"ticket {ticket_id} given back by no sale {hold_id}")
        assert hold is not None and hold.sale is not None
        _require(
            all(t.ticket_id != ticket_id for t in hold.sale.tickets), f"ticket {ticket_id} both live and given back"
        )
        hold.tickets_cancelled.add(ticket_id)

    def _restore_hold(self, view: HoldView) -> None:
        _require(view.hold_id not in self._holds, f"hold {view.hold_id} restored twice")
        hold = self._claim(
            view.hold_id, view.buyer_id, list(view.seats), view.ticket_type, list(view.units), SEAT_HELD,
            view.expires_at,
        )
        heapq.heappush(self._expiry_heap, (hold.expires_at, hold.hold_id))

    def _claim(
        self, hold_id: str, buyer_id: str, seat_ids: list[str], ticket_type: str, units: list[int],
        state: int, expires_at: float,
    ) -> _Hold:
        indices = []
        for seat_id in seat_ids:
            index = self._seat_index.get(seat_id)
            _require(index is not None, f"unknown seat {seat_id} in {hold_id}")
            assert index is not None
            _require(self._seats[index] == SEAT_AVAILABLE, f"seat {seat_id} claimed twice ({hold_id})")
            self._seats[index] = state
            self._count_move(index, SEAT_AVAILABLE, state)
            indices.append(index)
        if state == SEAT_SOLD:
            self._seats_sold += len(indices)
        else:
            self._seats_held += len(indices)
        if units:
            self._claim_units(hold_id, ticket_type, units, state)
        hold = _Hold(hold_id, buyer_id, tuple(indices), ticket_type, tuple(units), expires_at)
        self._holds[hold_id] = hold
        self._buyer_tickets[buyer_id] = self._buyer_tickets.get(buyer_id, 0) + hold.size
        return hold

    def _claim_units(self, hold_id: str, ticket_type: str, units: list[int], state: int) -> None:
        ga = self._ga.get(ticket_type)
        _require(ga is not None, f"unknown ticket type {ticket_type} in {hold_id}")
        assert ga is not None
        claimed = self._restored_units.setdefault(ticket_type, set())
        for unit in units:
            _require(1 <= unit <= ga.units_max, f"unit {unit} of {ticket_type} out of 1..{ga.units_max}")
            _require(unit not in claimed, f"unit {unit} of {ticket_type} claimed twice ({hold_id})")
            claimed.add(unit)
        if state == SEAT_SOLD:
            ga.sold += len(units)
        else:
            ga.held += len(units)

    def _settle_restored_units(self) -> None:
        for code, claimed in self._restored_units.items():
            ga = self._ga[code]
            ga.next_unit = max(claimed, default=0) + 1
            ga.free_units = sorted(set(range(1, ga.next_unit)) - claimed, reverse=True)
        self._restored_units.clear()

    # ---- invariants ----------------------------------------------------------------------------------------

    def _check_counts(self) -> None:
        """The cheap per-batch check: counters agree with the seat array and the GA bounds hold."""
        _require(self._seats.count(SEAT_HELD) == self._seats_held, "held seat count drifted")
        _require(self._seats.count(SEAT_SOLD) == self._seats_sold, "sold seat count drifted")
        _require(self._seats.count(SEAT_BLOCKED) == self._seats_blocked, "blocked seat count drifted")
        for code, ga in self._ga.items():
            _require(ga.held >= 0 and ga.sold >= 0, f"negative GA count for {code}")
            _require(ga.held + ga.sold <= ga.capacity, f"GA {code} over capacity")

    def check_invariants(self) -> None:
        """The full check: recompute every count from the holds and compare."""
        self._check_counts()
        seen_seats: dict[int, str] = {}
        ga_held = dict.fromkeys(self._ga, 0)
        ga_sold = dict.fromkeys(self._ga, 0)
        buyers: dict[str, int] = {}
        for hold in self._holds.values():
            state = SEAT_SOLD if hold.sale else SEAT_HELD
            for index in hold.seats:
                _require(index not in seen_seats, f"seat {index} in {seen_seats.get(index)} and {hold.hold_id}")
                _require(self._seats[index] == state, f"seat {index} state disagrees with {hold.hold_id}")
                seen_seats[index] = hold.hold_id
            if hold.units:
                (ga_sold if hold.sale else ga_held)[hold.ticket_type] += len(hold.units)
            if hold.sale is not None:  # a sale's live tickets are exactly its hold's seats and units
                live = {t.ticket_id for t in hold.sale.tickets}
                _require(len(live) == len(hold.sale.tickets) == hold.size, f"sale of {hold.hold_id}: ticket count")
                _require(not live & hold.tickets_cancelled, f"sale of {hold.hold_id}: a ticket live and given back")
            else:
                _require(not hold.tickets_cancelled, f"hold {hold.hold_id} gave back tickets it never sold")
            buyers[hold.buyer_id] = buyers.get(hold.buyer_id, 0) + hold.size
        _require(len(seen_seats) == self._seats_held + self._seats_sold, "seat array has orphan claims")
        due = set(self._expiry_heap)
        _require(
            all((h.expires_at, h.hold_id) in due for h in self._holds.values() if h.sale is None),
            "a live hold is not in the expiry heap at its expires_at",
        )
        for code, ga in self._ga.items():
            _require((ga.held, ga.sold) == (ga_held[code], ga_sold[code]), f"GA {code} counts drifted")
            _require(len(ga.free_units) + ga.held + ga.sold == ga.next_unit - 1, f"GA {code} units leak")
        _require(buyers == {b: n for b, n in self._buyer_tickets.items() if n}, "buyer counts drifted")
        limit = self.spec.max_tickets_per_buyer
        _require(all(n <= limit for n in buyers.values()), "a buyer is over max_tickets_per_buyer")

    # ---- commands ------------------------------------------------------------------------------------------

    def _apply_one(self, command: Command, now: float) -> Result:
        if isinstance(command, LookupHold):
            return self._lookup(command.hold_id, now)
        previous = self._results.get(command.cmd_id)
        if previous is not None:
            return previous
        if isinstance(command, Hold):
            result = self._hold(command, now)
        elif isinstance(command, Confirm):
            result = self._confirm(command, now)
        elif isinstance(command, Release):
            result = self._release(command.hold_id, now)
        elif isinstance(command, SetCapacity):
            result = self._set_capacity(command)
        elif isinstance(command, ExtendHold):
            result = self._extend(command, now)
        elif isinstance(command, CancelTickets):
            result = self._cancel_tickets(command)
        else:
            result = self._cancel_sale(command)
        self._remember(command.cmd_id, result)
        if command.hold_id in self._journal.sales:
            self._confirm_cmds.setdefault(command.hold_id, []).append(command.cmd_id)
        return result

    def _remember(self, cmd_id: str, result: Result) -> None:
        self._results[cmd_id] = result
        if len(self._results) > limits.idempotency_records_max:
            self._results.popitem(last=False)

    def _hold(self, command: Hold, now: float) -> Result:
        existing = self._holds.get(command.hold_id)
        if existing is not None:
            if existing.buyer_id != command.buyer_id:
                return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold id already used", {"hold_id": command.hold_id})
            return Ok(self._view(existing))
        if not self._holds_open:
            return Rejected(Refusal.NOT_ON_SALE, "the event is not on sale", {"event_id": self.spec.event_id})
        if self._ended.get(command.hold_id) == "cancelled":
            # Its sale id is taken (a cancelled sale keeps its row): a new sale under it could never commit.
            return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold id already used", {"hold_id": command.hold_id})
        ttl_s = self.spec.hold_ttl_s if command.ttl_s is None else command.ttl_s
        if not limits.hold_ttl_s_min <= ttl_s <= self.spec.hold_ttl_s:
            return Rejected(
                Refusal.INVALID_HOLD_REQUEST, f"ttl_s must be 1..{self.spec.hold_ttl_s}", {"field": "ttl_s"}
            )
        if command.best_available is not None:
            if command.seats or command.ticket_type is not None or command.quantity:
                return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold seats, a quantity of one type, or best available")
            return self._hold_best(command, now + ttl_s)
        if command.seats and command.ticket_type is None and command.quantity == 0:
            return self._hold_seats(command, now + ttl_s)
        if not command.seats and command.ticket_type is not None and command.quantity > 0:
            return self._hold_units(command, now + ttl_s)
        return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold either seats or a quantity of one ticket type")

    def _buyer_room(self, buyer_id: str, size: int) -> Rejected | None:
        held_or_bought = self._buyer_tickets.get(buyer_id, 0)
        limit = self.spec.max_tickets_per_buyer
        if held_or_bought + size <= limit:
            return None
        return Rejected(
            Refusal.BUYER_LIMIT_EXCEEDED,
            f"a buyer may hold and buy at most {limit} tickets",
            {"max_tickets_per_buyer": limit, "held_or_bought": held_or_bought, "requested": size},
        )

    def _hold_seats(self, command: Hold, expires_at: float) -> Result:
        seat_ids = command.seats
        if len(seat_ids) > limits.seats_per_hold_max or len(set(seat_ids)) != len(seat_ids):
            return Rejected(Refusal.INVALID_HOLD_REQUEST, f"1..{limits.seats_per_hold_max} distinct seats per hold")
        index_of = self._seat_index
        unknown = [s for s in seat_ids if s not in index_of]
        if unknown:
            return Rejected(Refusal.UNKNOWN_SEATS, "no such seats in this event", {"seats": unknown})
        refusal = self._buyer_room(command.buyer_id, len(seat_ids))
        if refusal:
            return refusal
        indices = tuple(index_of[s] for s in seat_ids)
        seats = self._seats
        taken = [seat_ids[k] for k, i in enumerate(indices) if seats[i] != SEAT_AVAILABLE]
        if taken:
            return Rejected(Refusal.SEATS_UNAVAILABLE, "some seats are no longer available", {"seats": taken})
        self._mark_seats(indices, SEAT_HELD)
        self._seats_held += len(indices)
        hold = _Hold(command.hold_id, command.buyer_id, indices, self._type_of_seat(indices[0]), (), expires_at)
        return Ok(self._place(hold))

    def _hold_best(self, command: Hold, expires_at: float) -> Result:
        """The best available seats (engine/inventory/best_available.py), chosen and held in this one step."""
        request = command.best_available
        assert request is not None
        if self.spec.seated_type is None:
            return _bad_best("best_available", "this event has no seats")
        if not 1 <= request.quantity <= limits.seats_per_hold_max:
            return _bad_best("best_available.quantity", f"must be 1..{limits.seats_per_hold_max}")
        finder = self._seat_finder()
        if request.zone is not None and request.zone not in finder.geometry.zones:
            return _bad_best("best_available.zone", "no such zone in this event")
        bad_fallback = _bad_fallback_zones(request, finder.geometry.zones)
        if bad_fallback:
            return bad_fallback
        refusal = self._buyer_room(command.buyer_id, request.quantity)
        if refusal:
            return refusal
        picked = finder.find(request)
        if isinstance(picked, Shortfall):
            return Rejected(
                Refusal.INSUFFICIENT_INVENTORY,
                "not enough seats left",
                {"available": picked.available, "zone": request.zone, "attributes": list(request.attributes),
                 "fallback_zones": list(request.fallback_zones)},
            )
        self._mark_seats(picked, SEAT_HELD)
        self._seats_held += len(picked)
        hold = _Hold(command.hold_id, command.buyer_id, picked, self.spec.seated_type, (), expires_at)
        return Ok(self._place(hold))

    def _seat_finder(self) -> SeatFinder:
        if self._finder is None:
            geometry = self.spec.geometry
            if geometry is None:
                geometry = geometry_from_seat_ids(self.spec.seat_ids)
            self._finder = SeatFinder(geometry, self._seats)
        return self._finder

    def _hold_units(self, command: Hold, expires_at: float) -> Result:
        code = command.ticket_type
        assert code is not None
        ga = self._ga.get(code)
        if ga is None:
            return Rejected(Refusal.UNKNOWN_TICKET_TYPE, "no such GA ticket type", {"ticket_type": code})
        if command.quantity > limits.quantity_per_hold_max:
            return Rejected(Refusal.INVALID_HOLD_REQUEST, f"quantity must be 1..{limits.quantity_per_hold_max}")
        refusal = self._buyer_room(command.buyer_id, command.quantity)
        if refusal:
            return refusal
        if command.quantity > ga.available:
            return Rejected(
                Refusal.INSUFFICIENT_INVENTORY,
                "not enough tickets left",
                {"ticket_type": code, "available": ga.available},
            )
        units = ga.take(command.quantity)
        ga.held += command.quantity
        self._journal.ga_types.add(code)
        return Ok(self._place(_Hold(command.hold_id, command.buyer_id, (), code, units, expires_at)))

    def _place(self, hold: _Hold) -> HoldView:
        self._holds[hold.hold_id] = hold
        self._buyer_tickets[hold.buyer_id] = self._buyer_tickets.get(hold.buyer_id, 0) + hold.size
        heapq.heappush(self._expiry_heap, (hold.expires_at, hold.hold_id))
        view = self._view(hold)
        self._journal.holds_put[hold.hold_id] = view
        self._journal.holds_removed.discard(hold.hold_id)
        return view

    def _confirm(self, command: Confirm, now: float) -> Result:
        hold = self._holds.get(command.hold_id)
        if hold is None:
            return self._ended_refusal(command.hold_id)
        if hold.sale is not None:
            if hold.sale.order_ref == command.order_ref:
                return Ok(hold.sale)
            return Rejected(
                Refusal.INVALID_TRANSITION, "hold already confirmed with another order_ref", {"hold_id": hold.hold_id}
            )
        if hold.expires_at <= now:
            self._end_hold(hold, "expired")
            return self._ended_refusal(hold.hold_id)
        if not self._confirms_open:
            return Rejected(Refusal.NOT_ON_SALE, "the event no longer sells", {"event_id": self.spec.event_id})
        return Ok(self._sell(hold, command.order_ref))

    def _sell(self, hold: _Hold, order_ref: str) -> SaleView:
        seat_ids = self.spec.seat_ids
        tickets = [
            TicketView(ticket_id_of_hold(hold.hold_id, n), self._type_of_seat(i), seat_ids[i], None)
            for n, i in enumerate(hold.seats, 1)
        ] + [
            TicketView(ticket_id_of_hold(hold.hold_id, n), hold.ticket_type, None, unit)
            for n, unit in enumerate(hold.units, 1)
        ]
        sale = SaleView(sale_id_of_hold(hold.hold_id), hold.hold_id, hold.buyer_id, order_ref, tuple(tickets))
        hold.sale = sale
        self._mark_seats(hold.seats, SEAT_SOLD)
        self._seats_held -= len(hold.seats)
        self._seats_sold += len(hold.seats)
        if hold.units:
            ga = self._ga[hold.ticket_type]
            ga.held -= len(hold.units)
            ga.sold += len(hold.units)
            self._journal.ga_types.add(hold.ticket_type)
        self._journal.sales[hold.hold_id] = sale
        self._journal.holds_put.pop(hold.hold_id, None)
        self._journal.holds_removed.add(hold.hold_id)
        return sale

    def _release(self, hold_id: str, now: float) -> Result:
        hold = self._holds.get(hold_id)
        if hold is None:
            return self._ended_refusal(hold_id)
        if hold.sale is not None:
            return Rejected(Refusal.INVALID_TRANSITION, "a confirmed hold cannot be released", {"hold_id": hold_id})
        if hold.expires_at <= now:
            self._end_hold(hold, "expired")
            return self._ended_refusal(hold_id)
        self._end_hold(hold, "released")
        return Ok(None)

    def _extend(self, command: ExtendHold, now: float) -> Result:
        """Push a live hold's expiry out to now + ttl_s (never in): refused as Release refuses, plus the ttl bound."""
        if not limits.hold_ttl_s_min <= command.ttl_s <= limits.payment_window_s_max:
            return Rejected(
                Refusal.INVALID_HOLD_REQUEST, f"ttl_s must be 1..{limits.payment_window_s_max}", {"field": "ttl_s"}
            )
        hold = self._holds.get(command.hold_id)
        if hold is None:
            return self._ended_refusal(command.hold_id)
        if hold.sale is not None:
            return Rejected(
                Refusal.INVALID_TRANSITION, "a confirmed hold cannot be extended", {"hold_id": command.hold_id}
            )
        if hold.expires_at <= now:
            self._end_hold(hold, "expired")
            return self._ended_refusal(command.hold_id)
        expires_at = now + command.ttl_s
        if expires_at > hold.expires_at:  # an extension never shortens a hold: a shorter one answers it as it is
            hold.expires_at = expires_at
            # The old heap entry stays behind; when it comes due the sweep skips it (no longer the hold's time).
            heapq.heappush(self._expiry_heap, (expires_at, hold.hold_id))
            self._journal.holds_put[hold.hold_id] = self._view(hold)  # written through: the Redis record's expiry
            self._journal.holds_removed.discard(hold.hold_id)
        return Ok(self._view(hold))

    def _committed_sale(self, hold_id: str) -> _Hold | Rejected:
        """The hold of a committed sale, or why a cancellation cannot touch it."""
        hold = self._holds.get(hold_id)
        if hold is None or hold.sale is None:
            return Rejected(Refusal.HOLD_NOT_FOUND, "no sale for this hold", {"hold_id": hold_id})
        if hold_id in self._journal.sales:
            return Rejected(Refusal.INVALID_TRANSITION, "the sale is not committed yet", {"hold_id": hold_id})
        return hold

    def _cancel_sale(self, command: CancelSale) -> Result:
        hold = self._committed_sale(command.hold_id)
        if isinstance(hold, Rejected):
            return hold
        return Ok(self._end_sale(hold))

    def _end_sale(self, hold: _Hold) -> SaleView:
        """Cancel the sale with what it has left: its seats and units free, the hold gone."""
        sale = hold.sale
        assert sale is not None
        del self._holds[hold.hold_id]
        self._mark_seats(hold.seats, SEAT_AVAILABLE)
        self._seats_sold -= len(hold.seats)
        self._free_units(hold, sold=True)
        self._buyer_tickets[hold.buyer_id] -= hold.size
        self._ended[hold.hold_id] = "cancelled"
        self._journal.sales_cancelled[hold.hold_id] = sale
        return sale

    def _cancel_tickets(self, command: CancelTickets) -> Result:
        ticket_ids = command.ticket_ids
        if not 1 <= len(ticket_ids) <= limits.tickets_per_cancel_max or len(set(ticket_ids)) != len(ticket_ids):
            message = f"1..{limits.tickets_per_cancel_max} distinct ticket ids"
            return Rejected(Refusal.INVALID_HOLD_REQUEST, message, {"field": "ticket_ids"})
        hold = self._committed_sale(command.hold_id)
        if isinstance(hold, Rejected):
            return hold
        sale = hold.sale
        assert sale is not None
        live = {t.ticket_id: t for t in sale.tickets}
        unknown = [t for t in ticket_ids if t not in live and t not in hold.tickets_cancelled]
        if unknown:
            return Rejected(
                Refusal.TICKET_NOT_FOUND, "no such tickets in this sale",
                {"hold_id": command.hold_id, "ticket_ids": unknown},
            )
        going = [live[t] for t in ticket_ids if t in live]  # those already given back are skipped: a retry
        if len(going) == len(sale.tickets):
            self._end_sale(hold)
            return Ok(dataclasses.replace(sale, tickets=()))
        if going:
            self._give_back(hold, going)
        assert hold.sale is not None
        return Ok(hold.sale)

    def _give_back(self, hold: _Hold, going: list[TicketView]) -> None:
        """Take some (not all) tickets out of a committed sale: their seats and units free, the buyer's count down."""
        sale = hold.sale
        assert sale is not None and 0 < len(going) < len(sale.tickets)
        gone = {t.ticket_id for t in going}
        seats = {self._seat_index[t.seat_id] for t in going if t.seat_id is not None}
        units = {t.unit for t in going if t.unit is not None}
        _require(len(seats) + len(units) == len(going), f"sale {sale.sale_id}: a ticket without its seat or unit")
        _require(seats <= set(hold.seats) and units <= set(hold.units), f"sale {sale.sale_id} disagrees with its hold")
        freed_seats = tuple(i for i in hold.seats if i in seats)
        freed_units = tuple(u for u in hold.units if u in units)
        self._mark_seats(freed_seats, SEAT_AVAILABLE)
        self._seats_sold -= len(freed_seats)
        if freed_units:
            ga = self._ga[hold.ticket_type]
            ga.sold -= len(freed_units)
            ga.free_units.extend(freed_units)
            self._journal.ga_types.add(hold.ticket_type)
        self._buyer_tickets[hold.buyer_id] -= len(going)
        hold.seats = tuple(i for i in hold.seats if i not in seats)
        hold.units = tuple(u for u in hold.units if u not in units)
        hold.tickets_cancelled |= gone
        hold.sale = dataclasses.replace(sale, tickets=tuple(t for t in sale.tickets if t.ticket_id not in gone))
        given = self._journal.tickets_cancelled.get(hold.hold_id)
        earlier = () if given is None else given.tickets
        self._journal.tickets_cancelled[hold.hold_id] = dataclasses.replace(sale, tickets=(*earlier, *going))

    def _set_capacity(self, command: SetCapacity) -> Result:
        code = command.ticket_type
        ga = self._ga.get(code)
        if ga is None:
            return Rejected(Refusal.UNKNOWN_TICKET_TYPE, "no such GA ticket type", {"ticket_type": code})
        if not 0 <= command.capacity <= limits.ga_capacity_max:
            return Rejected(Refusal.INVALID_HOLD_REQUEST, f"capacity must be 0..{limits.ga_capacity_max}")
        committed = ga.held + ga.sold
        if command.capacity < committed:
            return Rejected(
                Refusal.CAPACITY_BELOW_COMMITTED,
                "capacity cannot go below what is held and sold",
                {"ticket_type": code, "capacity": command.capacity, "held": ga.held, "sold": ga.sold},
            )
        if command.capacity != ga.capacity:
            first = self._journal.capacities.get(code)
            before = ga.capacity if first is None else first[0]
            ga.capacity = command.capacity
            # Fresh units are taken only once no freed one is left, so they stay within the capacity; units
            # above a shrunk capacity (sold or held before) stay valid up to units_max.
            ga.units_max = max(ga.units_max, command.capacity)
            self._journal.capacities[code] = (before, command.capacity, command.by, command.ip)
            self._journal.ga_types.add(code)
        return Ok(None)

    def _lookup(self, hold_id: str, now: float) -> Result:
        hold = self._holds.get(hold_id)
        if hold is None:
            return self._ended_refusal(hold_id)
        if hold.sale is None and hold.expires_at <= now:
            return Rejected(Refusal.HOLD_EXPIRED, "the hold has expired", {"hold_id": hold_id})
        return Ok(self._view(hold))

    def _ended_refusal(self, hold_id: str) -> Rejected:
        ended = self._ended.get(hold_id)
        if ended == "expired":
            return Rejected(Refusal.HOLD_EXPIRED, "the hold has expired", {"hold_id": hold_id})
        if ended == "released":
            return Rejected(Refusal.INVALID_TRANSITION, "the hold was released", {"hold_id": hold_id})
        return Rejected(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})

    # ---- expiry and release --------------------------------------------------------------------------------

    def _expire_due(self, now: float, holds_max: int) -> list[str]:
        heap = self._expiry_heap
        expired: list[str] = []
        while heap and heap[0][0] <= now and len(expired) < holds_max:
            expires_at, hold_id = heapq.heappop(heap)
            hold = self._holds.get(hold_id)
            if hold is None or hold.sale is not None or hold.expires_at != expires_at:
                continue
            self._end_hold(hold, "expired")
            expired.append(hold_id)
        return expired

    def _end_hold(self, hold: _Hold, how: str) -> None:
        del self._holds[hold.hold_id]
        self._mark_seats(hold.seats, SEAT_AVAILABLE)
        self._seats_held -= len(hold.seats)
        self._free_units(hold, sold=False)
        remaining = self._buyer_tickets[hold.buyer_id] - hold.size
        _require(remaining >= 0, f"buyer {hold.buyer_id} count below zero")
        if remaining:
            self._buyer_tickets[hold.buyer_id] = remaining
        else:
            del self._buyer_tickets[hold.buyer_id]
        self._ended[hold.hold_id] = how
        if len(self._ended) > ended_holds_remembered_max:
            self._ended.popitem(last=False)
        self._journal.holds_put.pop(hold.hold_id, None)
        self._journal.holds_removed.add(hold.hold_id)

    def _free_units(self, hold: _Hold, *, sold: bool) -> None:
        if not hold.units:
            return
        ga = self._ga[hold.ticket_type]
        if sold:
            ga.sold -= len(hold.units)
        else:
            ga.held -= len(hold.units)
        ga.free_units.extend(hold.units)
        self._journal.ga_types.add(hold.ticket_type)

    def _mark_seats(self, indices: tuple[int, ...], state: int) -> None:
        seats = self._seats
        journal = self._journal.seats
        if self._type_counts is not None:
            for index in indices:
                self._count_move(index, seats[index], state)
        for index in indices:
            seats[index] = state
            journal[index] = state
        if self._finder is not None:
            self._finder.set_free(indices, state == SEAT_AVAILABLE)

    def _count_move(self, index: int, before: int, after: int) -> None:
        if self._type_counts is None:
            return
        code = self._seat_type[index]
        _require(code is not None and before != SEAT_BLOCKED and after != SEAT_BLOCKED, f"seat {index} is blocked")
        assert code is not None
        counts = self._type_counts[code]
        counts[before] -= 1
        counts[after] += 1

    def _type_of_seat(self, index: int) -> str:
        """The seated ticket type selling seat ``index`` (a seat that can be held has one)."""
        code = self._seat_type[index] if self._seat_type else self.spec.seated_type
        assert code is not None
        return code

    def _view(self, hold: _Hold) -> HoldView:
        seat_ids = self.spec.seat_ids
        return HoldView(
            hold.hold_id,
            hold.buyer_id,
            tuple(seat_ids[i] for i in hold.seats),
            hold.ticket_type,
            hold.size,
            hold.units,
            hold.expires_at,
            "sold" if hold.sale else "held",
        )


def _bad_fallback_zones(request: BestRequest, zones: frozenset[str]) -> Rejected | None:
    fallback = request.fallback_zones
    if not fallback:
        return None
    if request.zone is None:
        return _bad_best("best_available.fallback_zones", "needs a zone to fall back from (no zone means any)")
    if len(fallback) > limits.best_available_fallback_zones_max:
        return _bad_best("best_available.fallback_zones", f"at most {limits.best_available_fallback_zones_max}")
    if len(set(fallback)) != len(fallback) or request.zone in fallback:
        return _bad_best("best_available.fallback_zones", "each zone once, and not the zone itself")
    unknown = [zone for zone in fallback if zone not in zones]
    if unknown:
        return _bad_best("best_available.fallback_zones", f"no such zones in this event: {', '.join(unknown)}")
    return None


def _bad_best(field: str, message: str) -> Rejected:
    return Rejected(Refusal.INVALID_HOLD_REQUEST, message, {"fields": [{"field": field, "message": message}]})
