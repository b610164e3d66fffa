"""/v1/venues and /v1/layouts: venues, and their seating layouts imported and exported as JSON or CSV.

A layout body is read by the engine (engine/catalog/layouts.py, layout_csv.py), which reports every problem at
once: 422 with ``details.fields`` (JSON, by path) or ``details.lines`` (CSV, by line), at most
``layout_problems_reported_max`` of them (``truncated`` when there were more); nothing is written then. A
layout's body may be up to ``layout_body_bytes_max`` (a 100,000-seat CSV, or JSON, fits). Reading and rendering
a layout run off the event loop, boundedly (gateway/layout_work.py). Every read and write is bound to the
caller's org: another org's venue or layout answers 404 like an unknown one.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from engine import limits
from engine.catalog import layout_csv, layouts
from engine.catalog.layouts import Layout
from gateway.context import actor_of, media_type_of
from gateway.endpoints import Call, read_route, write_route
from gateway.errors import MalformedJson, ValidationFailed
from gateway.layout_work import LAYOUT_WORK
from gateway.rendering import render
from gateway.routes.catalog.venue_models import (
    LayoutCreate,
    LayoutDocumentOut,
    LayoutOut,
    LayoutQuery,
    VenueCreate,
    VenueList,
    VenueOut,
)
from persistence.catalog import layouts as pg_layouts
from persistence.catalog import venues as pg_venues
from services.catalog import venues

TAG = ("venues",)
layout_body_bytes_max = 8 * 1024 * 1024
CSV_MEDIA_TYPE = f"{layout_csv.MEDIA_TYPE}; charset=utf-8"


def venue_view(venue: pg_venues.VenueRecord, found: list[pg_layouts.LayoutSummary] | None = None) -> dict[str, Any]:
    return {
        "id": venue.id,
        "name": venue.name,
        "timezone": venue.timezone,
        "address": venue.address,
        "created_at": venue.created_at,
        "layouts": [
            {"id": s.id, "name": s.name, "seat_count": s.seat_count, "created_at": s.created_at} for s in found or ()
        ],
    }


def layout_view(record: pg_layouts.LayoutRecord) -> dict[str, Any]:
    layout = record.layout
    return {
        "id": record.id,
        "venue_id": record.venue_id,
        "name": layout.name,
        "seat_count": len(layout.seats),
        "zones": [{"code": z.code, "name": z.name} for z in layout.zones],
        "created_at": record.created_at,
    }


@write_route(
    "Create a venue", scope="events:write", status=201, request=VenueCreate, response=VenueOut, tags=TAG
)
async def create_venue(call: Call[VenueCreate]) -> Response:
    principal, body = call.principal, call.parsed()
    new = pg_venues.NewVenue(body.name, body.timezone, body.address)
    venue = await venues.create_venue(call.svc.units, principal.org_id, actor_of(call.request, principal), new)
    return render(VenueOut, venue_view(venue), 201)


@read_route("The organization's venues, oldest first", scope="events:read", response=VenueList, tags=TAG)
async def list_venues(call: Call[Any]) -> Response:
    found = await venues.list_venues(call.svc, call.principal.org_id)
    return render(VenueList, {"venues": [venue_view(v) for v in found]})


@read_route("A venue, with its layouts (without their seats)", scope="events:read", response=VenueOut,
            errors=(404,), tags=TAG)
async def get_venue(call: Call[Any]) -> Response:
    venue, found = await venues.get_venue(call.svc, call.principal.org_id, call.path("venue_id"))
    return render(VenueOut, venue_view(venue, found))


@write_route(
    "Import a seating layout for the venue, from JSON or CSV",
    description=(
        "JSON: sections of rows of seats (a row may give a number of plain seats). Or Content-Type: text/csv "
        "with ?name=: the header section,row,number,x,y,zone,attributes and one seat a line. Every problem is "
        "reported at once: 422 with details.fields (JSON) or details.lines (CSV), and nothing is written. At most "
        f"{limits.layout_seats_max} seats; bodies up to {layout_body_bytes_max} bytes."
    ),
    scope="events:write",
    status=201,
    request=LayoutCreate,
    response=LayoutOut,
    errors=(404,),
    tags=TAG,
    body_bytes_max=layout_body_bytes_max,
    body_media_types=(layout_csv.MEDIA_TYPE,),
)
async def create_layout(call: Call[Any]) -> Response:
    principal = call.principal
    if media_type_of(call.request.headers.get("content-type")) == layout_csv.MEDIA_TYPE:
        layout = await LAYOUT_WORK.run(_csv_layout, call.body, call.request.query_params.get("name"))
    else:
        layout = await LAYOUT_WORK.run(_json_layout, call.body)
    actor = actor_of(call.request, principal)
    record = await venues.create_layout(call.svc.units, principal.org_id, actor, call.path("venue_id"), layout)
    return render(LayoutOut, layout_view(record), 201)


def _json_layout(body: bytes) -> Layout:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedJson(f"the request body is not valid JSON: {error}") from None
    layout, problems = layouts.layout_from_document(document)
    if layout is None:
        shown, truncated = layouts.capped(problems)
        details: dict[str, Any] = {
            "fields": [{"field": p.field, "message": p.message, "type": "invalid"} for p in shown]
        }
        if truncated:
            details["fields_truncated"] = True
        raise ValidationFailed(f"the layout has {len(problems)} problems", details)
    return layout


def _csv_layout(body: bytes, name: str | None) -> Layout:
    name_problem = "is required (?name=)" if name is None else layouts.name_message(name)
    layout, problems = layout_csv.layout_from_csv(body, name or "")
    if layout is not None and name_problem is None:
        return layout
    cap = limits.layout_problems_reported_max
    details: dict[str, Any] = {"lines": [{"line": p.line, "message": p.message} for p in problems[:cap]]}
    if len(problems) > cap:
        details["lines_truncated"] = True
    if name_problem is not None:
        details["fields"] = [{"field": "name", "message": name_problem, "type": "invalid"}]
    count = len(problems) + (name_problem is not None)
    raise ValidationFailed(f"the layout has {count} problems", details)


@read_route(
    "A layout with every seat (JSON), or as CSV with ?format=csv; either imports back to an equal layout",
    scope="events:read",
    response=LayoutDocumentOut,
    query=LayoutQuery,
    errors=(404,),
    tags=TAG,
    other_media_types=(layout_csv.MEDIA_TYPE,),
)
async def get_layout(call: Call[Any]) -> Response:
    wanted = call.request.query_params.get("format", "json")
    if wanted not in ("json", "csv"):
        problem = {"field": "format", "message": "must be json or csv", "type": "literal_error"}
        raise ValidationFailed(details={"fields": [problem]})
    record = await venues.get_layout(call.svc, call.principal.org_id, call.path("layout_id"))
    if wanted == "csv":
        text = await LAYOUT_WORK.run(layout_csv.layout_csv, record.layout)
        return Response(text, media_type=CSV_MEDIA_TYPE)
    return await LAYOUT_WORK.run(_rendered_document, record)


def _rendered_document(record: pg_layouts.LayoutRecord) -> Response:
    return render(LayoutDocumentOut, layout_view(record) | layouts.layout_document(record.layout))


ROUTES: list[BaseRoute] = [
    Route("/v1/venues", create_venue, methods=["POST"]),
    Route("/v1/venues", list_venues, methods=["GET"]),
    Route("/v1/venues/{venue_id}", get_venue, methods=["GET"]),
    Route("/v1/venues/{venue_id}/layouts", create_layout, methods=["POST"]),
    Route("/v1/layouts/{layout_id}", get_layout, methods=["GET"]),
]
