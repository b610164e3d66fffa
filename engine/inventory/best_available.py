"""Best available: which free seats a buyer asking for N seats gets (pure; no I/O, no clock).

The rules, in order of precedence:

1. Never a seat that is not available (held or sold), nor one that is not for sale (``not_for_sale``/``blocked``).
2. Only seats of the asked zone (when one is asked) that carry every asked attribute: the *eligible* seats. When
   that zone has fewer than N eligible seats free, the first of the request's ``fallback_zones`` (in the buyer's
   order) that has N; rules 3-6 then apply within that zone alone. Only when no listed zone has N alone but all
   of them together do: each zone's eligible seats by rule 6, zones in the buyer's order, until N.
3. N adjacent eligible seats in one row whenever any row has N of them together ("adjacent": consecutive
   positions along the row, by each seat's ``order``).
4. Among those, one that leaves no single empty seat between taken ones (an *orphan*: a free seat whose two
   neighbours in the row are both taken, held, sold or not for sale; a row's end is not a taken seat), whenever
   some choice anywhere leaves none.
5. Nearest the stage: the row with the smallest ``y`` first (a row's ``y`` is its seats' mean; equal rows in
   index order). Within the row: a block that leaves no single free seat beside it at the row's end either,
   when the row has one; then the block nearest the row's middle; then the lower position.
6. When no row has N together: the N eligible seats nearest the stage, row by row, the longest pieces of a row
   first.
7. Fewer than N eligible free seats (in the zone and its fallback zones together): a ``Shortfall`` saying how
   many there are; nothing is chosen.

``best_available(states, geometry, request)`` is the rule as one function over the seat states. The inventory
keeps a ``SeatFinder`` beside its seat array instead, told of every seat that becomes free or taken, so a pick
costs a few integer operations per row it looks at instead of a scan of every seat: per row, the free seats are
one integer (bit p = position p is free), each filter (zone, attributes) keeps per row a mask of its eligible
seats, and a cursor per (filter, N) remembers the first row that may still have a block of N (rows before it
have none and have not changed since). Both give the same answer (tests/unit/test_best_available.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine import limits
from engine.catalog import seat_geometry, seating

AVAILABLE = 0  # a seat state (engine/inventory/machine.py SEAT_AVAILABLE): every other state is taken
ACCESSIBLE = "accessible"
RESTRICTED_VIEW = "restricted_view"
COMPANION = "companion"
NOT_FOR_SALE = "not_for_sale"
BLOCKED = "blocked"
# what a buyer may ask for; a seat carrying one of UNSELLABLE is never picked
REQUESTABLE_ATTRIBUTES = (ACCESSIBLE, RESTRICTED_VIEW, COMPANION)
UNSELLABLE = frozenset({NOT_FOR_SALE, BLOCKED})


@dataclass(frozen=True, slots=True)
class SeatPlace:
    """Where one seat is: its row (seats with the same ``row`` key form one row), its position along that row
    (``order``: neighbours differ by one position), its coordinates (``y``: distance from the stage, smaller is
    nearer), its zone and its attributes."""

    row: str
    order: float
    x: float
    y: float
    zone: str | None = None
    attributes: frozenset[str] = frozenset()

    @property
    def sellable(self) -> bool:
        return not self.attributes & UNSELLABLE


@dataclass(frozen=True, slots=True)
class BestRequest:
    """``quantity`` seats, of ``zone`` (any when None), each carrying every one of ``attributes`` (kept sorted and
    distinct, so a request names its filter one way: ``filter_key``); else of the first of ``fallback_zones`` that
    has that many (a buyer's "the best two on the floor, or else in the balcony"), or, when none has that many
    alone, split across them in that order; so a zone that has run out costs the buyer no second request and the
    sale no refusal while the listed zones have seats."""

    quantity: int
    zone: str | None = None
    attributes: tuple[str, ...] = ()
    fallback_zones: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        normal = tuple(sorted(set(self.attributes)))
        if normal != self.attributes:
            object.__setattr__(self, "attributes", normal)

    @property
    def filter_key(self) -> tuple[str | None, tuple[str, ...]]:
        return self.zone, self.attributes


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Fewer eligible free seats than asked: how many there are."""

    available: int


@dataclass(frozen=True, slots=True)
class _Row:
    seats: tuple[int, ...]  # seat indices along the row, by order
    y: float


class SeatGeometry:
    """Every seat's place, in seat index order, and the rows derived from them (nearest the stage first)."""

    def __init__(self, places: Sequence[SeatPlace]) -> None:
        self.places = tuple(places)
        by_key: dict[str, list[int]] = {}
        for index, place in enumerate(self.places):
            by_key.setdefault(place.row, []).append(index)
        rows = []
        for indices in by_key.values():
            indices.sort(key=lambda i: (self.places[i].order, i))
            y = sum(self.places[i].y for i in indices) / len(indices)
            rows.append(_Row(tuple(indices), y))
        rows.sort(key=lambda row: (row.y, row.seats[0]))
        self.rows = tuple(rows)
        row_of = [0] * len(self.places)
        position_of = [0] * len(self.places)
        for r, row in enumerate(self.rows):
            for p, index in enumerate(row.seats):
                row_of[index] = r
                position_of[index] = p
        self.row_of = tuple(row_of)
        self.position_of = tuple(position_of)
        self.sellable = tuple(place.sellable for place in self.places)
        self.zones = frozenset(place.zone for place in self.places if place.zone is not None)
        # per row, as bit masks over its positions: the seats for sale, and those for sale of each zone and with
        # each attribute (a filter's mask of a row is then a few ANDs)
        self.sellable_masks: list[int] = []
        self.zone_masks: list[dict[str, int]] = []
        self.attribute_masks: list[dict[str, int]] = []
        for row in self.rows:
            sellable_mask = 0
            zones: dict[str, int] = {}
            attributes: dict[str, int] = {}
            for p, index in enumerate(row.seats):
                if not self.sellable[index]:
                    continue
                bit = 1 << p
                sellable_mask |= bit
                place = self.places[index]
                if place.zone is not None:
                    zones[place.zone] = zones.get(place.zone, 0) | bit
                for attribute in place.attributes:
                    attributes[attribute] = attributes.get(attribute, 0) | bit
            self.sellable_masks.append(sellable_mask)
            self.zone_masks.append(zones)
            self.attribute_masks.append(attributes)

    def __len__(self) -> int:
        return len(self.places)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SeatGeometry) and other.places == self.places

    def __hash__(self) -> int:
        return hash(self.places)

    def eligible(self, index: int, key: tuple[str | None, tuple[str, ...]]) -> bool:
        zone, attributes = key
        place = self.places[index]
        return self.sellable[index] and (zone is None or place.zone == zone) and place.attributes.issuperset(attributes)

    def row_mask(self, r: int, key: tuple[str | None, tuple[str, ...]]) -> int:
        """The positions of row ``r`` whose seats ``eligible`` accepts, as a bit mask."""
        zone, attributes = key
        mask = self.sellable_masks[r] if zone is None else self.zone_masks[r].get(zone, 0)
        for attribute in attributes:
            mask &= self.attribute_masks[r].get(attribute, 0)
        return mask


