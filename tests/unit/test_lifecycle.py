"""engine/catalog/lifecycle.py: the event lifecycle's transition table, pair by pair."""

from __future__ import annotations

import itertools

import pytest

from engine.catalog.lifecycle import TRANSITIONS, Change, EventAction, EventStatus, Outcome, is_on_sale, outcome

EXPECTED = {
    (EventStatus.DRAFT, EventAction.PUBLISH): Outcome(Change.MOVED, EventStatus.ON_SALE),
    (EventStatus.ON_SALE, EventAction.PUBLISH): Outcome(Change.UNCHANGED, EventStatus.ON_SALE),
}


def test_the_table_has_every_status_and_action_pair() -> None:
    pairs = set(itertools.product(EventStatus, EventAction))
    assert set(TRANSITIONS) == pairs
    assert set(EXPECTED) == pairs  # this test names every pair too


@pytest.mark.parametrize(("status", "action"), sorted(EXPECTED))
def test_each_pair(status: EventStatus, action: EventAction) -> None:
    assert outcome(status, action) == EXPECTED[(status, action)]


def test_a_refused_action_keeps_the_status(monkeypatch: pytest.MonkeyPatch) -> None:
    # No pair is refused today; the catalog issue adds some. A refusal must never move the event.
    monkeypatch.setitem(TRANSITIONS, (EventStatus.ON_SALE, EventAction.PUBLISH), None)
    assert outcome(EventStatus.ON_SALE, EventAction.PUBLISH) == Outcome(Change.REFUSED, EventStatus.ON_SALE)


def test_statuses_are_the_stored_strings() -> None:
    assert [s.value for s in EventStatus] == ["draft", "on_sale"]
    assert is_on_sale("on_sale") and is_on_sale(EventStatus.ON_SALE)
    assert not is_on_sale("draft") and not is_on_sale("unknown")
