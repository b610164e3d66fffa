"""An event's lifecycle as a state machine: statuses, who may move an event between them, what each status lets
buyers do.

Two tables, both exhaustive:

- ``TRANSITIONS``: every ordered pair (from, to) of statuses, a status to itself included, names who may make that
  move: the organizer (``POST /v1/events/{id}/transitions``), the event's inventory (``sold_out`` in and out, from
  its counts) or the catalog timer (``sale_opens_at``, ``sale_closes_at``). An empty set: nobody, ever.
- ``PUBLISH``: what ``POST /v1/events/{id}/publish`` does in each status (draft -> on_sale in one step; again:
  unchanged).

tests/unit/test_lifecycle.py checks both are complete and equal the contract's table; Postgres repeats the set
of moves in its trigger (persistence/migrations/004_event_lifecycle.sql), which tests/integration checks agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventStatus(StrEnum):
    DRAFT = "draft"  # being set up: invisible to buyers, no inventory
    PUBLISHED = "published"  # announced; its sale opens later (at sale_opens_at, or by hand); presales may run
    ON_SALE = "on_sale"  # its inventory is live: holds and confirms
    PAUSED = "paused"  # no new holds; existing holds can still be confirmed
    SOLD_OUT = "sold_out"  # on sale with nothing left (entered and left by the inventory, from its counts)
    CLOSED = "closed"  # the sale is over: no new holds; existing holds can still be confirmed until they expire
    CANCELLED = "cancelled"  # called off: nothing is sold any more, every sale is marked for refund


class Mover(StrEnum):
    """Who moves an event (the audit log names the person or key behind an organizer's move)."""

    ORGANIZER = "organizer"
    INVENTORY = "inventory"
    TIMER = "timer"


class EventAction(StrEnum):
    PUBLISH = "publish"


class Change(StrEnum):
    MOVED = "moved"  # the event is now in another status
    UNCHANGED = "unchanged"  # allowed, and the event already is where the action leads: nothing to record
    REFUSED = "refused"  # the action does not apply to the status


_S = EventStatus
_ORGANIZER = frozenset({Mover.ORGANIZER})
_ORGANIZER_OR_TIMER = frozenset({Mover.ORGANIZER, Mover.TIMER})
NOBODY: frozenset[Mover] = frozenset()

# The moves somebody may make; every other pair is nobody's (the full table is TRANSITIONS, below).
_MOVES: dict[tuple[EventStatus, EventStatus], frozenset[Mover]] = {
    (_S.DRAFT, _S.PUBLISHED): _ORGANIZER,
    (_S.DRAFT, _S.CANCELLED): _ORGANIZER,
    (_S.PUBLISHED, _S.ON_SALE): _ORGANIZER_OR_TIMER,  # the timer at sale_opens_at
    (_S.PUBLISHED, _S.DRAFT): _ORGANIZER,
    (_S.PUBLISHED, _S.CANCELLED): _ORGANIZER,
    (_S.ON_SALE, _S.PAUSED): _ORGANIZER,
    (_S.ON_SALE, _S.CLOSED): _ORGANIZER_OR_TIMER,  # the timer at sale_closes_at
    (_S.ON_SALE, _S.CANCELLED): _ORGANIZER,
    (_S.ON_SALE, _S.SOLD_OUT): frozenset({Mover.INVENTORY}),  # nothing left
    (_S.PAUSED, _S.ON_SALE): _ORGANIZER,
    (_S.PAUSED, _S.CLOSED): _ORGANIZER_OR_TIMER,
    (_S.PAUSED, _S.CANCELLED): _ORGANIZER,
    # capacity grew or seats came back: the inventory moves it; the organizer may too (the contract lists it),
    # and if nothing is left after all, the inventory moves it back within a sweep
    (_S.SOLD_OUT, _S.ON_SALE): frozenset({Mover.ORGANIZER, Mover.INVENTORY}),
    (_S.SOLD_OUT, _S.CLOSED): _ORGANIZER_OR_TIMER,
    (_S.SOLD_OUT, _S.CANCELLED): _ORGANIZER,
}
# (from, to) -> who may make that move, for every ordered pair of statuses.
TRANSITIONS: dict[tuple[EventStatus, EventStatus], frozenset[Mover]] = {
    (before, after): _MOVES.get((before, after), NOBODY) for before in EventStatus for after in EventStatus
}

# status -> where publish leads (None: refused there). Publishing succeeds exactly when the event ends up selling.
PUBLISH: dict[EventStatus, EventStatus | None] = {
    _S.DRAFT: _S.ON_SALE,
    _S.PUBLISHED: _S.ON_SALE,
    # Publishing twice (a retry, two organizers at once) is no error: the event simply stays on sale.
    _S.ON_SALE: _S.ON_SALE,
    _S.SOLD_OUT: _S.SOLD_OUT,
    _S.PAUSED: None,
    _S.CLOSED: None,
    _S.CANCELLED: None,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    change: Change
    status: EventStatus  # after the action: the same status unless it moved


def outcome(status: EventStatus, action: EventAction) -> Outcome:
    assert action is EventAction.PUBLISH
    target = PUBLISH[status]
    if target is None:
        return Outcome(Change.REFUSED, status)
    return Outcome(Change.UNCHANGED if target == status else Change.MOVED, target)


def allowed_targets(status: EventStatus, mover: Mover = Mover.ORGANIZER) -> tuple[EventStatus, ...]:
    """Where ``mover`` may move an event that is ``status``, in the statuses' order."""
    return tuple(target for target in EventStatus if mover in TRANSITIONS[(status, target)])


def may_move(status: EventStatus, target: EventStatus, mover: Mover) -> bool:
    return mover in TRANSITIONS[(status, target)]


def stored_moves() -> frozenset[tuple[EventStatus, EventStatus]]:
    """Every change of status the store accepts: the table's moves and publish's."""
    moves = {pair for pair, movers in TRANSITIONS.items() if movers}
    moves |= {(status, target) for status, target in PUBLISH.items() if target is not None and target != status}
    return frozenset(moves)


# ---- what each status lets buyers do -----------------------------------------------------------------------

_WITH_INVENTORY = frozenset(EventStatus) - {_S.DRAFT}
# published: only inside a presale window, or once sale_opens_at has passed (engine/catalog/presales.py decides)
_HOLDS_OPEN = frozenset({_S.PUBLISHED, _S.ON_SALE, _S.SOLD_OUT})
_CONFIRMS_OPEN = frozenset({_S.PUBLISHED, _S.ON_SALE, _S.PAUSED, _S.SOLD_OUT, _S.CLOSED})
_SELLING = frozenset({_S.ON_SALE, _S.SOLD_OUT})
_ENDED = frozenset({_S.CLOSED, _S.CANCELLED})  # final: nothing about the sale changes any more


def has_inventory(status: str) -> bool:
    """Whether the event has a live inventory: every status once published (a draft has none)."""
    return status in _WITH_INVENTORY


def visible_to_buyers(status: str) -> bool:
    """Whether a publishable key (a buyer's front-end) may see the event at all."""
    return status in _WITH_INVENTORY


def holds_open(status: str) -> bool:
    """Whether the inventory accepts new holds in this status (the gateway narrows ``published`` to presales)."""
    return status in _HOLDS_OPEN


def confirms_open(status: str) -> bool:
    """Whether held buyers may still confirm: in every status with an inventory but ``cancelled``."""
    return status in _CONFIRMS_OPEN


def has_ended(status: str) -> bool:
    """Whether the sale is over for good (closed or cancelled): its capacity no longer changes."""
    return status in _ENDED


def is_on_sale(status: str) -> bool:
    """Whether the general sale is running (``on_sale``, or ``sold_out``: on sale with nothing left)."""
    return status in _SELLING