# ---- building a geometry -----------------------------------------------------------------------------------


def geometry_from_seating(sections: Sequence[seating.Section]) -> SeatGeometry:
    """Today's inline seating (sections of rows of numbered seats), in seat index order: a row per
    (section, row), ``y`` = the row's place in its section (1 = the front), ``x`` = ``order`` = the seat number,
    the zone = the section's name, no attributes."""
    return SeatGeometry([
        SeatPlace(f"{section.name}-{row.label}", number, float(number), float(r), section.name)
        for section in sections
        for r, row in enumerate(section.rows, 1)
        for number in range(1, row.seats + 1)
    ])


def geometry_from_layout(seats: Sequence[seat_geometry.SeatGeometry]) -> SeatGeometry:
    """A layout's seats (engine/catalog/seat_geometry.py, index order) as best available reads them: a row per
    (section, row label); positions along the row by the seats' ``x`` (ties in index order), so neighbours in the
    drawing are neighbours in the row; the layout's zone and attributes."""
    rows: dict[tuple[str, str], list[int]] = {}
    for index, seat in enumerate(seats):
        rows.setdefault((seat.section, seat.row), []).append(index)
    order = [0] * len(seats)
    for members in rows.values():
        for position, index in enumerate(sorted(members, key=lambda i: (seats[i].x, i))):
            order[index] = position
    return SeatGeometry([
        SeatPlace(f"{seat.section}-{seat.row}", order[index], seat.x, seat.y, seat.zone, frozenset(seat.attributes))
        for index, seat in enumerate(seats)
    ])


