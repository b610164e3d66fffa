"""Each event's seat map as SVG: the drawing cached per event, the seats coloured from the live availability copy.

The drawing (every seat's position, id and whether it is blocked) never changes once the event exists: it is
read from Postgres once per process and event (the event's seats, and its layout's coordinates or its inline
seating's rows), then kept in a bounded LRU (by bytes). A request colours it from the availability copy in memory
(gateway/availability.py: the availability and sold bitmaps, current to the deltas), so no request reads
Postgres once the drawing is cached; the last rendering is kept per event and version, so a map polled while
nothing changes is served as it is.

One ``<circle>`` per seat, ``id`` = the seat id, ``class`` = available | held | sold | blocked (blocked: a seat
no ticket type sells). A draft has no inventory yet: its sellable seats show available.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from cachetools import LRUCache

from engine.catalog.seat_geometry import SeatGeometry
from gateway.errors import storage_outage_as_503
from persistence.catalog import events as pg_events
from persistence.catalog import geometry as pg_geometry
from persistence.inventory.live_state import AvailabilityView
from persistence.tenancy import TenantPool

SVG_MEDIA_TYPE = "image/svg+xml"
drawings_cached_bytes_max = 128 * 1024 * 1024
seat_radius_share = 0.4  # of the smallest gap between two seats of a row
margin_share = 1.5  # of the radius, around the seats
_STYLE = (
    "<style>circle{stroke:#333;stroke-width:0.05}.available{fill:#2e9e4f}.held{fill:#f0a30a}"
    ".sold{fill:#c62828}.blocked{fill:#9e9e9e}</style>"
)
EventKey = tuple[str, str]  # (org id, event id)


@dataclass(frozen=True, slots=True)
class Drawing:
    """An event's seat map without colours: ``opening`` (svg, style), per seat the text up to its class, and
    which seats are blocked."""

    opening: str
    seats: tuple[str, ...]
    blocked: bytes  # 1 per blocked seat index, else 0
    size_bytes: int

    def render(self, view: AvailabilityView | None) -> bytes:
        """The map coloured by ``view`` (None: nothing held or sold yet)."""
        parts = [self.opening]
        blocked = self.blocked
        available = view.bitmap if view is not None else None
        sold = view.sold_bitmap if view is not None else b""
        for index, text in enumerate(self.seats):
            parts.append(text)
            if blocked[index]:
                parts.append('blocked"/>')
                continue
            byte, mask = index >> 3, 0x80 >> (index & 7)
            if available is None or (byte < len(available) and available[byte] & mask):
                parts.append('available"/>')
            elif byte < len(sold) and sold[byte] & mask:
                parts.append('sold"/>')
            else:
                parts.append('held"/>')
        parts.append("</svg>")
        return "".join(parts).encode()


def drawing(geometry: Sequence[SeatGeometry], blocked: Sequence[bool]) -> Drawing:
    """The drawing of seats at ``geometry`` (index order), ``blocked`` per seat."""
    radius = _radius(geometry)
    margin = radius * margin_share
    if geometry:
        left, right = min(g.x for g in geometry) - margin, max(g.x for g in geometry) + margin
        top, bottom = min(g.y for g in geometry) - margin, max(g.y for g in geometry) + margin
    else:
        left, right, top, bottom = 0.0, 1.0, 0.0, 1.0
    opening = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{left!r} {top!r} {right - left!r} {bottom - top!r}">'
        f"{_STYLE}"
    )
    seats = tuple(f'<circle id="{g.seat_id}" cx="{g.x!r}" cy="{g.y!r}" r="{radius!r}" class="' for g in geometry)
    size = len(opening) + sum(len(s) for s in seats) + len(seats)
    return Drawing(opening, seats, bytes(bytearray(1 if b else 0 for b in blocked)), size)


def _radius(geometry: Sequence[SeatGeometry]) -> float:
    gaps = [
        abs(b.x - a.x)
        for a, b in itertools.pairwise(geometry)
        if (a.section, a.row) == (b.section, b.row) and b.x != a.x
    ]
    return seat_radius_share * (min(gaps) if gaps else 1.0)


class SeatMaps:
    """The process's drawings, one per event, bounded by bytes."""

    def __init__(self, db: TenantPool, *, bytes_max: int = drawings_cached_bytes_max) -> None:
        self._db = db
        self._drawings: LRUCache[EventKey, Drawing] = LRUCache(bytes_max, getsizeof=lambda d: d.size_bytes)
        self._rendered: LRUCache[EventKey, tuple[int, bytes]] = LRUCache(
            bytes_max, getsizeof=lambda kept: len(kept[1])
        )

    async def drawing(self, org_id: str, event_id: str) -> Drawing | None:
        """The event's drawing (None: the org has no such event)."""
        key = (org_id, event_id)
        found = self._drawings.get(key)
        if found is None:
            found = await self._load(org_id, event_id)
            if found is None:
                return None
            if found.size_bytes <= self._drawings.maxsize:
                self._drawings[key] = found
        return found

    async def svg(self, org_id: str, event_id: str, view: AvailabilityView | None) -> bytes | None:
        """The event's seat map coloured by ``view``; None when the org has no such event."""
        key = (org_id, event_id)
        kept = self._rendered.get(key)
        if view is not None and kept is not None and kept[0] == view.version:
            return kept[1]
        found = await self.drawing(org_id, event_id)
        if found is None:
            return None
        body = found.render(view)
        if view is not None and len(body) <= self._rendered.maxsize:
            self._rendered[key] = (view.version, body)
        return body

    async def _load(self, org_id: str, event_id: str) -> Drawing | None:
        with storage_outage_as_503():
            async with self._db.tenant(org_id) as db:
                record = await pg_events.get_event(db, event_id)
                if record is None:
                    return None
                seats = await pg_events.get_event_seats(db, event_id)
                geometry = await pg_geometry.event_geometry(db, record)
        assert seats is not None
        if tuple(g.seat_id for g in geometry) != seats.ids:
            raise AssertionError(f"{event_id}: its seats are not its layout's")  # a bug: never draw the wrong map
        return drawing(geometry, [code is None for code in seats.types])  # a seat no type sells is blocked
