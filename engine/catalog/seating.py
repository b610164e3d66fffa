"""Seat ids from a seating layout: ``"{section}-{row}-{number}"``, numbered from 1, in section/row/number order.

Section names and row labels are restricted to ``[A-Za-z0-9]{1,32}`` so an id can never be read two ways
("A-1-2" cannot come from section "A-1", row "2"); the only way to repeat an id is to repeat a section/row pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine import limits

NAME_PATTERN = rf"^[A-Za-z0-9]{{1,{limits.label_chars_max}}}$"
_NAME_RE = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    seats: int


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    rows: tuple[Row, ...]


def is_name(value: str) -> bool:
    return _NAME_RE.fullmatch(value) is not None


def seat_id(section: str, row: str, number: int) -> str:
    return f"{section}-{row}-{number}"


def seat_count(sections: Sequence[Section]) -> int:
    return sum(row.seats for section in sections for row in section.rows)


def seat_ids(sections: Sequence[Section]) -> tuple[str, ...]:
    """Every seat id in index order. Callers check ``seat_count`` against the limit first."""
    return tuple(
        seat_id(section.name, row.label, number)
        for section in sections
        for row in section.rows
        for number in range(1, row.seats + 1)
    )


def repeated_rows(sections: Sequence[Section]) -> list[tuple[int, int | None]]:
    """Positions that would repeat seat ids: (section index, None) for a repeated section name, or
    (section index, row index) for a row label repeated within its section."""
    problems: list[tuple[int, int | None]] = []
    names: set[str] = set()
    for s, section in enumerate(sections):
        if section.name in names:
            problems.append((s, None))
        names.add(section.name)
        labels: set[str] = set()
        for r, row in enumerate(section.rows):
            if row.label in labels:
                problems.append((s, r))
            labels.add(row.label)
    return problems
