"""An event's lifecycle as a state machine: a draft is published once and then stays on sale.

The table is exhaustive: every (status, action) pair has an entry, so a new status or action cannot be added
without deciding what each action does to it (tests/unit/test_lifecycle.py checks the table is complete).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventStatus(StrEnum):
    DRAFT = "draft"  # being set up: invisible to buyers, no inventory
    ON_SALE = "on_sale"  # its inventory is live


class EventAction(StrEnum):
    PUBLISH = "publish"


class Change(StrEnum):
    MOVED = "moved"  # the event is now in another status
    UNCHANGED = "unchanged"  # allowed, and the event already is where the action leads: nothing to record
    REFUSED = "refused"  # the action does not apply to the status


# (status, action) -> the status the action leads to; None: the action is refused in that status.
TRANSITIONS: dict[tuple[EventStatus, EventAction], EventStatus | None] = {
    (EventStatus.DRAFT, EventAction.PUBLISH): EventStatus.ON_SALE,
    # Publishing twice (a retry, two organizers at once) is no error: the event simply stays on sale.
    (EventStatus.ON_SALE, EventAction.PUBLISH): EventStatus.ON_SALE,
}


@dataclass(frozen=True, slots=True)
class Outcome:
    change: Change
    status: EventStatus  # after the action: the same status unless it moved


def outcome(status: EventStatus, action: EventAction) -> Outcome:
    target = TRANSITIONS[(status, action)]
    if target is None:
        return Outcome(Change.REFUSED, status)
    return Outcome(Change.UNCHANGED if target == status else Change.MOVED, target)


def is_on_sale(status: str) -> bool:
    """Whether buyers see the event and its inventory is live (``status`` as stored)."""
    return status == EventStatus.ON_SALE
