"""Where each of an event's seats is: what best available (engine/inventory/) and the seat map work from.

``SeatGeometry`` per seat index (the availability bitmap's order): the seat's section, row, number, drawing
position (x, y; the stage is at the smallest y), zone and attributes. An event on a layout has its layout's
seats in the layout's order (``layout_geometry``); an event with inline ``seating`` has plain rows, drawn as a
layout's plain rows are (x = number, y = the row's position counting every row in order: ``seating_geometry``).
Pure and cheap: a tuple of frozen records, built once per event by whoever caches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.catalog import seating
from engine.catalog.layouts import Layout


@dataclass(frozen=True, slots=True)
class SeatGeometry:
    seat_id: str
    section: str
    row: str
    number: int
    x: float
    y: float
    zone: str | None
    attributes: tuple[str, ...]


def layout_geometry(layout: Layout) -> tuple[SeatGeometry, ...]:
    """Each seat of an event made on ``layout``, in index order."""
    return tuple(
        SeatGeometry(s.seat_id, s.section, s.row, s.number, s.x, s.y, s.zone, s.attributes) for s in layout.seats
    )


def seating_geometry(sections: Sequence[seating.Section]) -> tuple[SeatGeometry, ...]:
    """Each seat of an event with inline seating, in index order (the order of ``seating.seat_ids``)."""
    found: list[SeatGeometry] = []
    position = 0
    for section in sections:
        for row in section.rows:
            position += 1
            found.extend(
                SeatGeometry(
                    seating.seat_id(section.name, row.label, n), section.name, row.label, n, float(n),
                    float(position), None, (),
                )
                for n in range(1, row.seats + 1)
            )
    return tuple(found)
