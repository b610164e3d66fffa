"""Venues' and layouts' request and response bodies.

A layout's JSON body is read by the engine (engine/catalog/layouts.py ``layout_from_document``), which reports
every problem at once, shape and rules alike; ``LayoutCreate`` describes the same document for OpenAPI (the
route declares it; the engine is what refuses). The 422's ``details.fields`` name each bad field by its path.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import BaseModel, Field, StringConstraints, field_validator
from pydantic.json_schema import JsonValue

from engine import limits
from engine.catalog import seating
from engine.catalog.layouts import ZONE_CODE_PATTERN, SeatAttribute
from gateway.fields import NO_CONTROL_CHARS_PATTERN, DisplayName
from gateway.parsing import RequestModel
from gateway.rendering import Timestamp

address_chars_max = 500
timezone_chars_max = 64

LayoutName = Annotated[str, StringConstraints(pattern=seating.NAME_PATTERN)]
ZoneCode = Annotated[str, StringConstraints(pattern=ZONE_CODE_PATTERN)]
Coordinate = Annotated[float, Field(ge=-limits.layout_coordinate_abs_max, le=limits.layout_coordinate_abs_max)]


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


class VenueCreate(RequestModel):
    name: DisplayName
    timezone: Annotated[str, StringConstraints(min_length=1, max_length=timezone_chars_max)] = Field(
        description="An IANA time zone name, e.g. Africa/Johannesburg",
        examples=["Africa/Johannesburg"],
        json_schema_extra={"enum": list[JsonValue](sorted(_timezones()))},  # the validator's list, in the document
    )
    address: (
        Annotated[str, StringConstraints(min_length=1, max_length=address_chars_max, pattern=NO_CONTROL_CHARS_PATTERN)]
        | None
    ) = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        if value not in _timezones():
            raise ValueError("must be an IANA time zone name, e.g. Africa/Johannesburg")
        return value


class LayoutSummaryOut(BaseModel):
    id: str
    name: str
    seat_count: int
    created_at: Timestamp


class VenueOut(BaseModel):
    id: str
    name: str
    timezone: str
    address: str | None
    created_at: Timestamp
    layouts: list[LayoutSummaryOut] = Field(default_factory=list, description="GET /v1/venues/{id} only")


class VenueList(BaseModel):
    venues: list[VenueOut]


# ---- layouts -----------------------------------------------------------------------------------------------


class ZoneIn(RequestModel):
    code: ZoneCode
    name: DisplayName


class SeatIn(RequestModel):
    number: Annotated[int, Field(ge=1, le=limits.seat_number_max)]
    x: Coordinate
    y: Coordinate = Field(description="The stage is at the smallest y")
    zone: ZoneCode | None = Field(default=None, description="One of the layout's zone codes; default: the row's")
    attributes: list[SeatAttribute] = Field(default_factory=list, max_length=len(SeatAttribute))


class LayoutRowIn(RequestModel):
    label: LayoutName
    seats: Annotated[int, Field(ge=1, le=limits.seats_per_row_max)] | Annotated[
        list[SeatIn], Field(min_length=1, max_length=limits.seats_per_row_max)
    ] = Field(description="Plain seats 1..N (x = number, y = the row's position), or each seat")
    zone: ZoneCode | None = None


class LayoutSectionIn(RequestModel):
    name: LayoutName
    rows: Annotated[list[LayoutRowIn], Field(min_length=1, max_length=limits.rows_per_section_max)]


class LayoutCreate(RequestModel):
    """Also accepted as ``Content-Type: text/csv`` with ``?name=``: the header
    ``section,row,number,x,y,zone,attributes`` (attributes ``;``-separated), then one seat a line."""

    name: DisplayName
    zones: Annotated[list[ZoneIn], Field(max_length=limits.zones_per_layout_max)] = Field(default_factory=list)
    sections: Annotated[list[LayoutSectionIn], Field(min_length=1, max_length=limits.sections_per_event_max)]
    # An export's read-only fields, so that a GET's answer POSTs back as it is: ignored, whatever they hold (the
    # import reads the body itself, engine/catalog/layouts.py, and never looks at them).
    id: Any = Field(default=None, description="Ignored (an export's)")
    venue_id: Any = Field(default=None, description="Ignored (an export's)")
    seat_count: Any = Field(default=None, description="Ignored (an export's)")
    created_at: Any = Field(default=None, description="Ignored (an export's)")


class ZoneOut(BaseModel):
    code: str
    name: str


class LayoutOut(BaseModel):
    id: str
    venue_id: str
    name: str
    seat_count: int
    zones: list[ZoneOut]
    created_at: Timestamp


class SeatOut(BaseModel):
    number: int
    x: float
    y: float
    zone: str | None
    attributes: list[str]


class LayoutRowOut(BaseModel):
    label: str
    seats: list[SeatOut]


class LayoutSectionOut(BaseModel):
    name: str
    rows: list[LayoutRowOut]


class LayoutDocumentOut(LayoutOut):
    """The layout with every seat, in index order: POSTed back, it makes an equal layout."""

    sections: list[LayoutSectionOut]


class LayoutQuery(BaseModel):
    format: Literal["json", "csv"] = Field(default="json", description="csv: the layout as text/csv")
