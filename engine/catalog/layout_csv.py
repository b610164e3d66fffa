"""A layout as CSV: the header ``section,row,number,x,y,zone,attributes``, then one seat a line, in index order.

``zone`` may be empty (no zone); ``attributes`` is ``;``-separated (empty: none). The layout's zones are the
zone codes the lines name, in order of first use, each named by its code (CSV has no place for zone names).
Reading reports every bad line at once (``LineProblem``: the 1-based line of the file, the header being line
1) and builds nothing then; a malformed file (bad UTF-8, an unclosed quote) is reported where it breaks.
``layout_csv`` writes the canonical file, which reads back to an equal layout and writes back byte for byte.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from engine import limits
from engine.catalog import layouts, seating
from engine.catalog.layouts import Layout, LayoutSeat, Zone

HEADER = ("section", "row", "number", "x", "y", "zone", "attributes")
ATTRIBUTE_SEPARATOR = ";"
MEDIA_TYPE = "text/csv"


@dataclass(frozen=True, slots=True)
class LineProblem:
    line: int  # 1-based, the header is line 1
    message: str


def layout_csv(layout: Layout) -> str:
    """The canonical CSV of a layout (``\\n`` line ends; every value needs no quoting by the layout's rules)."""
    lines = [",".join(HEADER)]
    for seat in layout.seats:
        lines.append(
            f"{seat.section},{seat.row},{seat.number},{seat.x!r},{seat.y!r},{seat.zone or ''},"
            f"{ATTRIBUTE_SEPARATOR.join(seat.attributes)}"
        )
    return "\n".join(lines) + "\n"


def layout_from_csv(raw: bytes, name: str) -> tuple[Layout | None, list[LineProblem]]:
    """The layout a CSV file describes (named ``name``, which the caller checks), or None with every problem."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, [LineProblem(raw[: error.start].count(b"\n") + 1, "is not UTF-8 text")]
    reader = _CsvReader()
    reader.read(text.removeprefix("\ufeff"))
    if reader.problems:
        return None, reader.problems
    return Layout(name, tuple(Zone(code, code) for code in reader.zones), tuple(reader.seats)), []


class _CsvReader:
    def __init__(self) -> None:
        self.problems: list[LineProblem] = []
        self.seats: list[LayoutSeat] = []
        self.zones: dict[str, None] = {}  # ordered set
        self.first_line: dict[tuple[str, str, int], int] = {}
        self.closed_sections: set[str] = set()
        self.closed_rows: set[tuple[str, str]] = set()
        self.current: tuple[str, str] | None = None
        self.count = 0

    def problem(self, line: int, message: str) -> None:
        self.problems.append(LineProblem(line, message))

    def read(self, text: str) -> None:
        rows = csv.reader(io.StringIO(text, newline=""), strict=True)
        try:
            header = next(rows, None)
            if header is None:
                self.problem(1, f"the file is empty; the header is {','.join(HEADER)}")
                return
            if tuple(cell.strip() for cell in header) != HEADER:
                self.problem(1, f"the header must be {','.join(HEADER)}")
                return
            for cells in rows:
                if cells:  # a blank line is skipped
                    self.line(rows.line_num, cells)
        except csv.Error as error:
            self.problem(rows.line_num, f"malformed CSV: {error}")
            return
        if self.count == 0:
            self.problem(1, "the layout has no seats: give one seat a line after the header")
        elif self.count > limits.layout_seats_max:
            self.problem(1, layouts.seat_limit_message(self.count))

    def line(self, number: int, cells: list[str]) -> None:
        self.count += 1
        if len(cells) != len(HEADER):
            self.problem(number, f"has {len(cells)} fields; expected {len(HEADER)}: {','.join(HEADER)}")
            return
        section, row, seat_number, x, y, zone, attributes = cells
        messages = [
            _named("section", layouts.label_message(section)),
            _named("row", layouts.label_message(row)),
        ]
        parsed_number = _whole(seat_number)
        messages.append(_named("number", layouts.number_message(parsed_number)))
        xy = [_number(x), _number(y)]
        messages += [_named(axis, layouts.coordinate_message(v)) for axis, v in zip(("x", "y"), xy, strict=True)]
        seat_zone = zone or None
        messages.append(_named("zone", layouts.seat_zone_message(seat_zone, None)))
        listed = attributes.split(ATTRIBUTE_SEPARATOR) if attributes else []
        messages.append(_named("attributes", layouts.attributes_message(listed)))
        found = [m for m in messages if m is not None]
        if not found and isinstance(parsed_number, int):
            found += self.place(number, section, row, parsed_number)
        for message in found:
            self.problem(number, message)
        if found or self.count > limits.layout_seats_max:
            return
        assert isinstance(parsed_number, int) and isinstance(xy[0], float) and isinstance(xy[1], float)
        if seat_zone is not None:
            self.zones[seat_zone] = None
        self.seats.append(LayoutSeat(section, row, parsed_number, xy[0], xy[1], seat_zone, tuple(listed)))

    def place(self, line: int, section: str, row: str, number: int) -> list[str]:
        """Problems of the seat's place: a repeated seat, or a row or section split by others."""
        key = (section, row, number)
        first = self.first_line.get(key)
        if first is not None:
            return [f"repeats seat {seating.seat_id(section, row, number)} (first on line {first})"]
        self.first_line[key] = line
        found = []
        if self.current != (section, row):
            if self.current is not None:
                self.closed_rows.add(self.current)
                if self.current[0] != section:
                    self.closed_sections.add(self.current[0])
            if section in self.closed_sections:
                found.append(f"section {section} continues after other sections: keep a section's lines together")
            elif (section, row) in self.closed_rows:
                found.append(f"row {section}-{row} continues after other rows: keep a row's lines together")
            self.current = (section, row)
        return found


def _named(column: str, message: str | None) -> str | None:
    return None if message is None else f"{column} {message}"


def _whole(text: str) -> int | str:
    """A seat number as written: digits without a leading zero (else the text, which the check refuses)."""
    if text.isascii() and text.isdigit() and not text.startswith("0") and len(text) <= 9:
        return int(text)
    return text


def _number(text: str) -> float | str:
    try:
        value = float(text)
    except ValueError:
        return text
    return value
