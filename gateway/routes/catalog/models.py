"""The catalog's request and response bodies: an event with its seating and ticket types. Field shapes here; the
rules across fields are engine/catalog/rules.py's, run by the validators."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonDict, JsonValue

from engine import limits
from engine.catalog import rules as catalog
from engine.catalog import seating
from gateway.fields import DisplayName, Money, MoneyOut, TicketCode, UtcTime
from gateway.parsing import RequestModel, refuse_problems
from gateway.rendering import Timestamp

LayoutName = Annotated[str, StringConstraints(pattern=seating.NAME_PATTERN)]

# The engine's rules across fields that JSON Schema can state, for OpenAPI (the validators below enforce them, with
# their messages): a GA type has a capacity and a seated one none; an event's seating comes with exactly one seated
# type, and no seating with none. (Distinct codes, distinct section names and the seat limit it cannot state: those
# answer 422 with type "invalid".) A new source of seats (a layout) joins SEATING_SOURCES.
SEATING_SOURCES: tuple[str, ...] = ("seating",)
_SEATED: JsonDict = {"properties": {"kind": {"const": catalog.TicketKind.SEATED.value}}, "required": ["kind"]}
_CAPACITY_BY_KIND: JsonDict = {
    "oneOf": [
        {
            "properties": {"kind": {"const": catalog.TicketKind.GA.value}, "capacity": {"type": "integer"}},
            "required": ["capacity"],
        },
        {"properties": {"kind": {"const": catalog.TicketKind.SEATED.value}, "capacity": {"type": "null"}}},
    ]
}


def _seating_rule(sources: tuple[str, ...]) -> JsonDict:
    without: JsonDict = {
        "properties": {
            **{source: {"type": "null"} for source in sources},
            "ticket_types": {"not": {"contains": _SEATED}},
        }
    }
    with_one: list[JsonDict] = [
        {
            "required": [source],
            "properties": {source: {"not": {"type": "null"}}, "ticket_types": {"contains": _SEATED, "maxContains": 1}},
        }
        for source in sources
    ]
    return {"anyOf": [without, *with_one]}


_GA_PRICE: JsonDict = {"amount_minor": 15000, "currency": "ZAR"}
EVENT_EXAMPLES: list[JsonValue] = [
    {
        "name": "Jazz on the Lawn",
        "starts_at": "2026-12-31T18:00:00Z",
        "ticket_types": [{"code": "GA", "kind": "ga", "capacity": 500, "price": _GA_PRICE}],
    },
    {
        "name": "Flash Sale Live",
        "starts_at": "2026-12-31T18:00:00Z",
        "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10,
        "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 20}]}]},
        "ticket_types": [
            {"code": "GA", "kind": "ga", "capacity": 5000, "price": _GA_PRICE},
            {"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}},
        ],
    },
]


class RowIn(RequestModel):
    label: LayoutName
    seats: Annotated[int, Field(ge=1, le=limits.seats_per_row_max)]


class SectionIn(RequestModel):
    name: LayoutName
    rows: Annotated[list[RowIn], Field(min_length=1, max_length=limits.rows_per_section_max)]


class SeatingIn(RequestModel):
    sections: Annotated[list[SectionIn], Field(min_length=1, max_length=limits.sections_per_event_max)]

    def layout(self) -> tuple[seating.Section, ...]:
        return tuple(
            seating.Section(s.name, tuple(seating.Row(r.label, r.seats) for r in s.rows)) for s in self.sections
        )

    @model_validator(mode="after")
    def _distinct_seat_ids(self) -> SeatingIn:
        refuse_problems(catalog.layout_problems(self.layout()))
        return self


class TicketTypeIn(RequestModel):
    model_config = ConfigDict(json_schema_extra=_CAPACITY_BY_KIND)

    code: TicketCode
    kind: Literal["ga", "seated"]
    capacity: Annotated[int, Field(ge=0, le=limits.ga_capacity_max)] | None = Field(
        default=None, description="GA only: number of tickets. A seated type's capacity is its seat count."
    )
    price: Money

    def definition(self) -> catalog.TicketType:
        return catalog.TicketType(
            self.code, self.kind, self.capacity, catalog.Price(self.price.amount_minor, self.price.currency)
        )

    @model_validator(mode="after")
    def _capacity_by_kind(self) -> TicketTypeIn:
        refuse_problems(catalog.ticket_type_problems(self.definition()))
        return self


class EventCreate(RequestModel):
    """An event: only name, starts_at and ticket_types are needed (hold_ttl_s and max_tickets_per_buyer default)."""

    model_config = ConfigDict(json_schema_extra={**_seating_rule(SEATING_SOURCES), "examples": EVENT_EXAMPLES})

    name: DisplayName
    starts_at: UtcTime
    hold_ttl_s: Annotated[int, Field(ge=limits.hold_ttl_s_min, le=limits.hold_ttl_s_max)] = Field(
        default=limits.hold_ttl_s_default, description="how long a hold keeps its tickets (the longest ttl_s)"
    )
    max_tickets_per_buyer: Annotated[int, Field(ge=1, le=limits.max_tickets_per_buyer_max)] = Field(
        default=limits.max_tickets_per_buyer_default, description="held + bought, per buyer id"
    )
    seating: SeatingIn | None = None
    ticket_types: Annotated[list[TicketTypeIn], Field(min_length=1, max_length=limits.ticket_types_per_event_max)]
    dedicated: bool = Field(default=False, description="Extension: give this (hot) event its own inventory actor")

    def definition(self) -> catalog.EventDefinition:
        return catalog.EventDefinition(
            name=self.name,
            starts_at=self.starts_at,
            hold_ttl_s=self.hold_ttl_s,
            max_tickets_per_buyer=self.max_tickets_per_buyer,
            layout=None if self.seating is None else self.seating.layout(),
            ticket_types=tuple(t.definition() for t in self.ticket_types),
            dedicated=self.dedicated,
        )

    @model_validator(mode="after")
    def _ticket_types_fit(self) -> EventCreate:
        # The seating's and each ticket type's own rules passed in their validators (else this one never runs),
        # so what the engine still finds are the rules across them.
        refuse_problems(catalog.event_problems(self.definition()))
        return self


class TicketTypeOut(BaseModel):
    code: str
    kind: Literal["ga", "seated"]
    capacity: int
    price: MoneyOut


class EventOut(BaseModel):
    path_parameter: ClassVar[str] = "event_id"  # its id is the {event_id} of the event's routes (OpenAPI links)

    id: str
    name: str
    starts_at: Timestamp
    hold_ttl_s: int
    max_tickets_per_buyer: int
    status: Literal["draft", "on_sale"]
    dedicated: bool
    seat_count: int
    ticket_types: list[TicketTypeOut]
    created_at: Timestamp
    published_at: Timestamp | None


