"""Best available (engine/inventory/best_available.py): its rules as properties over random layouts and seat
states, the same answers from the incremental index as from a naive reading of the rules, and examples.

The reference (``naive``) is written from the module's rules with plain loops over seats; it never calls the
module's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import limits
from engine.catalog import seating
from engine.inventory import best_available as best
from engine.inventory.best_available import (
    BestRequest,
    SeatFinder,
    SeatGeometry,
    SeatPlace,
    Shortfall,
    best_available,
    geometry_from_seat_ids,
    geometry_from_seating,
)
from gateway.routes.inventory.models import SeatAttribute

ZONES = ("FLOOR", "BALCONY")
ATTRIBUTES = ("accessible", "companion", "restricted_view")
FREE, HELD, SOLD = 0, 1, 2


# ---- the naive reading of the rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class NaiveRow:
    seats: list[int]  # along the row
    y: float


def naive_rows(places: tuple[SeatPlace, ...]) -> list[NaiveRow]:
    keys: list[str] = []
    for place in places:
        if place.row not in keys:
            keys.append(place.row)
    rows = []
    for key in keys:
        seats = sorted((i for i, p in enumerate(places) if p.row == key), key=lambda i: (places[i].order, i))
        rows.append(NaiveRow(seats, sum(places[i].y for i in seats) / len(seats)))
    return sorted(rows, key=lambda row: (row.y, row.seats[0]))


def sellable(place: SeatPlace) -> bool:
    return "not_for_sale" not in place.attributes and "blocked" not in place.attributes


def eligible(place: SeatPlace, request: BestRequest) -> bool:
    return (
        sellable(place)
        and (request.zone is None or place.zone == request.zone)
        and all(a in place.attributes for a in request.attributes)
    )


def naive(states: list[int], places: tuple[SeatPlace, ...], request: BestRequest) -> tuple[int, ...] | Shortfall:
    def empty(i: int) -> bool:
        return states[i] == FREE and sellable(places[i])

    def ok(i: int) -> bool:
        return empty(i) and eligible(places[i], request)

    q = request.quantity
    count = sum(ok(i) for i in range(len(places)))
    if count < q:
        return Shortfall(count)
    rows = naive_rows(places)
    candidates = []
    for rank, row in enumerate(rows):
        seats, n = row.seats, len(row.seats)
        for p in range(n - q + 1):
            if all(ok(i) for i in seats[p : p + q]):
                left = p >= 2 and empty(seats[p - 1]) and not empty(seats[p - 2])
                right = p + q + 1 < n and empty(seats[p + q]) and not empty(seats[p + q + 1])
                at_end = (p == 1 and empty(seats[0])) or (p + q == n - 1 and empty(seats[n - 1]))
                candidates.append(
                    ((left or right), rank, (left or right) or at_end, abs(2 * p - (n - q)), p, tuple(seats[p : p + q]))
                )
    if candidates:
        return min(candidates)[-1]
    chosen: list[int] = []
    for row in rows:
        runs, run = [], []
        for position, i in enumerate(row.seats):
            if ok(i):
                run.append((position, i))
            elif run:
                runs.append(run)
                run = []
        if run:
            runs.append(run)
        for run in sorted(runs, key=lambda r: (-len(r), r[0][0])):
            for _, i in run:
                if len(chosen) < q:
                    chosen.append(i)
    return tuple(chosen)


def together(states: list[int], places: tuple[SeatPlace, ...], request: BestRequest) -> bool:
    """Some row has ``quantity`` eligible free seats next to each other."""
    for row in naive_rows(places):
        streak = 0
        for i in row.seats:
            streak = streak + 1 if states[i] == FREE and eligible(places[i], request) else 0
            if streak >= request.quantity:
                return True
    return False


# ---- strategies ----------------------------------------------------------------------------------------------


@st.composite
def layouts(draw: st.DrawFn, rows_max: int = 4, seats_max: int = 9) -> tuple[SeatPlace, ...]:
    places = []
    for r in range(draw(st.integers(1, rows_max))):
        zone = draw(st.sampled_from((*ZONES, None)))
        orders = draw(st.lists(st.integers(0, 50), min_size=1, max_size=seats_max, unique=True))
        row_y = draw(st.integers(0, 3))
        for order in orders:
            attributes = draw(st.frozensets(st.sampled_from((*ATTRIBUTES, "not_for_sale", "blocked")), max_size=2))
            seat_zone = zone if draw(st.integers(0, 5)) else draw(st.sampled_from(ZONES))
            places.append(SeatPlace(f"r{r}", order, float(order), row_y + draw(st.sampled_from((0.0, 0.5))),
                                    seat_zone, attributes))
    return tuple(draw(st.permutations(places)))  # index order need not follow the rows


requests = st.builds(
    BestRequest,
    st.integers(1, 5),
    st.sampled_from((None, None, *ZONES)),
    st.lists(st.sampled_from(ATTRIBUTES), max_size=1, unique=True).map(tuple),
)


def states_for(places: tuple[SeatPlace, ...]) -> st.SearchStrategy[list[int]]:
    return st.lists(st.sampled_from((FREE, FREE, HELD, SOLD)), min_size=len(places), max_size=len(places))


@st.composite
def situations(draw: st.DrawFn) -> tuple[tuple[SeatPlace, ...], list[int], BestRequest]:
    places = draw(layouts())
    return places, draw(states_for(places)), draw(requests)


# ---- properties ----------------------------------------------------------------------------------------------


@settings(max_examples=600, deadline=None)
@given(situations())
def test_the_pick_is_the_rules_pick(situation: tuple[tuple[SeatPlace, ...], list[int], BestRequest]) -> None:
    places, states, request = situation
    assert best_available(states, SeatGeometry(places), request) == naive(states, places, request)


@settings(max_examples=600, deadline=None)
@given(situations())
def test_never_a_taken_blocked_or_not_for_sale_seat_and_only_the_asked_zone_and_attributes(
    situation: tuple[tuple[SeatPlace, ...], list[int], BestRequest],
) -> None:
    places, states, request = situation
    picked = best_available(states, SeatGeometry(places), request)
    if isinstance(picked, Shortfall):
        assert picked.available == sum(states[i] == FREE and eligible(p, request) for i, p in enumerate(places))
        assert picked.available < request.quantity
        return
    assert len(picked) == len(set(picked)) == request.quantity
    for i in picked:
        assert states[i] == FREE
        assert "not_for_sale" not in places[i].attributes and "blocked" not in places[i].attributes
        assert request.zone is None or places[i].zone == request.zone
        assert set(request.attributes) <= places[i].attributes


@settings(max_examples=400, deadline=None)
@given(situations(), st.permutations(ZONES))
def test_a_zone_with_too_few_falls_back_to_the_first_zone_that_has_enough(
    situation: tuple[tuple[SeatPlace, ...], list[int], BestRequest], zones: list[str]
) -> None:
    places, states, plain = situation
    first, *fallback = zones
    request = BestRequest(plain.quantity, first, plain.attributes, tuple(fallback))
    picked = best_available(states, SeatGeometry(places), request)
    alone = [naive(states, places, BestRequest(plain.quantity, zone, plain.attributes)) for zone in zones]
    picks = [a for a in alone if not isinstance(a, Shortfall)]
    if picks:
        assert picked == picks[0], "the first zone with enough, the rules applied in it alone"
        return
    free = {zone: naive(states, places, BestRequest(10_000, zone, plain.attributes)) for zone in zones}
    total = sum(f.available for f in free.values() if isinstance(f, Shortfall))
    if total < plain.quantity:
        assert picked == Shortfall(total)
        return
    assert isinstance(picked, tuple) and len(set(picked)) == plain.quantity
    taken = [sum(places[i].zone == zone for i in picked) for zone in zones]
    assert taken[0] == free[first].available, "every seat of the first zone before any of the next"
    for i in picked:
        assert states[i] == FREE and places[i].zone in zones and set(plain.attributes) <= places[i].attributes


@settings(max_examples=600, deadline=None)
@given(situations())
def test_adjacent_in_one_row_whenever_some_row_has_enough_together(
    situation: tuple[tuple[SeatPlace, ...], list[int], BestRequest],
) -> None:
    places, states, request = situation
    picked = best_available(states, SeatGeometry(places), request)
    if not together(states, places, request):
        return
    assert isinstance(picked, tuple)
    [row] = [row for row in naive_rows(places) if picked[0] in row.seats]
    start = row.seats.index(picked[0])
    assert tuple(row.seats[start : start + request.quantity]) == picked, "not adjacent in one row"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_the_index_answers_as_a_fresh_reading_while_seats_come_and_go(data: st.DataObject) -> None:
    places = data.draw(layouts(rows_max=5, seats_max=12))
    geometry = SeatGeometry(places)
    states = data.draw(states_for(places))
    finder = SeatFinder(geometry, states)
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        request = data.draw(requests)
        if data.draw(st.booleans(), label="pick"):
            picked = finder.find(request)
            assert picked == best_available(states, geometry, request)
            if isinstance(picked, tuple):  # a hold takes them
                for i in picked:
                    states[i] = HELD
                finder.set_free(picked, False)
        else:  # some seats change: released, expired, cancelled, sold
            changed = data.draw(st.lists(st.integers(0, len(places) - 1), max_size=4, unique=True))
            free = data.draw(st.booleans())
            for i in changed:
                states[i] = FREE if free else SOLD
            finder.set_free(changed, free)
        assert finder.available(request) == sum(
            states[i] == FREE and eligible(p, request) for i, p in enumerate(places)
        )


@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 9)), min_size=1, max_size=4))
def test_inline_seating_reads_the_same_from_the_seating_or_its_seat_ids(shape: list[tuple[int, int]]) -> None:
    sections = tuple(
        seating.Section(f"S{s}", tuple(seating.Row(str(r), seats) for r in range(1, rows + 1)))
        for s, (rows, seats) in enumerate(shape)
    )
    from_seating = geometry_from_seating(sections)
    assert from_seating == geometry_from_seat_ids(seating.seat_ids(sections))
    assert from_seating.zones == {f"S{s}" for s in range(len(shape))}
    assert len(from_seating) == seating.seat_count(sections)


# ---- examples ------------------------------------------------------------------------------------------------


def row_of(seats: int, *, zone: str = "FLOOR", y: float = 1.0, key: str = "r", **attributes: str) -> list[SeatPlace]:
    """A row of ``seats`` numbered 1.., with attributes by seat number (``s3="accessible"``)."""
    return [
        SeatPlace(key, n, float(n), y, zone, frozenset(filter(None, [attributes.get(f"s{n}")])))
        for n in range(1, seats + 1)
    ]


def pick(places: list[SeatPlace], taken: set[int], request: BestRequest) -> tuple[int, ...] | Shortfall:
    states = [HELD if i in taken else FREE for i in range(len(places))]
    return best_available(states, SeatGeometry(places), request)


def test_nearest_the_stage_then_the_middle_of_the_row() -> None:
    places = row_of(10, y=2.0, key="back") + row_of(10, y=1.0, key="front")
    assert pick(places, set(), BestRequest(2)) == (14, 15)  # front row, seats 5 and 6 of 10
    assert pick(places, set(), BestRequest(3)) == (13, 14, 15)  # 4, 5, 6: the lower of two equally central


def test_no_single_empty_seat_left_between_taken_ones_when_another_choice_avoids_it() -> None:
    # front: seats 1 and 6 taken, 4 free between them: any 3 of those strand one seat between taken ones
    front = row_of(6, key="front")
    back = row_of(8, y=2.0, key="back")
    places = front + back
    picked = pick(places, {0, 5}, BestRequest(3))
    assert picked == (8, 9, 10), "the front row would strand a seat; the back row has a clean block"
    assert pick(places, {0, 5, *range(6, 14)}, BestRequest(3)) == (1, 2, 3), "no clean block anywhere: the front"
    assert pick(row_of(4), set(), BestRequest(3)) == (0, 1, 2), "a seat left at the row's end is no orphan"


def test_zones_and_attributes_filter_and_blocked_seats_are_never_picked() -> None:
    places = row_of(5, zone="FLOOR", key="a", s2="accessible", s3="not_for_sale") + row_of(
        5, zone="BALCONY", y=2.0, key="b", s1="blocked"
    )
    assert pick(places, set(), BestRequest(2, "BALCONY")) == (6, 7)
    assert pick(places, set(), BestRequest(1, None, ("accessible",))) == (1,)
    assert pick(places, set(), BestRequest(2, None, ("accessible",))) == Shortfall(1)
    assert pick(places, set(), BestRequest(3, "FLOOR")) == (0, 1, 3), "no 3 together: scattered, front first"
    assert pick(places, set(), BestRequest(9)) == Shortfall(8)
    assert pick(places, set(), BestRequest(1, "NOWHERE")) == Shortfall(0)


def test_when_no_row_has_enough_together_the_longest_pieces_nearest_the_stage() -> None:
    places = row_of(5, key="front") + row_of(5, y=2.0, key="back")
    taken = {2, 5, 7}  # front: 1 2 _ 4 5 ; back: _ 2 _ 4 5
    assert pick(places, taken, BestRequest(3)) == (0, 1, 3)
    assert pick(places, taken, BestRequest(5)) == (0, 1, 3, 4, 8)


def test_the_attributes_a_buyer_may_ask_are_the_gateways() -> None:
    assert get_args(SeatAttribute) == best.REQUESTABLE_ATTRIBUTES
    assert not set(best.REQUESTABLE_ATTRIBUTES) & best.UNSELLABLE


def test_filters_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "best_available_filters_max", 2)
    places = row_of(4, zone="A", key="a") + row_of(4, zone="B", y=2.0, key="b")
    states = [FREE] * len(places)
    finder = SeatFinder(SeatGeometry(places), states)
    for zone in ("A", "B", None, "A", "B"):
        request = BestRequest(1, zone)
        picked = finder.find(request)
        assert picked == best_available(states, finder.geometry, request)
        assert isinstance(picked, tuple)
        states[picked[0]] = HELD
        finder.set_free(picked, False)
        assert len(finder._filters) <= 2


def test_seat_ids_of_another_shape_are_rows_of_their_own_at_the_back() -> None:
    geometry = geometry_from_seat_ids(["GA-FLOOR", "A-1-1", "A-1-2", "x"])
    assert [geometry.rows[r].seats for r in range(len(geometry.rows))] == [(1, 2), (0,), (3,)]
    assert geometry.zones == {"A"}
    assert best_available([FREE] * 4, geometry, BestRequest(2)) == (1, 2)
    assert best_available([FREE, HELD, FREE, FREE], geometry, BestRequest(2)) == (2, 0)  # scattered, front first


def test_a_request_names_its_filter_one_way() -> None:
    assert BestRequest(1, None, ("companion", "accessible", "companion")).attributes == ("accessible", "companion")
    assert BestRequest(1, "A", ("b", "a")) == BestRequest(1, "A", ("a", "b"))
