"""A venue's seating layout: zones, and seats with their section, row, number, drawing position and attributes.

A layout is reusable by many events and never changes once made; an event copies its seats (in index order,
the order of this module's ``Layout.seats``) and never edits it.

One validator for both ways in: ``layout_from_document`` takes the decoded JSON document and the CSV reader
(engine/catalog/layout_csv.py) reuses the same per-seat checks. Each reports every problem it finds, never
the first one only, and builds nothing when it finds any. The canonical document (``layout_document``) imports
back to an equal layout, so an export round-trips exactly.

The document's shape (API.md "Catalog"): ``{"name", "zones": [{"code", "name"}], "sections": [{"name", "rows":
[{"label", "seats": [{"number", "x", "y", "zone"?, "attributes"?}] | N, "zone"?}]}]}``. A row giving ``"seats": N``
has the plain seats 1..N at x = number, y = the row's position in the layout (1 for the first row of the first
section, counting every row in order), in the row's zone. Seats must keep a row together and a section
together (the document's nesting does; the CSV reader checks it), so index order and the nesting agree.
The stage is at the smallest y.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from engine import limits
from engine.catalog import seating
from engine.catalog.rules import Problem

ZONE_CODE_PATTERN = rf"^[A-Za-z0-9_-]{{1,{limits.label_chars_max}}}$"
_ZONE_CODE_RE = re.compile(ZONE_CODE_PATTERN)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# What an export carries beyond the document (GET /v1/layouts/{id}): read-only, ignored on import.
READ_ONLY_FIELDS = frozenset({"id", "venue_id", "seat_count", "created_at"})


class SeatAttribute(StrEnum):
    ACCESSIBLE = "accessible"
    RESTRICTED_VIEW = "restricted_view"
    COMPANION = "companion"
    NOT_FOR_SALE = "not_for_sale"  # in the layout, never sold: an event shows it blocked


@dataclass(frozen=True, slots=True)
class Zone:
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class LayoutSeat:
    section: str
    row: str
    number: int
    x: float
    y: float
    zone: str | None
    attributes: tuple[str, ...]

    @property
    def seat_id(self) -> str:
        return seating.seat_id(self.section, self.row, self.number)


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    zones: tuple[Zone, ...]
    seats: tuple[LayoutSeat, ...]  # index order: an event's seat i is seats[i]

    def seat_ids(self) -> tuple[str, ...]:
        return tuple(seat.seat_id for seat in self.seats)

    def zone_codes(self) -> tuple[str, ...]:
        return tuple(zone.code for zone in self.zones)


# ---- checks shared by the JSON and CSV readers: each answers a message, or None when the value is good ------


def name_message(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if not 1 <= len(value) <= limits.name_chars_max or _CONTROL_RE.search(value):
        return f"must be 1..{limits.name_chars_max} characters, no control characters"
    return None


def label_message(value: Any) -> str | None:
    """A section name or row label: [A-Za-z0-9]{1,32}, so a seat id can be read one way only."""
    if not isinstance(value, str):
        return "must be a string"
    if value == "":
        return "is empty"
    if not seating.is_name(value):
        return f"must be 1..{limits.label_chars_max} letters or digits"
    return None


def zone_code_message(value: Any) -> str | None:
    if not isinstance(value, str) or _ZONE_CODE_RE.fullmatch(value) is None:
        return f"must be 1..{limits.label_chars_max} letters, digits, '_' or '-'"
    return None


def seat_zone_message(value: Any, zones: frozenset[str] | None) -> str | None:
    """A seat's zone: None (no zone) or a code of the layout's zones (``zones`` None: any well-formed code)."""
    if value is None:
        return None
    shape = zone_code_message(value)
    if shape is not None:
        return shape
    if zones is not None and value not in zones:
        return f"unknown zone {value!r}" + (f"; the layout's zones are {', '.join(sorted(zones))}" if zones else "")
    return None


def number_message(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number"
    if not 1 <= value <= limits.seat_number_max:
        return f"must be 1..{limits.seat_number_max}"
    return None


def coordinate_message(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "must be a number"
    if not math.isfinite(value) or abs(value) > limits.layout_coordinate_abs_max:
        return f"must be a finite number within ±{limits.layout_coordinate_abs_max:g}"
    return None


def attributes_message(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(a, str) for a in value):
        return "must be a list of strings"
    unknown = [a for a in value if a not in tuple(SeatAttribute)]
    if unknown:
        return f"unknown attributes {', '.join(unknown)}; known: {', '.join(SeatAttribute)}"
    if len(set(value)) != len(value):
        return "repeats an attribute"
    return None


def seat_limit_message(count: int) -> str:
    return f"{count} seats; at most {limits.layout_seats_max} per layout"


# ---- the JSON document -------------------------------------------------------------------------------------

_LAYOUT_FIELDS = frozenset({"name", "zones", "sections"})
_ZONE_FIELDS = frozenset({"code", "name"})
_SECTION_FIELDS = frozenset({"name", "rows"})
_ROW_FIELDS = frozenset({"label", "seats", "zone"})
_SEAT_FIELDS = frozenset({"number", "x", "y", "zone", "attributes"})


def layout_from_document(document: Any) -> tuple[Layout | None, list[Problem]]:
    """The layout a decoded JSON document describes, or None with every problem (each naming its field by the
    document's dot-separated path: "sections.0.rows.2.seats.5.number")."""
    reader = _DocumentReader()
    layout = reader.read(document)
    return (layout if not reader.problems else None), reader.problems


class _DocumentReader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.seats: list[LayoutSeat] = []
        self.count = 0  # seats described, plain rows included, even when they are not built

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def fields(self, value: Any, path: str, known: frozenset[str], required: Sequence[str]) -> dict[str, Any]:
        """``value`` as an object: problems for every unknown and every missing field."""
        if not isinstance(value, dict):
            self.problem(path or "body", "must be an object")
            return {}
        prefix = f"{path}." if path else ""
        ignored = READ_ONLY_FIELDS if not path else frozenset()
        for name in value:
            if name not in known and name not in ignored:
                self.problem(f"{prefix}{name}", "unknown field")
        for name in required:
            if name not in value:
                self.problem(f"{prefix}{name}", "is required")
        return value

    def items(self, value: Any, path: str, items_max: int, what: str) -> list[Any]:
        if not isinstance(value, list):
            self.problem(path, "must be a list")
            return []
        if not value:
            self.problem(path, f"needs at least one {what}")
        if len(value) > items_max:
            self.problem(path, f"at most {items_max} {what}s")
            return value[:items_max]
        return value

    def check(self, path: str, message: str | None) -> bool:
        if message is not None:
            self.problem(path, message)
        return message is None

    def read(self, document: Any) -> Layout | None:
        top = self.fields(document, "", _LAYOUT_FIELDS, ("name", "sections"))
        name = _field(top, "name")
        if "name" in top:
            self.check("name", name_message(name))
        zones = self.zones(top.get("zones", []))
        known = frozenset(zone.code for zone in zones)
        if "sections" in top:
            sections = self.items(top["sections"], "sections", limits.sections_per_event_max, "section")
            names: set[str] = set()
            rows_before = 0
            for s, section in enumerate(sections):
                rows_before += self.section(section, f"sections.{s}", names, known, rows_before)
        if self.count > limits.layout_seats_max:
            self.problem("sections", seat_limit_message(self.count))
        if self.problems:
            return None
        return Layout(name, zones, tuple(self.seats))

    def zones(self, value: Any) -> tuple[Zone, ...]:
        zones: list[Zone] = []
        codes: set[str] = set()
        # An empty list is no zones; anything else (null, {}, 0 included) must be a list of zones.
        given = [] if value == [] else self.items(value, "zones", limits.zones_per_layout_max, "zone")
        for z, zone in enumerate(given):
            fields = self.fields(zone, f"zones.{z}", _ZONE_FIELDS, ("code", "name"))
            code, name = _field(fields, "code"), _field(fields, "name")
            good = "code" in fields and self.check(f"zones.{z}.code", zone_code_message(code))
            good = ("name" in fields and self.check(f"zones.{z}.name", name_message(name))) and good
            if good and code in codes:
                self.problem(f"zones.{z}.code", f"repeats zone {code!r}")
            elif good:
                codes.add(code)
                zones.append(Zone(code, name))
        return tuple(zones)

    def section(self, value: Any, path: str, names: set[str], zones: frozenset[str], rows_before: int) -> int:
        """Read one section; answers how many rows it has (plain rows' y counts every row before them)."""
        fields = self.fields(value, path, _SECTION_FIELDS, ("name", "rows"))
        name = _field(fields, "name")
        good_name = "name" in fields and self.check(f"{path}.name", label_message(name))
        if good_name and name in names:
            self.problem(f"{path}.name", f"repeats section {name!r}")
        if good_name:
            names.add(name)
        if "rows" not in fields:
            return 0
        rows = self.items(fields["rows"], f"{path}.rows", limits.rows_per_section_max, "row")
        labels: set[str] = set()
        for r, row in enumerate(rows):
            self.row(row, f"{path}.rows.{r}", name if good_name else None, labels, zones, rows_before + r + 1)
        return len(rows)

    def row(
        self, value: Any, path: str, section: str | None, labels: set[str], zones: frozenset[str], position: int
    ) -> None:
        fields = self.fields(value, path, _ROW_FIELDS, ("label", "seats"))
        label = _field(fields, "label")
        good_label = "label" in fields and self.check(f"{path}.label", label_message(label))
        if good_label and label in labels:
            self.problem(f"{path}.label", f"repeats row {label!r} of this section")
        if good_label:
            labels.add(label)
        zone = _field(fields, "zone")
        good_zone = self.check(f"{path}.zone", seat_zone_message(zone, zones))
        if "seats" not in fields:
            return
        seats = fields["seats"]
        placed = section is not None and good_label and good_zone
        if isinstance(seats, int) and not isinstance(seats, bool):
            if not 1 <= seats <= limits.seats_per_row_max:
                self.problem(f"{path}.seats", f"must be 1..{limits.seats_per_row_max} seats")
                return
            self.count += seats
            if placed and self.count <= limits.layout_seats_max:
                assert section is not None
                self.seats.extend(
                    LayoutSeat(section, label, n, float(n), float(position), zone, ()) for n in range(1, seats + 1)
                )
            return
        if not isinstance(seats, list):
            self.problem(f"{path}.seats", "must be a number of seats or a list of seats")
            return
        listed = self.items(seats, f"{path}.seats", limits.seats_per_row_max, "seat")
        numbers: set[int] = set()
        for n, seat in enumerate(listed):
            self.seat(seat, f"{path}.seats.{n}", (section, label) if placed else None, numbers, zone, zones)

    def seat(
        self,
        value: Any,
        path: str,
        place: tuple[str | None, Any] | None,
        numbers: set[int],
        row_zone: str | None,
        zones: frozenset[str],
    ) -> None:
        self.count += 1
        fields = self.fields(value, path, _SEAT_FIELDS, ("number", "x", "y"))
        number = _field(fields, "number")
        good = "number" in fields and self.check(f"{path}.number", number_message(number))
        if good and number in numbers and place is not None:
            self.problem(f"{path}.number", f"repeats seat {seating.seat_id(str(place[0]), place[1], number)}")
            good = False
        elif good and number in numbers:
            self.problem(f"{path}.number", f"repeats seat number {number} of this row")
            good = False
        if good:
            numbers.add(number)
        for axis in ("x", "y"):
            good = (axis in fields and self.check(f"{path}.{axis}", coordinate_message(fields[axis]))) and good
        zone = fields.get("zone", row_zone)
        good = self.check(f"{path}.zone", seat_zone_message(zone, zones)) and good
        attributes = fields.get("attributes", [])
        good = self.check(f"{path}.attributes", attributes_message(attributes)) and good
        if good and place is not None and self.count <= limits.layout_seats_max:
            section, label = place
            assert section is not None
            self.seats.append(
                LayoutSeat(section, label, number, float(fields["x"]), float(fields["y"]), zone, tuple(attributes))
            )


def _field(fields: dict[str, Any], name: str) -> Any:
    """A field of a JSON object as it came (None when absent: callers check presence first)."""
    return fields.get(name)


# ---- the canonical document --------------------------------------------------------------------------------


def layout_document(layout: Layout) -> dict[str, Any]:
    """The layout as its canonical JSON document: every seat listed, in index order; imports back equal."""
    sections: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for seat in layout.seats:
        if not sections or sections[-1]["name"] != seat.section:
            rows = []
            sections.append({"name": seat.section, "rows": rows})
        if not rows or rows[-1]["label"] != seat.row:
            rows.append({"label": seat.row, "seats": []})
        rows[-1]["seats"].append(
            {"number": seat.number, "x": seat.x, "y": seat.y, "zone": seat.zone, "attributes": list(seat.attributes)}
        )
    return {
        "name": layout.name,
        "zones": [{"code": zone.code, "name": zone.name} for zone in layout.zones],
        "sections": sections,
    }


def capped(problems: Sequence[Problem]) -> tuple[list[Problem], bool]:
    """At most ``layout_problems_reported_max`` problems, and whether some were left out."""
    cap = limits.layout_problems_reported_max
    return list(problems[:cap]), len(problems) > cap
