"""The catalog's request and response bodies: an event with its seating and ticket types. Field shapes here; the
rules across fields are engine/catalog/rules.py's, run by the validators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonDict, JsonValue

from engine import limits
from engine.catalog import presales as sale_schedule
from engine.catalog import price_changes, seating
from engine.catalog import rules as catalog
from engine.catalog.layouts import ZONE_CODE_PATTERN
from gateway.fields import DisplayName, ExternalId, Money, MoneyOut, TicketCode, UtcTime
from gateway.parsing import RequestModel, cross_field_error, refuse_problems
from gateway.rendering import Timestamp
from gateway.routes.catalog.pricing_models import FeesIn, PriceTiersIn, TaxIn
from persistence.catalog.events import PresaleRecord

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
    zone: Annotated[str, StringConstraints(pattern=ZONE_CODE_PATTERN)] | None = Field(
        default=None,
        description="Seated, on a layout: this type sells the zone's seats. Without one, a seated type sells every "
        "seat no other type claims.",
    )
    price_tiers: PriceTiersIn | None = Field(
        default=None, description="earlier prices: the first tier whose `until` is still ahead applies, else `price`"
    )

    def definition(self) -> catalog.TicketType:
        return catalog.TicketType(
            self.code,
            self.kind,
            self.capacity,
            catalog.Price(self.price.amount_minor, self.price.currency),
            zone=self.zone,
            price_tiers=tuple(t.definition() for t in self.price_tiers or ()),
        )

    @model_validator(mode="after")
    def _capacity_by_kind(self) -> TicketTypeIn:
        refuse_problems(catalog.ticket_type_problems(self.definition()))
        return self


class PresaleIn(RequestModel):
    code: TicketCode
    opens_at: UtcTime
    closes_at: UtcTime
    buyer_ids: Annotated[list[ExternalId], Field(min_length=1, max_length=limits.presale_buyer_ids_max)] | None = (
        Field(default=None, description="only these buyers may hold during the presale (none: anyone with the code)")
    )

    def presale(self) -> sale_schedule.Presale:
        buyers = None if self.buyer_ids is None else frozenset(self.buyer_ids)
        return sale_schedule.Presale(self.code, self.opens_at.timestamp(), self.closes_at.timestamp(), buyers)


Presales = Annotated[list[PresaleIn], Field(max_length=limits.presales_per_event_max)]


def schedule_of(
    sale_opens_at: datetime | None, sale_closes_at: datetime | None, presales: list[PresaleIn]
) -> sale_schedule.SaleSchedule:
    return sale_schedule.SaleSchedule(
        None if sale_opens_at is None else sale_opens_at.timestamp(),
        None if sale_closes_at is None else sale_closes_at.timestamp(),
        tuple(p.presale() for p in presales),
    )


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
    layout_id: Annotated[str, StringConstraints(min_length=1, max_length=limits.id_chars_max)] | None = Field(
        default=None, description="Instead of seating: a venue layout, whose seats the event copies"
    )
    sale_opens_at: UtcTime | None = Field(
        default=None, description="a published event goes on sale by itself at this time (within a second)"
    )
    sale_closes_at: UtcTime | None = Field(default=None, description="the sale closes by itself at this time")
    presales: Presales = Field(default_factory=list, description="windows before sale_opens_at for code holders")

    def schedule_values(self) -> dict[str, object]:
        """The schedule given, as the events table's columns (services/catalog/lifecycle.py patches them in)."""
        values: dict[str, object] = {}
        if self.sale_opens_at is not None:
            values["sale_opens_at"] = self.sale_opens_at
        if self.sale_closes_at is not None:
            values["sale_closes_at"] = self.sale_closes_at
        if self.presales:
            values["presales"] = presale_records(self.presales)
        return values
    fees: FeesIn | None = Field(default=None, description="booking fees, each per ticket or per order")
    tax: TaxIn | None = Field(default=None, description="the event's tax, included in the prices or added on top")

    def definition(self) -> catalog.EventDefinition:
        return catalog.EventDefinition(
            name=self.name,
            starts_at=self.starts_at,
            hold_ttl_s=self.hold_ttl_s,
            max_tickets_per_buyer=self.max_tickets_per_buyer,
            layout=None if self.seating is None else self.seating.layout(),
            ticket_types=tuple(t.definition() for t in self.ticket_types),
            dedicated=self.dedicated,
            layout_id=self.layout_id,
            fees=tuple(f.definition() for f in self.fees or ()),
            tax=None if self.tax is None else self.tax.definition(),
        )

    @model_validator(mode="after")
    def _ticket_types_fit(self) -> EventCreate:
        # The seating's and each ticket type's own rules passed in their validators (else this one never runs),
        # so what the engine still finds are the rules across them.
        refuse_problems(catalog.event_problems(self.definition()))
        refuse_problems(sale_schedule.schedule_problems(schedule_of(self.sale_opens_at, self.sale_closes_at,
                                                                    self.presales)))
        return self


