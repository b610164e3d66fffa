"""engine/catalog/layouts.py and layout_csv.py: the JSON and CSV readers report every problem at once and build
nothing then; the canonical exports import back to an equal layout and export again byte for byte; the seat
geometry and an event's zones on a layout."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import limits
from engine.catalog import layout_csv, layout_events, layouts, seat_geometry, seating
from engine.catalog.layouts import Layout, LayoutSeat, SeatAttribute, Zone
from engine.catalog.rules import EventDefinition, Price, TicketType, event_problems, stocked_problems

HEADER = "section,row,number,x,y,zone,attributes\n"

# ---- strategies ----------------------------------------------------------------------------------------------

labels = st.from_regex(r"[A-Za-z0-9]{1,4}", fullmatch=True)
zone_codes = st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True)
coordinates = st.floats(
    min_value=-limits.layout_coordinate_abs_max, max_value=limits.layout_coordinate_abs_max, allow_nan=False
)
display_names = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"), min_size=1)
attribute_lists = st.lists(st.sampled_from(list(SeatAttribute)), unique=True).map(lambda a: tuple(str(x) for x in a))


@st.composite
def layouts_strategy(draw: st.DrawFn, *, named_zones: bool = True) -> Layout:
    codes = draw(st.lists(zone_codes, unique=True, max_size=4))
    names = (
        draw(st.lists(display_names.filter(lambda n: len(n) <= 8), min_size=len(codes), max_size=len(codes)))
        if named_zones
        else codes
    )
    section_names = draw(st.lists(labels, unique=True, min_size=1, max_size=3))
    seats: list[LayoutSeat] = []
    for section in section_names:
        for row in draw(st.lists(labels, unique=True, min_size=1, max_size=3)):
            for number in draw(st.lists(st.integers(1, limits.seat_number_max), unique=True, min_size=1, max_size=4)):
                zone = draw(st.sampled_from([None, *codes]))
                seats.append(
                    LayoutSeat(section, row, number, draw(coordinates), draw(coordinates), zone, draw(attribute_lists))
                )
    used = dict.fromkeys(s.zone for s in seats if s.zone is not None)
    if not named_zones:  # a CSV layout's zones are the codes its seats use, in order of first use
        codes, names = list(used), list(used)
    name = draw(display_names.filter(lambda n: len(n) <= 20))
    return Layout(name, tuple(Zone(c, n) for c, n in zip(codes, names, strict=True)), tuple(seats))


def _fields(problems: list[Any]) -> set[str]:
    return {p.field for p in problems}


def _read_json(document: Any) -> tuple[Layout | None, list[Any]]:
    return layouts.layout_from_document(json.loads(json.dumps(document)))


# ---- round trips ---------------------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(layouts_strategy())
def test_json_round_trips_exactly(layout: Layout) -> None:
    text = json.dumps(layouts.layout_document(layout))
    again, problems = layouts.layout_from_document(json.loads(text))
    assert problems == [] and again == layout
    assert json.dumps(layouts.layout_document(again)) == text


@settings(max_examples=150, deadline=None)
@given(layouts_strategy(named_zones=False))
def test_csv_round_trips_exactly(layout: Layout) -> None:
    text = layout_csv.layout_csv(layout)
    again, problems = layout_csv.layout_from_csv(text.encode(), layout.name)
    assert problems == [] and again == layout
    assert layout_csv.layout_csv(again) == text


@settings(max_examples=50, deadline=None)
@given(layouts_strategy())
def test_csv_and_json_agree_on_the_seats(layout: Layout) -> None:
    from_csv, _ = layout_csv.layout_from_csv(layout_csv.layout_csv(layout).encode(), layout.name)
    assert from_csv is not None and from_csv.seats == layout.seats


def _big_layout(seats: int = 20_000) -> Layout:
    rows = seats // 100
    return Layout(
        "Arena",
        (Zone("FLOOR", "Floor"), Zone("BALCONY", "Balcony")),
        tuple(
            LayoutSeat(
                f"S{r // 50}", str(r % 50 + 1), n, n * 1.5, r * 2.25, "FLOOR" if r < rows // 2 else "BALCONY",
                ("accessible",) if n == 1 else (),
            )
            for r in range(rows)
            for n in range(1, 101)
        ),
    )


def test_a_20000_seat_layout_round_trips_through_json_and_csv() -> None:
    layout = _big_layout()
    text = json.dumps(layouts.layout_document(layout))
    from_json, problems = layouts.layout_from_document(json.loads(text))
    assert problems == [] and from_json == layout and len(layout.seats) == 20_000
    csv_text = layout_csv.layout_csv(layout)
    from_csv, line_problems = layout_csv.layout_from_csv(csv_text.encode(), "Arena")
    assert line_problems == [] and from_csv is not None
    assert from_csv.seats == layout.seats and layout_csv.layout_csv(from_csv) == csv_text


def test_plain_rows_number_their_seats_and_place_them_by_row() -> None:
    document = {
        "name": "Hall",
        "zones": [{"code": "FLOOR", "name": "Floor"}],
        "sections": [
            {"name": "A", "rows": [{"label": "1", "seats": 3, "zone": "FLOOR"}, {"label": "2", "seats": 1}]},
            {"name": "B", "rows": [{"label": "1", "seats": [{"number": 7, "x": 1, "y": 9}]}]},
        ],
    }
    layout, problems = _read_json(document)
    assert problems == [] and layout is not None
    assert layout.seat_ids() == ("A-1-1", "A-1-2", "A-1-3", "A-2-1", "B-1-7")
    assert [(s.x, s.y, s.zone) for s in layout.seats] == [
        (1.0, 1.0, "FLOOR"), (2.0, 1.0, "FLOOR"), (3.0, 1.0, "FLOOR"), (1.0, 2.0, None), (1.0, 9.0, None),
    ]


def test_an_export_with_its_read_only_fields_imports_as_it_is() -> None:
    layout = _big_layout(200)
    exported = {"id": "lay_x", "venue_id": "ven_x", "seat_count": 200, "created_at": "now"}
    again, problems = _read_json(exported | layouts.layout_document(layout))
    assert problems == [] and again == layout


# ---- every problem at once: JSON -------------------------------------------------------------------------------


def _doc(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "Hall",
        "zones": [{"code": "FLOOR", "name": "Floor"}],
        "sections": [
            {
                "name": "A",
                "rows": [
                    {"label": "1", "seats": [{"number": 1, "x": 1, "y": 1, "zone": "FLOOR"},
                                             {"number": 2, "x": 2, "y": 1}]},
                    {"label": "2", "seats": 4},
                ],
            }
        ],
    }
    document.update(changes)
    return document


def test_every_json_problem_is_reported_at_once_and_nothing_is_built() -> None:
    bad_seats = [
        {"number": 1, "x": 1, "y": 1, "zone": "NOPE"},  # unknown zone
        {"number": 1, "x": 2, "y": 1},  # duplicate seat
        {"number": 2.5, "x": 3, "y": 1},  # bad number
        {"number": 0, "x": "left", "y": float("inf")},  # bad number, bad coordinates
        {"number": 5, "x": 1, "y": 1, "attributes": ["vip", "accessible", "accessible"]},
        {"number": 6, "x": 1},  # y missing
        {"number": 7, "x": 1, "y": 1, "colour": "red"},  # unknown field
    ]
    document = _doc(
        name="",
        zones=[{"code": "FLOOR", "name": "Floor"}, {"code": "FLOOR", "name": "Again"}, {"code": "bad code"}],
        sections=[
            {"name": "A", "rows": []},  # an empty section
            {"name": "A", "rows": [{"label": "1", "seats": bad_seats}, {"label": "1", "seats": 0}]},
            {"name": "B-1", "rows": [{"label": "", "seats": []}]},
        ],
        extra=True,
    )
    layout, problems = _read_json(document)
    assert layout is None
    assert _fields(problems) == {
        "extra",
        "name",
        "zones.1.code",
        "zones.2.code",
        "zones.2.name",
        "sections.0.rows",
        "sections.1.name",
        "sections.1.rows.0.seats.0.zone",
        "sections.1.rows.0.seats.1.number",
        "sections.1.rows.0.seats.2.number",
        "sections.1.rows.0.seats.3.number",
        "sections.1.rows.0.seats.3.x",
        "sections.1.rows.0.seats.3.y",
        "sections.1.rows.0.seats.4.attributes",
        "sections.1.rows.0.seats.5.y",
        "sections.1.rows.0.seats.6.colour",
        "sections.1.rows.1.label",
        "sections.1.rows.1.seats",
        "sections.2.name",
        "sections.2.rows.0.label",
        "sections.2.rows.0.seats",
    }
    messages = {p.field: p.message for p in problems}
    assert "repeats seat A-1-1" in messages["sections.1.rows.0.seats.1.number"]
    assert "unknown zone 'NOPE'" in messages["sections.1.rows.0.seats.0.zone"]


@pytest.mark.parametrize("document", [None, [], "text", 7, {"sections": "x"}])
def test_a_document_that_is_not_a_layout_is_refused(document: Any) -> None:
    layout, problems = layouts.layout_from_document(document)
    assert layout is None and problems


@pytest.mark.parametrize("zones", [{}, None, 0, "", [{}]])
def test_zones_that_are_not_a_list_of_zones_are_refused(zones: Any) -> None:
    """No zones is ``[]`` (or leaving the field out); ``{}`` is not (schemathesis found it accepted)."""
    document = {"name": "Hall", "zones": zones, "sections": [{"name": "A", "rows": [{"label": "1", "seats": 2}]}]}
    layout, problems = layouts.layout_from_document(document)
    assert layout is None and {p.field.split(".")[0] for p in problems} == {"zones"}
    without = {key: value for key, value in document.items() if key != "zones"}
    for fine in (without, without | {"zones": []}):
        assert layouts.layout_from_document(fine) == (layouts.layout_from_document(without)[0], [])


def test_more_seats_than_the_limit_is_refused_without_building_them() -> None:
    rows_needed = limits.layout_seats_max // limits.seats_per_row_max + 1
    sections = [
        {"name": f"S{s}", "rows": [{"label": str(r), "seats": limits.seats_per_row_max} for r in range(100)]}
        for s in range(rows_needed // 100 + 1)
    ]
    layout, problems = _read_json(_doc(sections=sections))
    assert layout is None
    assert [p.field for p in problems] == ["sections"]
    assert f"at most {limits.layout_seats_max}" in problems[0].message


def test_exactly_the_limit_is_accepted() -> None:
    rows = [{"label": str(r), "seats": limits.seats_per_row_max} for r in range(100)]
    count = limits.layout_seats_max // (100 * limits.seats_per_row_max)
    layout, problems = _read_json(_doc(sections=[{"name": f"S{s}", "rows": rows} for s in range(count)]))
    assert problems == [] and layout is not None and len(layout.seats) == limits.layout_seats_max


def test_the_problems_shown_are_capped() -> None:
    problems = [layouts.Problem(str(i), "bad") for i in range(limits.layout_problems_reported_max + 5)]
    shown, truncated = layouts.capped(problems)
    assert len(shown) == limits.layout_problems_reported_max and truncated
    assert layouts.capped(problems[:3]) == (problems[:3], False)


# ---- every problem at once: CSV --------------------------------------------------------------------------------


def _lines(text: str) -> list[tuple[int, str]]:
    layout, problems = layout_csv.layout_from_csv(text.encode(), "Hall")
    assert layout is None
    return [(p.line, p.message) for p in problems]


def test_every_csv_problem_is_reported_with_its_line() -> None:
    text = HEADER + "\n".join(
        [
            "A,1,1,0,0,FLOOR,",  # 2: fine
            "A,1,1,5,0,,",  # 3: duplicate seat
            ",1,2,0,0,,",  # 4: empty section
            "A,1,x,0,nan,,vip",  # 5: bad number, bad y, unknown attribute
            "A,1,07,0,0,,",  # 6: a leading zero is a bad number
            "A,1,3,0,0",  # 7: too few fields
            "B,1,1,0,0,,",  # 8: fine
            "A,1,4,0,0,,",  # 9: section A continues after B
            "B,1,2,0,0,bad zone!,accessible;accessible",  # 10: bad zone code, repeated attribute
        ]
    ) + "\n"
    found = _lines(text)
    assert {line for line, _ in found} == {3, 4, 5, 6, 7, 9, 10}
    assert sum(1 for line, _ in found if line == 10) == 2
    assert (3, "repeats seat A-1-1 (first on line 2)") in found
    assert (4, "section is empty") in found
    assert sum(1 for line, _ in found if line == 5) == 3
    assert any(line == 9 and "section A continues" in message for line, message in found)


def test_a_row_split_by_another_row_is_refused() -> None:
    found = _lines(HEADER + "A,1,1,0,0,,\nA,2,1,0,0,,\nA,1,2,0,0,,\n")
    assert found == [(4, "row A-1 continues after other rows: keep a row's lines together")]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", 1),  # empty file
        ("section,row,number\nA,1,1\n", 1),  # wrong header
        (HEADER, 1),  # no seats
        (HEADER + 'A,1,1,0,0,,\n"A,1,2,0,0,,\n', 3),  # unclosed quote
    ],
)
def test_malformed_csv_is_refused_where_it_breaks(text: str, line: int) -> None:
    found = _lines(text)
    assert found and found[-1][0] == line


def test_csv_that_is_not_utf8_names_its_line() -> None:
    layout, problems = layout_csv.layout_from_csv(HEADER.encode() + b"A,1,1,0,0,,\nA,1,2,\xff,0,,\n", "Hall")
    assert layout is None and [(p.line, p.message) for p in problems] == [(3, "is not UTF-8 text")]


def test_csv_over_the_seat_limit_is_refused() -> None:
    count = limits.layout_seats_max + 1
    text = HEADER + "".join(f"S{i // 100_00},{i // 100 % 100 + 1},{i % 100 + 1},0,0,,\n" for i in range(count))
    found = _lines(text)
    assert found == [(1, f"{count} seats; at most {limits.layout_seats_max} per layout")]


def test_crlf_and_a_byte_order_mark_are_read() -> None:
    layout, problems = layout_csv.layout_from_csv(b"\xef\xbb\xbf" + HEADER.encode() + b"A,1,1,0,0,F,\r\n", "Hall")
    assert problems == [] and layout is not None and layout.zones == (Zone("F", "F"),)


# ---- geometry and zones ----------------------------------------------------------------------------------------


def test_layout_geometry_is_the_layouts_seats_in_index_order() -> None:
    layout = _big_layout(300)
    geometry = seat_geometry.layout_geometry(layout)
    assert [g.seat_id for g in geometry] == list(layout.seat_ids())
    first = geometry[0]
    assert (first.section, first.row, first.number, first.x, first.y, first.zone, first.attributes) == (
        "S0", "1", 1, 1.5, 0.0, "FLOOR", ("accessible",)
    )


def test_inline_seating_geometry_is_drawn_like_plain_rows() -> None:
    sections = (
        seating.Section("A", (seating.Row("1", 2), seating.Row("2", 1))),
        seating.Section("B", (seating.Row("1", 1),)),
    )
    geometry = seat_geometry.seating_geometry(sections)
    assert [g.seat_id for g in geometry] == list(seating.seat_ids(sections))
    assert [(g.x, g.y) for g in geometry] == [(1.0, 1.0), (2.0, 1.0), (1.0, 2.0), (1.0, 3.0)]


ZAR = Price(1000, "ZAR")
ON_LAYOUT = EventDefinition(
    name="Show", starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC), hold_ttl_s=600, max_tickets_per_buyer=10,
    layout=None, ticket_types=(), layout_id="lay_" + "0" * 32,
)
ZONED = Layout(
    "Hall",
    (Zone("FLOOR", "Floor"), Zone("BALCONY", "Balcony"), Zone("BOX", "Box")),
    (
        LayoutSeat("A", "1", 1, 1, 1, "FLOOR", ()),
        LayoutSeat("A", "1", 2, 2, 1, "FLOOR", ("not_for_sale",)),
        LayoutSeat("B", "1", 1, 1, 5, "BALCONY", ()),
        LayoutSeat("B", "1", 2, 2, 5, None, ()),
        LayoutSeat("C", "1", 1, 1, 9, "BOX", ()),
    ),
)


def _on_layout(*types: TicketType) -> EventDefinition:
    return replace(ON_LAYOUT, ticket_types=types)


def test_zoned_types_sell_their_zones_and_the_zoneless_type_the_rest() -> None:
    definition = _on_layout(
        TicketType("FLOOR", "seated", None, ZAR, zone="FLOOR"),
        TicketType("REST", "seated", None, ZAR),
        TicketType("GA", "ga", 10, ZAR),
    )
    assert event_problems(definition) == [] and layout_events.layout_event_problems(definition, ZONED) == []
    stock = layout_events.stocked_on(definition, ZONED)
    assert stock.seat_ids == ("A-1-1", "A-1-2", "B-1-1", "B-1-2", "C-1-1")
    assert stock.seat_types == ("FLOOR", None, "REST", "REST", "REST")  # not_for_sale is blocked
    assert [(t.code, t.capacity) for t in stock.ticket_types] == [("FLOOR", 1), ("REST", 3), ("GA", 10)]
    assert stocked_problems(stock) == []


def test_without_a_zoneless_type_unclaimed_seats_are_blocked() -> None:
    definition = _on_layout(TicketType("BAL", "seated", None, ZAR, zone="BALCONY"))
    stock = layout_events.stocked_on(definition, ZONED)
    assert stock.seat_types == (None, None, "BAL", None, None)
    assert stocked_problems(stock) == []


def test_zone_rules() -> None:
    two_zoneless = _on_layout(TicketType("A", "seated", None, ZAR), TicketType("B", "seated", None, ZAR))
    assert _fields(event_problems(two_zoneless)) == {"ticket_types.1.zone"}
    same_zone = _on_layout(
        TicketType("A", "seated", None, ZAR, zone="BOX"), TicketType("B", "seated", None, ZAR, zone="BOX")
    )
    assert _fields(event_problems(same_zone)) == {"ticket_types.1.zone"}
    ga_zone = _on_layout(TicketType("G", "ga", 5, ZAR, zone="BOX"), TicketType("S", "seated", None, ZAR))
    assert _fields(event_problems(ga_zone)) == {"ticket_types.0.zone"}
    unknown = _on_layout(TicketType("S", "seated", None, ZAR, zone="PIT"))
    assert _fields(layout_events.layout_event_problems(unknown, ZONED)) == {"ticket_types.0.zone"}


def test_a_zone_needs_a_layout_and_seating_excludes_one() -> None:
    inline = (seating.Section("A", (seating.Row("1", 2),)),)
    zoned_inline = EventDefinition(
        name="Show", starts_at=ON_LAYOUT.starts_at, hold_ttl_s=600, max_tickets_per_buyer=10, layout=inline,
        ticket_types=(TicketType("S", "seated", None, ZAR, zone="FLOOR"),),
    )
    assert _fields(event_problems(zoned_inline)) == {"ticket_types.0.zone"}
    both = EventDefinition(
        name="Show", starts_at=ON_LAYOUT.starts_at, hold_ttl_s=600, max_tickets_per_buyer=10, layout=inline,
        ticket_types=(TicketType("S", "seated", None, ZAR),), layout_id="lay_" + "0" * 32,
    )
    assert _fields(event_problems(both)) == {"layout_id"}
