"""Venues, seating layouts and events on them, end to end through the real app over the fake inventory, on real
Postgres and Redis: JSON and CSV import/export round-trip exactly (a 20,000-seat layout included), every bad input
is refused with every reason and writes nothing, another org's venues and layouts are unknown, an event on a
layout sells its zones by ticket type and blocks what nobody sells, and the seat map shows each seat's state
without reading Postgres once its drawing is cached."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from engine import limits
from gateway.seatmap import SeatMaps
from persistence.tenancy import OrgDb, TenantPool
from tests.fakes import Gateway, new_org

HEADER = "section,row,number,x,y,zone,attributes\n"
VENUE = {"name": "Artscape", "timezone": "Africa/Johannesburg", "address": "DF Malan St, Cape Town"}
ZAR = {"amount_minor": 30000, "currency": "ZAR"}
seatmap_wait_s_max = 5.0
_SEAT_RE = re.compile(r'<circle id="([^"]+)"[^>]* class="([a-z]+)"/>')


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
async def org(database_url: str) -> tuple[str, dict[str, str]]:
    org_id, key = await new_org(database_url, "layouts org")
    return org_id, bearer(key)


@pytest.fixture(scope="module")
async def owner(org: tuple[str, dict[str, str]]) -> dict[str, str]:
    return org[1]


@pytest.fixture(scope="module")
async def other(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "other layouts org")
    return bearer(key)


@pytest.fixture(scope="module")
async def venue_id(gw: Gateway, owner: dict[str, str]) -> str:
    made = await gw.client.post("/v1/venues", json=VENUE, headers=owner)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


def _document() -> dict[str, Any]:
    return {
        "name": "Main hall",
        "zones": [{"code": "FLOOR", "name": "Floor"}, {"code": "BALCONY", "name": "Balcony"}],
        "sections": [
            {
                "name": "A",
                "rows": [
                    {
                        "label": "1",
                        "seats": [
                            {"number": 1, "x": 10.0, "y": 40.0, "zone": "FLOOR", "attributes": ["accessible"]},
                            {"number": 2, "x": 12.5, "y": 40.0, "zone": "FLOOR", "attributes": ["not_for_sale"]},
                            {"number": 3, "x": 15.0, "y": 40.0, "zone": "FLOOR"},
                            {"number": 4, "x": 17.5, "y": 40.0, "zone": "FLOOR", "attributes": ["companion"]},
                        ],
                    }
                ],
            },
            {"name": "B", "rows": [{"label": "1", "seats": 3, "zone": "BALCONY"}]},
            {"name": "C", "rows": [{"label": "1", "seats": [{"number": 1, "x": 0.1, "y": 99.0}]}]},
        ],
    }


async def _layout(gw: Gateway, headers: dict[str, str], venue_id: str, document: dict[str, Any]) -> dict[str, Any]:
    made = await gw.client.post(f"/v1/venues/{venue_id}/layouts", json=document, headers=headers)
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def _csv_layout(gw: Gateway, headers: dict[str, str], venue_id: str, text: str, name: str) -> dict[str, Any]:
    made = await gw.client.post(
        f"/v1/venues/{venue_id}/layouts", params={"name": name}, content=text.encode(),
        headers=headers | {"Content-Type": "text/csv"},
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


def _without_identity(layout: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in layout.items() if k not in ("id", "created_at")}


# ---- venues ------------------------------------------------------------------------------------------------


async def test_venues_are_created_listed_and_read(gw: Gateway, owner: dict[str, str], venue_id: str) -> None:
    got = await gw.client.get(f"/v1/venues/{venue_id}", headers=owner)
    assert got.status_code == 200
    assert {k: got.json()[k] for k in VENUE} == VENUE
    listed = await gw.client.get("/v1/venues", headers=owner)
    assert venue_id in [v["id"] for v in listed.json()["venues"]]


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "Hall", "timezone": "Mars/Olympus"}, {"timezone"}),
        ({"name": "", "timezone": "UTC", "address": ""}, {"name", "address"}),
        ({"timezone": "UTC"}, {"name"}),
    ],
)
async def test_bad_venues_are_422(
    gw: Gateway, owner: dict[str, str], body: dict[str, Any], fields: set[str]
) -> None:
    refused = await gw.client.post("/v1/venues", json=body, headers=owner)
    assert refused.status_code == 422, refused.text
    assert {f["field"] for f in refused.json()["error"]["details"]["fields"]} == fields


# ---- round trips -------------------------------------------------------------------------------------------


async def test_a_json_layout_round_trips_exactly(gw: Gateway, owner: dict[str, str], venue_id: str) -> None:
    made = await _layout(gw, owner, venue_id, _document())
    assert made["seat_count"] == 8 and [z["code"] for z in made["zones"]] == ["FLOOR", "BALCONY"]
    exported = (await gw.client.get(f"/v1/layouts/{made['id']}", headers=owner)).json()
    assert exported["sections"][1]["rows"][0]["seats"][2] == {
        "number": 3, "x": 3.0, "y": 2.0, "zone": "BALCONY", "attributes": []
    }
    again = await _layout(gw, owner, venue_id, exported)  # an export imports as it is
    re_exported = (await gw.client.get(f"/v1/layouts/{again['id']}", headers=owner)).json()
    assert _without_identity(re_exported) == _without_identity(exported)
    venue = (await gw.client.get(f"/v1/venues/{venue_id}", headers=owner)).json()
    assert {made["id"], again["id"]} <= {s["id"] for s in venue["layouts"]}


async def test_a_csv_layout_round_trips_byte_for_byte(gw: Gateway, owner: dict[str, str], venue_id: str) -> None:
    made = await _layout(gw, owner, venue_id, _document())
    exported = await gw.client.get(f"/v1/layouts/{made['id']}", params={"format": "csv"}, headers=owner)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.startswith(HEADER) and "A,1,2,12.5,40.0,FLOOR,not_for_sale\n" in exported.text
    again = await _csv_layout(gw, owner, venue_id, exported.text, "Main hall")
    re_exported = await gw.client.get(f"/v1/layouts/{again['id']}", params={"format": "csv"}, headers=owner)
    assert re_exported.content == exported.content


async def test_awkward_coordinates_survive_postgres_exactly(gw: Gateway, owner: dict[str, str], venue_id: str) -> None:
    xs = [0.1, 1e-05, -0.0, 123456.789, -999999.999999, 2.0 / 3.0, 5e-324]
    document = {
        "name": "Floats",
        "sections": [{"name": "F", "rows": [{"label": "1", "seats": [
            {"number": n, "x": x, "y": -x} for n, x in enumerate(xs, 1)
        ]}]}],
    }
    made = await _layout(gw, owner, venue_id, document)
    exported = (await gw.client.get(f"/v1/layouts/{made['id']}", headers=owner)).json()
    got = [(s["x"], s["y"]) for s in exported["sections"][0]["rows"][0]["seats"]]
    assert got == [(x, -x) for x in xs]
    as_csv = await gw.client.get(f"/v1/layouts/{made['id']}", params={"format": "csv"}, headers=owner)
    again = await _csv_layout(gw, owner, venue_id, as_csv.text, "Floats")
    again_csv = await gw.client.get(f"/v1/layouts/{again['id']}", params={"format": "csv"}, headers=owner)
    assert again_csv.content == as_csv.content


def _arena_csv(seats: int = 20_000) -> str:
    lines = []
    for i in range(seats):
        row, number = i // 100, i % 100 + 1
        zone = "FLOOR" if row < 100 else "BALCONY"
        attributes = "accessible;companion" if number == 1 else ""
        lines.append(f"S{row // 25},{row % 25 + 1},{number},{number * 1.25!r},{row * 2.5!r},{zone},{attributes}\n")
    return HEADER + "".join(lines)


async def test_a_20000_seat_layout_imports_from_csv_and_json_and_round_trips(
    gw: Gateway, owner: dict[str, str], venue_id: str
) -> None:
    text = _arena_csv()
    from_csv = await _csv_layout(gw, owner, venue_id, text, "Arena")
    assert from_csv["seat_count"] == 20_000
    as_csv = await gw.client.get(f"/v1/layouts/{from_csv['id']}", params={"format": "csv"}, headers=owner)
    assert as_csv.text == text
    as_json = (await gw.client.get(f"/v1/layouts/{from_csv['id']}", headers=owner)).json()
    from_json = await _layout(gw, owner, venue_id, as_json)
    assert from_json["seat_count"] == 20_000
    again = (await gw.client.get(f"/v1/layouts/{from_json['id']}", headers=owner)).json()
    assert _without_identity(again) == _without_identity(as_json)
    again_csv = await gw.client.get(f"/v1/layouts/{from_json['id']}", params={"format": "csv"}, headers=owner)
    assert again_csv.text == text


# ---- bad input: every reason, nothing written ----------------------------------------------------------------


async def _written(admin: asyncpg.Connection, org_id: str) -> tuple[int, ...]:
    row = await admin.fetchrow(
        "SELECT (SELECT count(*) FROM layouts WHERE org_id = $1), "
        "(SELECT count(*) FROM layout_seats WHERE org_id = $1), (SELECT count(*) FROM layout_zones WHERE org_id = $1), "
        "(SELECT count(*) FROM events WHERE org_id = $1), (SELECT count(*) FROM audit_log WHERE org_id = $1)",
        org_id,
    )
    return tuple(row)


@asynccontextmanager
async def _nothing_written(admin: asyncpg.Connection, org_id: str) -> AsyncIterator[None]:
    before = await _written(admin, org_id)
    yield
    assert await _written(admin, org_id) == before


def _seat(number: Any, **more: Any) -> dict[str, Any]:
    return {"number": number, "x": 1.0, "y": 1.0, **more}


BAD_DOCUMENTS: list[tuple[str, dict[str, Any], set[str]]] = [
    (
        "duplicate seats, unknown zones, bad numbers, an empty section, at once",
        {
            "name": "Bad",
            "zones": [{"code": "FLOOR", "name": "Floor"}],
            "sections": [
                {"name": "A", "rows": [{"label": "1", "seats": [_seat(1), _seat(1), _seat(-3), _seat("7"),
                                                                _seat(2, zone="PIT")]}]},
                {"name": "E", "rows": []},
            ],
        },
        {
            "sections.0.rows.0.seats.1.number",
            "sections.0.rows.0.seats.2.number",
            "sections.0.rows.0.seats.3.number",
            "sections.0.rows.0.seats.4.zone",
            "sections.1.rows",
        },
    ),
    (
        "over the seat limit",
        {
            "name": "Huge",
            "sections": [
                {"name": f"S{s}", "rows": [{"label": str(r), "seats": limits.seats_per_row_max} for r in range(100)]}
                for s in range(2)
            ],
        },
        {"sections"},
    ),
    (
        "bad attributes, coordinates, row zones and names",
        {
            "name": "x" * 201,
            "zones": [{"code": "F", "name": "F"}, {"code": "F", "name": "Again"}],
            "sections": [
                {"name": "A-1", "rows": [{"label": "1", "seats": 2, "zone": "NOPE"}]},
                {"name": "B", "rows": [{"label": "1", "seats": [_seat(1, attributes=["vip"], x=1e9)]}]},
            ],
        },
        {
            "name", "zones.1.code", "sections.0.name", "sections.0.rows.0.zone",
            "sections.1.rows.0.seats.0.attributes", "sections.1.rows.0.seats.0.x",
        },
    ),
]


@pytest.mark.parametrize(("case", "document", "fields"), BAD_DOCUMENTS, ids=[c[0] for c in BAD_DOCUMENTS])
async def test_bad_json_layouts_are_422_with_every_reason(
    gw: Gateway, org: tuple[str, dict[str, str]], venue_id: str, admin: asyncpg.Connection,
    case: str, document: dict[str, Any], fields: set[str],
) -> None:
    org_id, owner = org
    async with _nothing_written(admin, org_id):
        refused = await gw.client.post(f"/v1/venues/{venue_id}/layouts", json=document, headers=owner)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "validation_failed"
    assert {f["field"] for f in error["details"]["fields"]} == fields


BAD_CSVS: list[tuple[str, str, list[int]]] = [
    (
        "duplicate seats, bad numbers, empty sections, unknown attributes, at once",
        HEADER + "A,1,1,0,0,FLOOR,\nA,1,1,1,0,FLOOR,\n,1,2,0,0,,\nA,1,x,0,0,,\nA,1,9,0,0,,vip\nA,1,10,0,0\n",
        [3, 4, 5, 6, 7],
    ),
    ("a wrong header", "section;row;number\nA;1;1\n", [1]),
    ("an unclosed quote", HEADER + 'A,1,1,0,0,,\n"A,1,2,0,0,,\n', [3]),
    ("no seats", HEADER, [1]),
]


@pytest.mark.parametrize(("case", "text", "lines"), BAD_CSVS, ids=[c[0] for c in BAD_CSVS])
async def test_bad_csv_layouts_are_422_with_every_line(
    gw: Gateway, org: tuple[str, dict[str, str]], venue_id: str, admin: asyncpg.Connection,
    case: str, text: str, lines: list[int],
) -> None:
    org_id, owner = org
    async with _nothing_written(admin, org_id):
        refused = await gw.client.post(
            f"/v1/venues/{venue_id}/layouts", params={"name": "Bad"}, content=text.encode(),
            headers=owner | {"Content-Type": "text/csv; charset=utf-8"},
        )
    assert refused.status_code == 422, refused.text
    details = refused.json()["error"]["details"]
    assert sorted({p["line"] for p in details["lines"]}) == lines
    assert all(isinstance(p["message"], str) and p["message"] for p in details["lines"])


async def test_a_csv_over_the_seat_limit_is_422(
    gw: Gateway, org: tuple[str, dict[str, str]], venue_id: str, admin: asyncpg.Connection
) -> None:
    org_id, owner = org
    count = limits.layout_seats_max + 1
    text = HEADER + "".join(f"S{i // 10_000},{i // 100 % 100 + 1},{i % 100 + 1},0,0,,\n" for i in range(count))
    async with _nothing_written(admin, org_id):
        refused = await gw.client.post(
            f"/v1/venues/{venue_id}/layouts", params={"name": "Huge"}, content=text.encode(),
            headers=owner | {"Content-Type": "text/csv"},
        )
    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["error"]["details"]["lines"]
    assert problem["line"] == 1 and f"at most {limits.layout_seats_max}" in problem["message"]


async def test_a_csv_without_a_name_names_the_field_and_its_lines(
    gw: Gateway, org: tuple[str, dict[str, str]], venue_id: str, admin: asyncpg.Connection
) -> None:
    org_id, owner = org
    async with _nothing_written(admin, org_id):
        refused = await gw.client.post(
            f"/v1/venues/{venue_id}/layouts", content=(HEADER + "A,1,1,0,0,,\nA,1,1,0,0,,\n").encode(),
            headers=owner | {"Content-Type": "text/csv"},
        )
    assert refused.status_code == 422
    details = refused.json()["error"]["details"]
    assert [f["field"] for f in details["fields"]] == ["name"] and [p["line"] for p in details["lines"]] == [3]


async def test_many_bad_lines_are_reported_up_to_the_cap(
    gw: Gateway, owner: dict[str, str], venue_id: str
) -> None:
    text = HEADER + "".join(f"A,1,x{i},0,0,,\n" for i in range(limits.layout_problems_reported_max + 50))
    refused = await gw.client.post(
        f"/v1/venues/{venue_id}/layouts", params={"name": "Bad"}, content=text.encode(),
        headers=owner | {"Content-Type": "text/csv"},
    )
    details = refused.json()["error"]["details"]
    assert len(details["lines"]) == limits.layout_problems_reported_max and details["lines_truncated"] is True


async def test_a_bad_format_is_422(gw: Gateway, owner: dict[str, str], venue_id: str) -> None:
    made = await _layout(gw, owner, venue_id, _document())
    refused = await gw.client.get(f"/v1/layouts/{made['id']}", params={"format": "xml"}, headers=owner)
    assert refused.status_code == 422 and refused.json()["error"]["details"]["fields"][0]["field"] == "format"


# ---- tenancy -------------------------------------------------------------------------------------------------


async def test_another_orgs_venues_and_layouts_are_unknown(
    gw: Gateway, owner: dict[str, str], other: dict[str, str], venue_id: str
) -> None:
    made = await _layout(gw, owner, venue_id, _document())
    for path in (f"/v1/venues/{venue_id}", f"/v1/layouts/{made['id']}", f"/v1/layouts/{made['id']}?format=csv"):
        refused = await gw.client.get(path, headers=other)
        assert refused.status_code == 404, path
    refused = await gw.client.post(f"/v1/venues/{venue_id}/layouts", json=_document(), headers=other)
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "venue_not_found"
    event = _event_body(made["id"])
    refused = await gw.client.post("/v1/events", json=event, headers=other)
    assert refused.status_code == 422
    assert [f["field"] for f in refused.json()["error"]["details"]["fields"]] == ["layout_id"]
    listed = await gw.client.get("/v1/venues", headers=other)
    assert venue_id not in listed.text


# ---- events on a layout --------------------------------------------------------------------------------------


def _event_body(layout_id: str, **more: Any) -> dict[str, Any]:
    return {
        "name": "On a layout",
        "starts_at": "2026-12-31T18:00:00Z",
        "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10,
        "layout_id": layout_id,
        "ticket_types": [
            {"code": "FLOOR", "kind": "seated", "zone": "FLOOR", "price": ZAR},
            {"code": "REST", "kind": "seated", "price": ZAR},
            {"code": "GA", "kind": "ga", "capacity": 50, "price": ZAR},
        ],
        **more,
    }


async def _seatmap(gw: Gateway, headers: dict[str, str], event_id: str) -> dict[str, str]:
    got = await gw.client.get(f"/v1/events/{event_id}/seatmap.svg", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("image/svg+xml")
    return dict(_SEAT_RE.findall(got.text))


async def _seatmap_becomes(
    gw: Gateway, headers: dict[str, str], event_id: str, wanted: Callable[[dict[str, str]], bool]
) -> dict[str, str]:
    """The seat map once ``wanted`` holds (the availability copy follows the deltas a moment later)."""
    deadline = time.monotonic() + seatmap_wait_s_max
    while True:
        seats = await _seatmap(gw, headers, event_id)
        if wanted(seats):
            return seats
        assert time.monotonic() < deadline, f"the seat map still shows {seats}"
        await asyncio.sleep(0.01)


class CountingPool:
    """A TenantPool that counts the org transactions it opens."""

    def __init__(self, inner: TenantPool) -> None:
        self.inner = inner
        self.opened = 0

    @asynccontextmanager
    async def tenant(self, org_id: str) -> AsyncIterator[OrgDb]:
        self.opened += 1
        async with self.inner.tenant(org_id) as db:
            yield db


async def test_an_event_on_a_layout_sells_zones_blocks_the_rest_and_draws_its_seats(
    gw: Gateway, owner: dict[str, str], venue_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = await _layout(gw, owner, venue_id, _document())
    created = await gw.client.post("/v1/events", json=_event_body(layout["id"]), headers=owner)
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["layout_id"] == layout["id"] and event["seat_count"] == 8
    # FLOOR sells A-1-1, A-1-3, A-1-4 (A-1-2 is not for sale); REST the balcony and the zoneless seat
    assert [(t["code"], t["capacity"], t["zone"]) for t in event["ticket_types"]] == [
        ("FLOOR", 3, "FLOOR"), ("REST", 4, None), ("GA", 50, None)
    ]
    event_id = event["id"]
    seats = (await gw.client.get(f"/v1/events/{event_id}/seats", headers=owner)).json()["seat_ids"]
    assert seats == ["A-1-1", "A-1-2", "A-1-3", "A-1-4", "B-1-1", "B-1-2", "B-1-3", "C-1-1"]
    draft = await _seatmap(gw, owner, event_id)
    assert draft == dict.fromkeys(seats, "available") | {"A-1-2": "blocked"}

    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    blocked = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b1", "seats": ["A-1-2"]}, headers=owner
    )
    assert blocked.status_code == 409 and blocked.json()["error"]["details"]["seats"] == ["A-1-2"]
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b1", "seats": ["A-1-1", "B-1-1"]}, headers=owner
    )
    assert held.status_code == 201, held.text
    sold = await gw.client.post(f"/v1/holds/{held.json()['hold_id']}/confirm", json={"order_ref": "o-1"},
                                headers=owner)
    assert sold.status_code == 201, sold.text
    assert sorted((t["seat_id"], t["ticket_type"]) for t in sold.json()["tickets"]) == [
        ("A-1-1", "FLOOR"), ("B-1-1", "REST")
    ]
    again = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b2", "seats": ["A-1-3"]}, headers=owner
    )
    assert again.status_code == 201

    maps = gw.app.state.services.domain(SeatMaps)
    counting = CountingPool(maps._db)
    monkeypatch.setattr(maps, "_db", counting)
    expected = dict.fromkeys(seats, "available") | {
        "A-1-1": "sold", "B-1-1": "sold", "A-1-2": "blocked", "A-1-3": "held"
    }
    assert await _seatmap_becomes(gw, owner, event_id, lambda s: s == expected) == expected
    assert counting.opened == 0  # the drawing was cached by the draft's map; colours come from memory
    availability = (await gw.client.get(f"/v1/events/{event_id}/availability", headers=owner)).json()
    counts = {t["code"]: (t["capacity"], t["available"], t["held"], t["sold"]) for t in availability["ticket_types"]}
    assert counts["FLOOR"] == (3, 1, 1, 1) and counts["REST"] == (4, 3, 0, 1)
    assert availability["seats"]["total"] == 8 and availability["seats"]["available"] == 4

    # Paused, the sale keeps its holds and sales: the map still shows them (not a draft's all-available map).
    paused = await gw.client.post(f"/v1/events/{event_id}/transitions", json={"to": "paused"}, headers=owner)
    assert paused.status_code == 200, paused.text
    assert await _seatmap(gw, owner, event_id) == expected


async def test_zones_an_event_asks_for_must_be_the_layouts(
    gw: Gateway, org: tuple[str, dict[str, str]], venue_id: str, admin: asyncpg.Connection
) -> None:
    org_id, owner = org
    layout = await _layout(gw, owner, venue_id, _document())
    body = _event_body(layout["id"])
    body["ticket_types"][0]["zone"] = "PIT"
    async with _nothing_written(admin, org_id):
        refused = await gw.client.post("/v1/events", json=body, headers=owner)
        unknown = await gw.client.post("/v1/events", json=_event_body("lay_" + "0" * 32), headers=owner)
        both = await gw.client.post(
            "/v1/events", json=_event_body(layout["id"], seating={"sections": [{"name": "A", "rows": [
                {"label": "1", "seats": 2}]}]}), headers=owner,
        )
    assert refused.status_code == 422 and [f["field"] for f in refused.json()["error"]["details"]["fields"]] == [
        "ticket_types.0.zone"
    ]
    assert unknown.status_code == 422 and unknown.json()["error"]["details"]["fields"][0]["field"] == "layout_id"
    assert both.status_code == 422 and "layout_id" in [f["field"] for f in both.json()["error"]["details"]["fields"]]


async def test_an_inline_seating_event_has_a_seat_map_too(gw: Gateway, owner: dict[str, str]) -> None:
    body = {
        "name": "Inline", "starts_at": "2026-12-31T18:00:00Z", "hold_ttl_s": 600, "max_tickets_per_buyer": 10,
        "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 3}, {"label": "2", "seats": 2}]}]},
        "ticket_types": [{"code": "SEAT", "kind": "seated", "price": ZAR}],
    }
    created = await gw.client.post("/v1/events", json=body, headers=owner)
    event_id = created.json()["id"]
    assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "seats": ["A-2-1"]}, headers=owner
    )
    assert held.status_code == 201
    expected = {"A-1-1": "available", "A-1-2": "available", "A-1-3": "available", "A-2-1": "held",
                "A-2-2": "available"}
    assert await _seatmap_becomes(gw, owner, event_id, lambda s: s == expected) == expected
