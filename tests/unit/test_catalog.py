"""engine/catalog/rules.py: every rule of an event definition and of its stock, and what a definition derives."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from engine import limits
from engine.catalog.rules import (
    EventDefinition,
    Price,
    Problem,
    StockedEvent,
    TicketType,
    capacity_of,
    event_problems,
    layout_problems,
    seat_ids,
    stock_problems,
    stocked,
    stocked_problems,
    ticket_type_problems,
)
from engine.catalog.seating import Row, Section

ZAR = Price(15_000, "ZAR")
GA = TicketType("GA", "ga", 50, ZAR)
SEAT = TicketType("SEAT", "seated", None, ZAR)
LAYOUT = (Section("A", (Row("1", 2), Row("2", 3))), Section("B", (Row("1", 1),)))
DEFINITION = EventDefinition(
    name="Flash Sale Live",
    starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC),
    hold_ttl_s=600,
    max_tickets_per_buyer=10,
    layout=LAYOUT,
    ticket_types=(GA, SEAT),
)


def fields(problems: list[Problem]) -> list[str]:
    return [p.field for p in problems]


def test_a_good_definition_has_no_problems_and_neither_has_its_stock() -> None:
    assert event_problems(DEFINITION) == []
    assert stocked_problems(stocked(DEFINITION)) == []
    ga_only = replace(DEFINITION, layout=None, ticket_types=(GA,))
    assert event_problems(ga_only) == [] and stocked_problems(stocked(ga_only)) == []


def test_derivations() -> None:
    assert seat_ids(DEFINITION) == ("A-1-1", "A-1-2", "A-2-1", "A-2-2", "A-2-3", "B-1-1")
    assert seat_ids(replace(DEFINITION, layout=None)) == ()
    assert capacity_of(SEAT, 6) == 6
    assert capacity_of(GA, 6) == 50
    stock = stocked(DEFINITION)
    assert stock.seat_ids == seat_ids(DEFINITION)
    assert [(t.code, t.capacity) for t in stock.ticket_types] == [("GA", 50), ("SEAT", 6)]
    assert (stock.name, stock.hold_ttl_s, stock.max_tickets_per_buyer) == ("Flash Sale Live", 600, 10)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": ""}, [Problem("name", "must be 1..200 characters")]),
        ({"name": "n" * (limits.name_chars_max + 1)}, [Problem("name", "must be 1..200 characters")]),
        ({"starts_at": datetime(2026, 12, 31, 18)}, [Problem("starts_at", "must carry a time zone")]),
        ({"hold_ttl_s": limits.hold_ttl_s_max + 1}, [Problem("hold_ttl_s", "must be 1..3600")]),
        ({"max_tickets_per_buyer": 0}, [Problem("max_tickets_per_buyer", "must be 1..100")]),
        (
            {"layout": (Section("A", (Row("1", 1),)), Section("A", (Row("2", 1),)))},
            [Problem("seating.sections.1.name", "repeats a section name")],
        ),
        (
            {"layout": (Section("A", (Row("1", 1), Row("2", 1), Row("1", 1))),)},
            [Problem("seating.sections.0.rows.2.label", "repeats a row label in this section")],
        ),
        (
            {"layout": tuple(Section(f"S{s}", (Row("1", 1_000),)) for s in range(101))},
            [Problem("seating.sections", "101000 seats; at most 100000 per event")],
        ),
        (
            {"ticket_types": (GA,) * (limits.ticket_types_per_event_max + 1), "layout": None},
            [Problem("ticket_types", "at most 20 ticket types per event")]
            + [Problem(f"ticket_types.{i}.code", "repeats a ticket type code") for i in range(1, 21)],
        ),
        (
            {"ticket_types": (replace(GA, capacity=None), SEAT)},
            [Problem("ticket_types.0.capacity", "a GA ticket type needs a capacity")],
        ),
        (
            {"ticket_types": (GA, replace(SEAT, capacity=6))},
            [Problem("ticket_types.1.capacity", "a seated ticket type's capacity is its seat count; omit it")],
        ),
        (
            {"ticket_types": (replace(GA, capacity=limits.ga_capacity_max + 1), SEAT)},
            [Problem("ticket_types.0.capacity", "must be 0..1000000")],
        ),
        ({"ticket_types": (replace(GA, code=""), SEAT)}, [Problem("ticket_types.0.code", "must be 1..32 characters")]),
        (
            {"ticket_types": (replace(GA, kind="vip"), SEAT)},
            [Problem("ticket_types.0.kind", "must be one of ga, seated")],
        ),
        (
            {"ticket_types": (replace(GA, price=Price(-1, "ZAR")), SEAT)},
            [Problem("ticket_types.0.price.amount_minor", "must be 0..1000000000000 minor units")],
        ),
        (
            {"ticket_types": (replace(GA, price=Price(1, "zar")), SEAT)},
            [Problem("ticket_types.0.price.currency", "must be three upper-case letters (ISO 4217)")],
        ),
        (
            {"ticket_types": (GA, SEAT, replace(GA, capacity=1))},
            [Problem("ticket_types.2.code", "repeats a ticket type code")],
        ),
        (
            {"ticket_types": (GA, SEAT, replace(SEAT, code="BOX"))},
            [Problem("ticket_types.2.kind", "at most one seated ticket type per event")],
        ),
        ({"layout": None}, [Problem("seating", "a seated ticket type needs seating")]),
        ({"ticket_types": (GA,)}, [Problem("seating", "seating needs a seated ticket type")]),
    ],
)
def test_each_rule(change: dict[str, object], expected: list[Problem]) -> None:
    assert event_problems(replace(DEFINITION, **change)) == expected  # type: ignore[arg-type]


def test_several_problems_are_reported_at_once_in_field_order() -> None:
    broken = replace(
        DEFINITION,
        hold_ttl_s=0,
        layout=(Section("A", (Row("1", 1), Row("1", 1))),),
        ticket_types=(replace(GA, capacity=None), replace(GA, code="SEAT"), SEAT, replace(SEAT, code="X")),
    )
    assert fields(event_problems(broken)) == [
        "hold_ttl_s",
        "seating.sections.0.rows.1.label",
        "ticket_types.0.capacity",
        "ticket_types.2.code",
        "ticket_types.3.kind",
    ]


def test_the_parts_report_paths_relative_to_themselves() -> None:
    assert fields(layout_problems((Section("A", (Row("1", 1),)), Section("A", (Row("1", 1),))))) == [
        "sections.1.name"
    ]
    assert fields(ticket_type_problems(replace(GA, capacity=None))) == ["capacity"]


STOCK = stocked(DEFINITION)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"seat_ids": (*STOCK.seat_ids, "A-1-1")}, "seat_ids"),
        ({"seat_ids": tuple(f"S{n}" for n in range(limits.seats_per_event_max + 1))}, "seat_ids"),
        ({"seat_ids": ("x" * (limits.id_chars_max + 1),)}, "seat_ids"),
        ({"seat_ids": ()}, "seat_ids"),
        ({"ticket_types": (STOCK.ticket_types[0],)}, "seat_ids"),
        ({"ticket_types": (STOCK.ticket_types[0], replace(SEAT, capacity=5))}, "ticket_types"),
        ({"ticket_types": (replace(GA, capacity=None), STOCK.ticket_types[1])}, "ticket_types.0.capacity"),
        ({"ticket_types": (replace(GA, capacity=-1), STOCK.ticket_types[1])}, "ticket_types.0.capacity"),
        ({"ticket_types": (replace(GA, code="SEAT"), STOCK.ticket_types[1])}, "ticket_types.1.code"),
        ({"starts_at": datetime(2026, 1, 1)}, "starts_at"),
        ({"max_tickets_per_buyer": limits.max_tickets_per_buyer_max + 1}, "max_tickets_per_buyer"),
    ],
)
def test_each_stock_rule(change: dict[str, object], field: str) -> None:
    stock: StockedEvent = replace(STOCK, **change)  # type: ignore[arg-type]
    assert field in fields(stocked_problems(stock))


def test_stock_rules_over_plain_values() -> None:
    assert stock_problems(("A-1-1",), [("SEAT", "seated", 1), ("GA", "ga", limits.ga_capacity_max)]) == []
    assert stock_problems((), []) == []
    assert fields(stock_problems((), [("SEAT", "seated", 0)])) == ["seat_ids"]
