"""An event on a venue's layout: which seated ticket type sells which seat, and the event's stock.

The event copies the layout's seats in index order (seat i of the event is seat i of the layout). A seated
ticket type naming a ``zone`` sells that zone's seats; the one seated type without a zone (at most one:
engine/catalog/rules.py ``type_zone_problems``) sells every seat no other type claims. A seat no type sells,
and a seat marked ``not_for_sale``, is blocked: in the event, never available. A type's capacity is the number
of seats it sells.
"""

from __future__ import annotations

from dataclasses import replace

from engine.catalog.layouts import Layout, SeatAttribute
from engine.catalog.rules import EventDefinition, Problem, StockedEvent, TicketKind, TicketType


def layout_event_problems(definition: EventDefinition, layout: Layout) -> list[Problem]:
    """What the definition asks of the layout that it does not have (a zone it lacks)."""
    zones = layout.zone_codes()
    known = f"the layout's zones are {', '.join(zones)}" if zones else "the layout has none"
    return [
        Problem(f"ticket_types.{i}.zone", f"unknown zone {t.zone!r}; {known}")
        for i, t in enumerate(definition.ticket_types)
        if t.kind == TicketKind.SEATED and t.zone is not None and t.zone not in zones
    ]


def seat_ticket_types(layout: Layout, types: tuple[TicketType, ...]) -> tuple[str | None, ...]:
    """Per seat index, the code of the seated type selling it, or None (blocked)."""
    by_zone = {t.zone: t.code for t in types if t.kind == TicketKind.SEATED and t.zone is not None}
    rest = next((t.code for t in types if t.kind == TicketKind.SEATED and t.zone is None), None)
    return tuple(
        None if SeatAttribute.NOT_FOR_SALE in seat.attributes else by_zone.get(seat.zone, rest)  # type: ignore[arg-type]
        for seat in layout.seats
    )


def stocked_on(definition: EventDefinition, layout: Layout) -> StockedEvent:
    """The stock of a definition on ``layout``; check ``event_problems`` and ``layout_event_problems`` first."""
    seat_types = seat_ticket_types(layout, definition.ticket_types)
    sold_by: dict[str | None, int] = {}
    for code in seat_types:
        sold_by[code] = sold_by.get(code, 0) + 1
    return StockedEvent(
        name=definition.name,
        starts_at=definition.starts_at,
        hold_ttl_s=definition.hold_ttl_s,
        max_tickets_per_buyer=definition.max_tickets_per_buyer,
        seat_ids=layout.seat_ids(),
        ticket_types=tuple(
            replace(t, capacity=sold_by.get(t.code, 0) if t.kind == TicketKind.SEATED else t.capacity)
            for t in definition.ticket_types
        ),
        dedicated=definition.dedicated,
        seat_types=seat_types,
        fees=definition.fees,
        tax=definition.tax,
    )