def presale_records(presales: list[PresaleIn]) -> tuple[PresaleRecord, ...]:
    return tuple(
        PresaleRecord(p.code, p.opens_at, p.closes_at, None if p.buyer_ids is None else tuple(p.buyer_ids))
        for p in presales
    )


def _not_null(*names: str) -> Callable[[JsonDict], None]:
    """The schema of a patch whose fields ``names`` may be left out but never be null: their null branch and null
    default are dropped, so the document states only what the model takes (its validator refuses null). The fields
    stay ``X | None`` in Python: a real union (pydantic's SkipJsonSchema) would name its arms in each error's path."""

    def edit(schema: JsonDict) -> None:
        properties = schema["properties"]
        assert isinstance(properties, dict)
        for name in names:
            prop = properties[name]
            assert isinstance(prop, dict)
            branches = prop.pop("anyOf")
            assert isinstance(branches, list)
            [kept] = [b for b in branches if b != {"type": "null"}]
            assert isinstance(kept, dict)
            prop.pop("default", None)
            prop.update(kept)

    return edit


def _changes_something(*names: str) -> Callable[[JsonDict], None]:
    not_null = _not_null(*names)

    def edit(schema: JsonDict) -> None:
        not_null(schema)
        schema["minProperties"] = 1

    return edit


class EventPatch(RequestModel):
    """Only the fields given change; ``sale_opens_at``/``sale_closes_at`` may be null (no timed move), ``tax``
    null removes the tax. ``fees`` replaces the whole list (``[]``: no fees)."""

    model_config = ConfigDict(json_schema_extra=_not_null("fees"))

    name: DisplayName | None = None
    starts_at: UtcTime | None = None
    sale_opens_at: UtcTime | None = None
    sale_closes_at: UtcTime | None = None
    hold_ttl_s: Annotated[int, Field(ge=limits.hold_ttl_s_min, le=limits.hold_ttl_s_max)] | None = None
    max_tickets_per_buyer: Annotated[int, Field(ge=1, le=limits.max_tickets_per_buyer_max)] | None = None
    presales: Presales | None = None
    fees: FeesIn | None = Field(
        default=None, description="the event's fees, the whole list: it replaces the stored one ([] removes them)"
    )
    tax: TaxIn | None = Field(default=None, description="the event's tax, replacing the stored one; null removes it")

    def values(self) -> dict[str, Any]:
        """The event columns to set: every field given but the price rules (a null sale time clears it)."""
        values: dict[str, Any] = {}
        for name in sorted(self.model_fields_set - _PRICE_RULES):
            value = getattr(self, name)
            values[name] = presale_records(value) if name == "presales" else value
        return values

    def price_rules(self) -> price_changes.RulesChange:
        """The new fees and tax given (engine/catalog/price_changes.py checks them against the stored event)."""
        given = self.model_fields_set
        return price_changes.RulesChange(
            fees=tuple(f.definition() for f in self.fees) if "fees" in given and self.fees is not None else None,
            tax_given="tax" in given,
            tax=None if self.tax is None else self.tax.definition(),
        )

    @model_validator(mode="after")
    def _no_nulls_but_sale_times(self) -> EventPatch:
        nulls = [name for name in self.model_fields_set if getattr(self, name) is None]
        problems = [(name, "may not be null") for name in sorted(nulls) if name not in _NULLABLE]
        if problems:
            raise cross_field_error(problems)
        # What the body itself breaks; with the stored schedule merged in, the use case checks again (422 too).
        # The price rules are the use case's alone: they need the event's currency, and all come in one answer.
        refuse_problems(
            sale_schedule.schedule_problems(schedule_of(self.sale_opens_at, self.sale_closes_at, self.presales or []))
        )
        return self