def geometry_from_seat_ids(seat_ids: Sequence[str]) -> SeatGeometry:
    """The same geometry read back from seat ids ``"{section}-{row}-{number}"`` (engine/catalog/seating.py), in
    index order: what an inventory uses when it was given no geometry. An id of another shape is a row of its own
    at the back."""
    places = []
    rows_seen: dict[str, dict[str, int]] = {}
    for index, seat_id in enumerate(seat_ids):
        parts = seat_id.split("-")
        if len(parts) == 3 and parts[2].isdigit():
            section, label, number = parts[0], parts[1], int(parts[2])
            rows = rows_seen.setdefault(section, {})
            y = rows.setdefault(label, len(rows) + 1)
            places.append(SeatPlace(f"{section}-{label}", number, float(number), float(y), section))
        else:
            places.append(SeatPlace(f"\x00{index}", 0, 0.0, float("inf")))
    return SeatGeometry(places)


# ---- the rule as one function --------------------------------------------------------------------------------


def best_available(states: Sequence[int], geometry: SeatGeometry, request: BestRequest) -> tuple[int, ...] | Shortfall:
    """The seat indices (along their row) a buyer asking ``request`` gets, over seat ``states`` (0 = available),
    or how many eligible seats are free when that is fewer than asked."""
    return SeatFinder(geometry, states).find(request)


# ---- the incremental index -------------------------------------------------------------------------------------


class _Filter:
    """One (zone, attributes) filter: the rows holding an eligible seat, each row's eligible mask, the free count,
    and per quantity the cursors [first row that may leave no orphan, first row that may have a block]."""

    __slots__ = ("cursors", "free", "masks", "rows")

    def __init__(self, rows: list[int], masks: list[int], free: int) -> None:
        self.rows = rows
        self.masks = masks
        self.free = free
        self.cursors: dict[int, list[int]] = {}


