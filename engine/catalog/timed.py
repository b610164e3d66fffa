"""Timed transitions: what the catalog timer (actors/catalog_timer.py) must do to an event, and when.

- ``published`` -> ``on_sale`` once ``sale_opens_at`` has passed;
- ``on_sale``, ``paused`` or ``sold_out`` -> ``closed`` once ``sale_closes_at`` has passed;
- a presale window opening brings the inventory live (no status moves: the gateway lets presale holds in by time).

A time already past is due at once, so a timer that was down across it fires it when it comes back.
"""

from __future__ import annotations

from engine.catalog.lifecycle import EventStatus
from engine.catalog.presales import SaleSchedule

_CLOSABLE = frozenset({EventStatus.ON_SALE, EventStatus.PAUSED, EventStatus.SOLD_OUT})


def due_move(status: str, schedule: SaleSchedule, now: float) -> EventStatus | None:
    """The status the timer must move the event to now, or None."""
    opens, closes = schedule.sale_opens_at, schedule.sale_closes_at
    if status == EventStatus.PUBLISHED and opens is not None and now >= opens:
        return EventStatus.ON_SALE
    if status in _CLOSABLE and closes is not None and now >= closes:
        return EventStatus.CLOSED
    return None


def next_wake(status: str, schedule: SaleSchedule, now: float) -> float | None:
    """When the timer must next look at the event (a time in the past: at once), or None: never, as it stands."""
    times = []
    if status == EventStatus.PUBLISHED:
        if schedule.sale_opens_at is not None:
            times.append(schedule.sale_opens_at)
        times += [p.opens_at for p in schedule.presales if p.opens_at > now]
    if status in _CLOSABLE and schedule.sale_closes_at is not None:
        times.append(schedule.sale_closes_at)
    return min(times) if times else None