_NULLABLE = frozenset({"sale_opens_at", "sale_closes_at", "tax"})
_PRICE_RULES = frozenset({"fees", "tax"})


class TransitionIn(RequestModel):
    to: Literal["draft", "published", "on_sale", "paused", "sold_out", "closed", "cancelled"] = Field(
        description="the status to move the event to (see docs/api.md: which moves are allowed from where)"
    )


class TransitionOut(BaseModel):
    id: str
    status: Literal["draft", "published", "on_sale", "paused", "sold_out", "closed", "cancelled"]


class TicketTypePatch(RequestModel):
    """Only the fields given change, at least one: a GA type's ``capacity``, the ``price`` (in the event's
    currency), the ``price_tiers`` (the whole list, replacing the stored one; ``[]`` removes them)."""

    model_config = ConfigDict(json_schema_extra=_changes_something("capacity", "price", "price_tiers"))

    capacity: Annotated[int, Field(ge=0, le=limits.ga_capacity_max)] | None = Field(
        default=None, description="GA only: grow any time, shrink only down to held + sold"
    )
    price: Money | None = Field(default=None, description="the base price, in the event's currency")
    price_tiers: PriceTiersIn | None = Field(
        default=None, description="earlier prices, replacing the stored tiers: the first whose `until` is still "
        "ahead applies, else `price`"
    )

    def price_change(self, code: str) -> price_changes.TypePriceChange:
        """The new price and tiers given (engine/catalog/price_changes.py checks them against the stored event)."""
        return price_changes.TypePriceChange(
            code,
            price=None if self.price is None else catalog.Price(self.price.amount_minor, self.price.currency),
            tiers=None if self.price_tiers is None else tuple(t.definition() for t in self.price_tiers),
        )

    @model_validator(mode="after")
    def _something_and_no_nulls(self) -> TicketTypePatch:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        problems = [(name, "may not be null") for name in nulls]
        if not self.model_fields_set:
            problems.append(("capacity", "give capacity, price or price_tiers (at least one)"))
        if problems:
            raise cross_field_error(problems)
        return self


class PriceTierOut(BaseModel):
    until: Timestamp
    price: MoneyOut


class FeeOut(BaseModel):
    code: str
    per: Literal["ticket", "order"]
    amount_minor: int | None
    percent_bp: int | None


class TaxOut(BaseModel):
    code: str
    rate_bp: int
    included: bool


class TicketTypeOut(BaseModel):
    code: str
    kind: Literal["ga", "seated"]
    capacity: int
    price: MoneyOut
    zone: str | None = None
    price_tiers: list[PriceTierOut] = Field(default_factory=list)


class PresaleOut(BaseModel):
    code: str
    opens_at: Timestamp
    closes_at: Timestamp
    buyer_count: int | None = Field(description="how many buyer ids the presale lists (null: anyone with the code)")


class EventOut(BaseModel):
    path_parameter: ClassVar[str] = "event_id"  # its id is the {event_id} of the event's routes (OpenAPI links)

    id: str
    name: str
    starts_at: Timestamp
    hold_ttl_s: int
    max_tickets_per_buyer: int
    status: Literal["draft", "published", "on_sale", "paused", "sold_out", "closed", "cancelled"]
    sale_opens_at: Timestamp | None = None
    sale_closes_at: Timestamp | None = None
    presales: list[PresaleOut] | None = Field(default=None, description="null for a publishable key")
    dedicated: bool
    seat_count: int
    ticket_types: list[TicketTypeOut]
    created_at: Timestamp
    published_at: Timestamp | None
    layout_id: str | None = None
    fees: list[FeeOut] = Field(default_factory=list)
    tax: TaxOut | None = None


