"""The inventory's request and response bodies: holds, confirms and sales, availability and its live deltas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import JsonDict

from engine import limits
from engine.inventory.best_available import REQUESTABLE_ATTRIBUTES, BestRequest
from gateway.fields import ExternalId, SeatId, TicketCode
from gateway.parsing import RequestModel, cross_field_error
from gateway.rendering import EngineTime

# engine.inventory.best_available.REQUESTABLE_ATTRIBUTES (tests/unit/test_best_available.py holds them equal)
SeatAttribute = Literal["accessible", "restricted_view", "companion"]


class BestAvailableIn(RequestModel):
    quantity: Annotated[int, Field(ge=1, le=limits.seats_per_hold_max)]
    zone: TicketCode | None = Field(default=None, description="only seats of this zone of the event's layout")
    attributes: Annotated[list[SeatAttribute], Field(max_length=len(REQUESTABLE_ATTRIBUTES))] | None = Field(
        default=None, description="only seats carrying every one of these attributes"
    )
    fallback_zones: Annotated[list[TicketCode], Field(max_length=limits.best_available_fallback_zones_max)] | None = (
        Field(default=None, description="when `zone` has too few seats free, the best seats of the first of these "
              "zones that has enough, in this order (needs `zone`; each zone once)")
    )

    def request(self) -> BestRequest:
        return BestRequest(self.quantity, self.zone, tuple(self.attributes or ()), tuple(self.fallback_zones or ()))

    @model_validator(mode="after")
    def _distinct(self) -> BestAvailableIn:
        seen: set[str] = set()
        problems = []
        for i, attribute in enumerate(self.attributes or ()):
            if attribute in seen:
                problems.append((f"attributes.{i}", "repeats an attribute"))
            seen.add(attribute)
        fallback = self.fallback_zones or []
        if fallback and self.zone is None:
            problems.append(("fallback_zones", "needs a zone to fall back from (no zone means any zone)"))
        for i, zone in enumerate(fallback):
            if zone == self.zone or zone in fallback[:i]:
                problems.append((f"fallback_zones.{i}", "repeats a zone"))
        if problems:
            raise cross_field_error(problems)
        return self


def _given(field: str, json_type: str) -> JsonDict:
    return {"required": [field], "properties": {field: {"type": json_type}}}


# The forms of a hold, as the validator below enforces them, for OpenAPI: seats, or a ticket type and a quantity
# (a field given as null counts as absent). A new form (best available) joins this rule and the validator.
_HOLD_FORMS: JsonDict = {
    "anyOf": [
        {
            **_given("seats", "array"),
            "not": {"anyOf": [_given("ticket_type", "string"), _given("quantity", "integer")]},
        },
        {"allOf": [_given("ticket_type", "string"), _given("quantity", "integer")], "not": _given("seats", "array")},
    ],
    "examples": [
        {"buyer_id": "b-123", "seats": ["A-1-7", "A-1-8"]},
        {"buyer_id": "b-123", "ticket_type": "GA", "quantity": 2, "ttl_s": 300},
    ],
}


class HoldCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra=_HOLD_FORMS)

    buyer_id: ExternalId
    seats: (
        Annotated[
            list[SeatId],
            Field(min_length=1, max_length=limits.seats_per_hold_max, json_schema_extra={"uniqueItems": True}),
        ]
        | None
    ) = None
    ticket_type: TicketCode | None = None
    quantity: Annotated[int, Field(ge=1, le=limits.quantity_per_hold_max)] | None = None
    ttl_s: Annotated[int, Field(ge=limits.hold_ttl_s_min, le=limits.hold_ttl_s_max)] | None = Field(
        default=None, description="at most the event's hold_ttl_s (its default)"
    )
    presale_code: TicketCode | None = Field(
        default=None, description="during a presale window (before sale_opens_at): the presale's code"
    )
    best_available: BestAvailableIn | None = Field(
        default=None, description="instead of seats: the inventory picks the best free seats, adjacent in a row"
    )

    @model_validator(mode="after")
    def _seats_or_quantity(self) -> HoldCreate:
        by_quantity = self.ticket_type is not None or self.quantity is not None
        if self.best_available is not None:
            if self.seats is not None or by_quantity:
                raise cross_field_error([("best_available", "give seats, a ticket_type and quantity, or "
                                                            "best_available: one of them")])
            return self
        if self.seats is not None and by_quantity:
            raise cross_field_error([("seats", "hold either seats or a ticket_type and quantity, not both")])
        if self.seats is None and (self.ticket_type is None or self.quantity is None):
            missing = "quantity" if self.ticket_type is not None else "ticket_type"
            field = "seats" if not by_quantity else missing
            raise cross_field_error([(field, "give seats, a ticket_type and a quantity, or best_available")])
        if self.seats is not None:
            seen: set[str] = set()
            problems = []
            for i, seat in enumerate(self.seats):
                if seat in seen:
                    problems.append((f"seats.{i}", "repeats a seat"))
                seen.add(seat)
            if problems:
                raise cross_field_error(problems)
        return self


class ConfirmCreate(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"order_ref": "order-2026-0001"}]})

    order_ref: ExternalId


class TicketTypeCountsOut(BaseModel):
    code: str
    capacity: int
    available: int
    held: int
    sold: int


class SeatsAvailabilityOut(BaseModel):
    total: int
    available: int
    bitmap: str = Field(description="base64; bit i (MSB first) is 1 when seat i is available")


class AvailabilityOut(BaseModel):
    event_id: str
    version: int
    ticket_types: list[TicketTypeCountsOut]
    seats: SeatsAvailabilityOut


class HoldOut(BaseModel):
    hold_id: str
    event_id: str
    buyer_id: str
    seats: list[str]
    ticket_type: str
    quantity: int
    expires_at: EngineTime


class HoldStatusOut(HoldOut):
    status: Literal["held", "sold"]


class TicketOut(BaseModel):
    ticket_id: str
    ticket_type: str
    seat_id: str | None = Field(default=None, description="present for a seated ticket")
    unit: int | None = Field(default=None, description="present for a GA ticket: its unit number 1..capacity")


class SaleOut(BaseModel):
    sale_id: str
    event_id: str
    hold_id: str
    tickets: list[TicketOut]


class LiveSnapshot(AvailabilityOut):
    type: Literal["snapshot"]


class LiveDelta(BaseModel):
    type: Literal["delta"]
    version: int
    seats_changed: dict[str, Literal["available", "held", "sold"]]
    seats_available: int
    ticket_types: list[TicketTypeCountsOut]


class SeatIdsOut(BaseModel):
    seat_ids: list[str]