class SeatFinder:
    """Best available over seat states it is told of (``set_free``); answers as ``best_available`` does."""

    def __init__(self, geometry: SeatGeometry, states: Sequence[int]) -> None:
        self.geometry = geometry
        sellable = geometry.sellable
        self._free = [
            sum(1 << p for p, i in enumerate(row.seats) if states[i] == AVAILABLE and sellable[i])
            for row in geometry.rows
        ]
        self._full = [(1 << len(row.seats)) - 1 for row in geometry.rows]
        self._filters: dict[tuple[str | None, tuple[str, ...]], _Filter] = {}
        # per row, each filter holding it with the row's place in that filter's rows
        self._row_filters: list[list[tuple[_Filter, int]]] = [[] for _ in geometry.rows]

    def set_free(self, indices: Sequence[int], free: bool) -> None:
        """Seats that became available (``free``) or taken."""
        g = self.geometry
        row_of, position_of, sellable = g.row_of, g.position_of, g.sellable
        bits = self._free
        delta = 1 if free else -1
        moved = -1  # the row whose cursors were last moved back (a hold's seats share a row)
        for index in indices:
            if not sellable[index]:
                continue
            r = row_of[index]
            bit = 1 << position_of[index]
            old = bits[r]
            new = old | bit if free else old & ~bit
            if new == old:
                continue
            bits[r] = new
            for f, k in self._row_filters[r]:
                if f.masks[k] & bit:
                    f.free += delta
                if r != moved:
                    for cursor in f.cursors.values():
                        if cursor[0] > k:
                            cursor[0] = k
                        if cursor[1] > k:
                            cursor[1] = k
            moved = r

    def available(self, request: BestRequest) -> int:
        return self._filter(request.filter_key).free

    def find(self, request: BestRequest) -> tuple[int, ...] | Shortfall:
        picked = self._find_in(request.quantity, request.filter_key)
        if not isinstance(picked, Shortfall) or not request.fallback_zones:
            return picked
        keys = [request.filter_key, *((zone, request.attributes) for zone in request.fallback_zones)]
        for key in keys[1:]:
            fallback = self._find_in(request.quantity, key)
            if not isinstance(fallback, Shortfall):
                return fallback
        return self._across_zones([self._filter(key) for key in keys], request.quantity)

    def _across_zones(self, filters: list[_Filter], quantity: int) -> tuple[int, ...] | Shortfall:
        """No listed zone has ``quantity`` alone: each zone's free seats in the buyer's order, by the rule of no
        row having enough, until ``quantity`` (the last seats of a sale go to whoever asks, not to a 409)."""
        free = sum(f.free for f in filters)
        if free < quantity:
            return Shortfall(free)
        chosen: list[int] = []
        for f in filters:
            take = min(f.free, quantity - len(chosen))
            if take:
                chosen.extend(self._scattered(f, take))
        return tuple(chosen)

    def _find_in(self, quantity: int, key: tuple[str | None, tuple[str, ...]]) -> tuple[int, ...] | Shortfall:
        f = self._filter(key)
        if quantity < 1 or f.free < quantity:
            return Shortfall(f.free)
        cursor = f.cursors.get(quantity)
        if cursor is None:
            cursor = f.cursors[quantity] = [0, 0]
        rows, masks, bits, full = f.rows, f.masks, self._free, self._full
        end = len(rows)
        k = cursor[0]
        while k < end:  # a block leaving no orphan, nearest the stage
            r = rows[k]
            free = bits[r]
            eligible = free & masks[k]
            starts = eligible & (eligible >> 1) if quantity == 2 else _starts(eligible, quantity)
            if starts:
                taken = full[r] & ~free
                orphans = ((free << 1) & (taken << 2)) | ((free >> quantity) & (taken >> (quantity + 1)))
                good = starts & ~orphans
                if good:
                    cursor[0] = k
                    # a single free seat left at the row's end: beside the block at position 0, or at the last
                    n = full[r].bit_length()
                    last = 1 << (n - quantity - 1) if n > quantity else 0
                    singles = ((free << 1) & 0b10) | ((free >> quantity) & last)
                    return self._block(r, good & ~singles or good, quantity)
            k += 1
        cursor[0] = end
        k = cursor[1]
        while k < end:  # any block, nearest the stage
            starts = _starts(bits[rows[k]] & masks[k], quantity)
            if starts:
                cursor[1] = k
                return self._block(rows[k], starts, quantity)
            k += 1
        cursor[1] = end
        return self._scattered(f, quantity)

    def _block(self, r: int, starts: int, quantity: int) -> tuple[int, ...]:
        seats = self.geometry.rows[r].seats
        p = _nearest(starts, len(seats) - quantity)
        return seats[p : p + quantity]

    def _scattered(self, f: _Filter, quantity: int) -> tuple[int, ...]:
        """No row has ``quantity`` together: row by row from the front, the longest pieces of each row first."""
        chosen: list[int] = []
        rows = self.geometry.rows
        for k, r in enumerate(f.rows):
            eligible = self._free[r] & f.masks[k]
            if not eligible:
                continue
            seats = rows[r].seats
            for start, length in sorted(_runs(eligible), key=lambda run: (-run[1], run[0])):
                take = min(length, quantity - len(chosen))
                chosen.extend(seats[start : start + take])
                if len(chosen) == quantity:
                    return tuple(chosen)
        raise AssertionError("the free count promised enough seats")  # pragma: no cover

    def _filter(self, key: tuple[str | None, tuple[str, ...]]) -> _Filter:
        f = self._filters.get(key)
        if f is not None:
            return f
        if len(self._filters) >= limits.best_available_filters_max:
            self._filters.clear()
            self._row_filters = [[] for _ in self.geometry.rows]
        row_mask = self.geometry.row_mask
        rows, masks, free = [], [], 0
        for r in range(len(self._free)):
            mask = row_mask(r, key)
            if mask:
                rows.append(r)
                masks.append(mask)
                free += (self._free[r] & mask).bit_count()
        f = _Filter(rows, masks, free)
        self._filters[key] = f
        for k, r in enumerate(rows):
            self._row_filters[r].append((f, k))
        return f


def _starts(eligible: int, quantity: int) -> int:
    """Bit p set when positions p .. p+quantity-1 are all set in ``eligible``."""
    starts, have = eligible, 1
    while have < quantity:
        step = min(have, quantity - have)
        starts &= starts >> step
        have += step
    return starts


def _nearest(starts: int, span: int) -> int:
    """The set bit of ``starts`` nearest ``span / 2`` (the start that centres a block in its row); the lower one
    on a tie."""
    middle = span // 2
    above = starts >> middle
    high = middle + (above & -above).bit_length() - 1 if above else None
    below = starts & ((1 << middle) - 1)
    low = below.bit_length() - 1 if below else None
    if high is None:
        assert low is not None
        return low
    if low is None or abs(2 * high - span) < abs(2 * low - span):
        return high
    return low


def _runs(bits: int) -> list[tuple[int, int]]:
    """(start, length) of each run of set bits, lowest first."""
    runs = []
    offset = 0
    while bits:
        skip = (bits & -bits).bit_length() - 1
        bits >>= skip
        offset += skip
        length = (~bits & (bits + 1)).bit_length() - 1
        runs.append((offset, length))
        bits >>= length
        offset += length
    return runs
