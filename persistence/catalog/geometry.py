"""Each event seat's geometry, read from what the event was made on: its layout's seats, or its inline seating.

For whoever keeps an event's geometry in memory (the seat map in the gateway; best available in the inventory:
read once per incarnation, never per request). Index order, as engine/catalog/seat_geometry.py defines it.
"""

from __future__ import annotations

from typing import Any

from engine.catalog import seating
from engine.catalog.seat_geometry import SeatGeometry, layout_geometry, seating_geometry
from persistence.catalog.events import EventRecord
from persistence.catalog.layouts import get_layout
from persistence.tenancy import OrgDb


def inline_sections(raw: dict[str, Any] | None) -> tuple[seating.Section, ...]:
    """An event's inline seating as stored (the organizer's JSON, already checked), as the engine's sections."""
    if raw is None:
        return ()
    return tuple(
        seating.Section(s["name"], tuple(seating.Row(r["label"], r["seats"]) for r in s["rows"]))
        for s in raw["sections"]
    )


async def event_geometry(db: OrgDb, event: EventRecord) -> tuple[SeatGeometry, ...]:
    """The geometry of each of ``event``'s seats, in index order."""
    if event.layout_id is not None:
        found = await get_layout(db, event.layout_id)
        if found is None:
            raise LookupError(f"{event.id}: its layout {event.layout_id} is gone")  # a foreign key prevents it
        return layout_geometry(found.layout)
    return seating_geometry(inline_sections(event.seating))
