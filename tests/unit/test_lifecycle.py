"""engine/catalog/lifecycle.py: the event lifecycle's tables, pair by pair against the contract, and as a state
machine (Hypothesis); engine/catalog/timed.py: when the timer moves an event."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.catalog import lifecycle
from engine.catalog.lifecycle import (
    PUBLISH,
    TRANSITIONS,
    Change,
    EventAction,
    EventStatus,
    Mover,
    Outcome,
    allowed_targets,
    may_move,
    outcome,
    stored_moves,
)
from engine.catalog.presales import Presale, SaleSchedule
from engine.catalog.timed import due_move, next_wake

S = EventStatus
# The contract (/work/shared/API.md, "Lifecycle"), written out here independently of the engine's table: what the
# organizer may ask for with POST /v1/events/{id}/transitions.
CONTRACT: dict[EventStatus, set[EventStatus]] = {
    S.DRAFT: {S.PUBLISHED, S.CANCELLED},
    S.PUBLISHED: {S.ON_SALE, S.DRAFT, S.CANCELLED},
    S.ON_SALE: {S.PAUSED, S.CLOSED, S.CANCELLED},
    S.PAUSED: {S.ON_SALE, S.CLOSED, S.CANCELLED},
    S.SOLD_OUT: {S.ON_SALE, S.CLOSED, S.CANCELLED},
    S.CLOSED: set(),
    S.CANCELLED: set(),
}
AUTOMATIC = {(S.ON_SALE, S.SOLD_OUT): Mover.INVENTORY, (S.SOLD_OUT, S.ON_SALE): Mover.INVENTORY}
TIMED = {(S.PUBLISHED, S.ON_SALE), (S.ON_SALE, S.CLOSED), (S.PAUSED, S.CLOSED), (S.SOLD_OUT, S.CLOSED)}


def test_the_table_has_every_ordered_pair() -> None:
    assert set(TRANSITIONS) == set(itertools.product(EventStatus, EventStatus))
    assert set(PUBLISH) == set(EventStatus)


def test_statuses_are_the_stored_strings() -> None:
    assert [s.value for s in EventStatus] == [
        "draft", "published", "on_sale", "paused", "sold_out", "closed", "cancelled"
    ]


@pytest.mark.parametrize(("before", "after"), sorted(itertools.product(EventStatus, EventStatus)))
def test_each_pair_for_the_organizer_is_the_contracts(before: EventStatus, after: EventStatus) -> None:
    assert may_move(before, after, Mover.ORGANIZER) == (after in CONTRACT[before])


@pytest.mark.parametrize(("before", "after"), sorted(itertools.product(EventStatus, EventStatus)))
def test_each_pair_for_the_inventory_and_the_timer(before: EventStatus, after: EventStatus) -> None:
    assert may_move(before, after, Mover.INVENTORY) == ((before, after) in AUTOMATIC)
    assert may_move(before, after, Mover.TIMER) == ((before, after) in TIMED)


@pytest.mark.parametrize("status", list(EventStatus))
def test_allowed_targets_are_listed_in_status_order(status: EventStatus) -> None:
    assert list(allowed_targets(status)) == [s for s in EventStatus if s in CONTRACT[status]]


def test_publish_moves_a_draft_on_sale_in_one_step_and_is_idempotent() -> None:
    assert outcome(S.DRAFT, EventAction.PUBLISH) == Outcome(Change.MOVED, S.ON_SALE)
    assert outcome(S.PUBLISHED, EventAction.PUBLISH) == Outcome(Change.MOVED, S.ON_SALE)
    assert outcome(S.ON_SALE, EventAction.PUBLISH) == Outcome(Change.UNCHANGED, S.ON_SALE)
    assert outcome(S.SOLD_OUT, EventAction.PUBLISH) == Outcome(Change.UNCHANGED, S.SOLD_OUT)
    for status in (S.PAUSED, S.CLOSED, S.CANCELLED):
        assert outcome(status, EventAction.PUBLISH) == Outcome(Change.REFUSED, status)


def test_the_store_accepts_the_moves_and_publish_only() -> None:
    expected = {(a, b) for a, targets in CONTRACT.items() for b in targets} | set(AUTOMATIC) | TIMED
    assert stored_moves() == frozenset(expected | {(S.DRAFT, S.ON_SALE)})


def test_what_each_status_lets_buyers_do() -> None:
    assert [s for s in EventStatus if lifecycle.has_inventory(s)] == [s for s in EventStatus if s != S.DRAFT]
    assert [s for s in EventStatus if lifecycle.holds_open(s)] == [S.PUBLISHED, S.ON_SALE, S.SOLD_OUT]
    assert [s for s in EventStatus if lifecycle.confirms_open(s)] == [
        S.PUBLISHED, S.ON_SALE, S.PAUSED, S.SOLD_OUT, S.CLOSED
    ]
    assert [s for s in EventStatus if lifecycle.is_on_sale(s)] == [S.ON_SALE, S.SOLD_OUT]
    assert not lifecycle.visible_to_buyers("draft") and lifecycle.visible_to_buyers("paused")


movers = st.sampled_from(list(Mover))
statuses = st.sampled_from(list(EventStatus))


@given(st.lists(st.tuples(movers, statuses), max_size=40))
def test_any_sequence_of_requests_only_ever_takes_allowed_moves(requests: list[tuple[Mover, EventStatus]]) -> None:
    """The lifecycle as a state machine: whoever asks for whatever, an event only takes moves of the table, a
    refused request leaves it where it was, and closed and cancelled are final."""
    status = S.DRAFT
    history = [status]
    for mover, target in requests:
        if may_move(status, target, mover):
            assert (status, target) in stored_moves()
            assert target in allowed_targets(status, mover)
            status = target
        else:
            assert target not in allowed_targets(status, mover)
        history.append(status)
    for final in (S.CLOSED, S.CANCELLED):
        if final in history:
            assert history[-1] == final
    if S.SOLD_OUT in history:
        first = history.index(S.SOLD_OUT)
        assert history[first - 1] == S.ON_SALE  # sold_out is entered from on_sale only


@given(statuses, st.sampled_from([EventAction.PUBLISH]))
def test_publish_never_leaves_an_event_anywhere_but_selling(status: EventStatus, action: EventAction) -> None:
    result = outcome(status, action)
    if result.change is Change.REFUSED:
        assert result.status == status
    else:
        assert lifecycle.is_on_sale(result.status)
        assert result.change is Change.UNCHANGED or (status, result.status) in stored_moves()


# ---- timed moves -------------------------------------------------------------------------------------------

T0 = 1_800_000_000.0


def test_published_goes_on_sale_once_sale_opens_at_has_passed() -> None:
    schedule = SaleSchedule(sale_opens_at=T0, sale_closes_at=T0 + 100)
    assert due_move(S.PUBLISHED, schedule, T0 - 0.001) is None
    assert due_move(S.PUBLISHED, schedule, T0) == S.ON_SALE
    assert due_move(S.PUBLISHED, schedule, T0 + 1_000) == S.ON_SALE  # missed while down: due at once
    assert next_wake(S.PUBLISHED, schedule, T0 - 5) == T0


@pytest.mark.parametrize("status", [S.ON_SALE, S.PAUSED, S.SOLD_OUT])
def test_a_selling_or_paused_event_closes_at_sale_closes_at(status: EventStatus) -> None:
    schedule = SaleSchedule(sale_opens_at=T0, sale_closes_at=T0 + 100)
    assert due_move(status, schedule, T0 + 99.9) is None
    assert due_move(status, schedule, T0 + 100) == S.CLOSED
    assert next_wake(status, schedule, T0) == T0 + 100


@pytest.mark.parametrize("status", [S.DRAFT, S.CLOSED, S.CANCELLED])
def test_nothing_is_timed_for_drafts_and_ended_events(status: EventStatus) -> None:
    schedule = SaleSchedule(sale_opens_at=T0, sale_closes_at=T0 + 100, presales=(Presale("F", T0 - 50, T0),))
    assert due_move(status, schedule, T0 + 1_000) is None
    assert next_wake(status, schedule, T0 - 1_000) is None


def test_a_presale_opening_wakes_the_timer_but_moves_nothing() -> None:
    schedule = SaleSchedule(presales=(Presale("F", T0, T0 + 10),))
    assert next_wake(S.PUBLISHED, schedule, T0 - 1) == T0
    assert due_move(S.PUBLISHED, schedule, T0 + 1) is None
    assert next_wake(S.PUBLISHED, schedule, T0 + 1) is None  # past presale openings are not planned again


times = st.floats(min_value=T0 - 1_000, max_value=T0 + 1_000, allow_nan=False)


@given(statuses, st.none() | times, st.none() | times, times)
def test_the_timer_moves_only_by_the_table_and_only_when_due(
    status: EventStatus, opens: float | None, closes: float | None, now: float
) -> None:
    schedule = SaleSchedule(opens, closes)
    target = due_move(status, schedule, now)
    if target is not None:
        assert may_move(status, target, Mover.TIMER)
        wake = next_wake(status, schedule, now)
        assert wake is not None and wake <= now  # due: the timer's plan already has it at or before now
