"""Request and response bodies as pydantic models, bounded by engine/limits.py.

Requests are strict (no "5" for 5) and forbid unknown fields. The models check each field's shape; an event's rules
across fields are the catalog's (engine/catalog/rules.py), which the model validators run. Rules that span fields raise
one ``PydanticCustomError`` whose ``ctx["fields"]`` lists ``[field, message]`` pairs, so the 422 still names each
bad field. Response models are the documented shapes (OpenAPI, tests); routes build the same dicts directly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError

from engine import limits
from engine.access import passwords
from engine.access.rules import PUBLISHABLE_SCOPES, ROLES, SCOPES, KeyKind
from engine.catalog import rules as catalog
from engine.catalog import seating
from gateway.errors import ApiError, MalformedJson, ValidationFailed
from gateway.rendering import EngineTime, Timestamp

money_amount_minor_max = limits.price_minor_max
field_errors_max = 100
ModelT = TypeVar("ModelT", bound=BaseModel)
_TICKET_CODE_PATTERN = rf"^[A-Za-z0-9_-]{{1,{limits.label_chars_max}}}$"
_SEAT_ID_PATTERN = (
    rf"^[A-Za-z0-9]{{1,{limits.label_chars_max}}}-[A-Za-z0-9]{{1,{limits.label_chars_max}}}-[1-9][0-9]{{0,6}}$"
)
_NO_CONTROL_CHARS_PATTERN = r"^[^\x00-\x1f\x7f]*$"
_PRINTABLE_ASCII_PATTERN = r"^[\x21-\x7e]+$"

DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.name_chars_max, pattern=_NO_CONTROL_CHARS_PATTERN)
]
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.id_chars_max, pattern=_PRINTABLE_ASCII_PATTERN)
]
TicketCode = Annotated[str, StringConstraints(pattern=_TICKET_CODE_PATTERN)]
SeatId = Annotated[str, StringConstraints(max_length=limits.id_chars_max, pattern=_SEAT_ID_PATTERN)]
LayoutName = Annotated[str, StringConstraints(pattern=seating.NAME_PATTERN)]


def _known_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise PydanticCustomError("unknown_scope", "unknown scope; known scopes: {known}", {"known": ", ".join(SCOPES)})
    return scope


Scope = Annotated[str, AfterValidator(_known_scope)]


def cross_field_error(problems: list[tuple[str, str]]) -> PydanticCustomError:
    """One error carrying several (field path relative to the model, message) problems."""
    summary = "; ".join(f"{field}: {message}" for field, message in problems)
    return PydanticCustomError("invalid_fields", summary, {"fields": [list(p) for p in problems]})


def refuse_problems(problems: list[catalog.Problem]) -> None:
    """The engine's problems as the one cross-field error (none: nothing to refuse)."""
    if problems:
        raise cross_field_error([(p.field, p.message) for p in problems])


class RequestModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# ---- requests ----------------------------------------------------------------------------------------------


class Money(RequestModel):
    amount_minor: Annotated[int, Field(ge=0, le=money_amount_minor_max)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = Field(description="ISO 4217 code")


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
    name: DisplayName
    starts_at: AwareDatetime
    hold_ttl_s: Annotated[int, Field(ge=limits.hold_ttl_s_min, le=limits.hold_ttl_s_max)]
    max_tickets_per_buyer: Annotated[int, Field(ge=1, le=limits.max_tickets_per_buyer_max)]
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


class HoldCreate(RequestModel):
    buyer_id: ExternalId
    seats: Annotated[list[SeatId], Field(min_length=1, max_length=limits.seats_per_hold_max)] | None = None
    ticket_type: TicketCode | None = None
    quantity: Annotated[int, Field(ge=1, le=limits.quantity_per_hold_max)] | None = None
    ttl_s: Annotated[int, Field(ge=limits.hold_ttl_s_min, le=limits.hold_ttl_s_max)] | None = Field(
        default=None, description="at most the event's hold_ttl_s (its default)"
    )

    @model_validator(mode="after")
    def _seats_or_quantity(self) -> HoldCreate:
        by_quantity = self.ticket_type is not None or self.quantity is not None
        if self.seats is not None and by_quantity:
            raise cross_field_error([("seats", "hold either seats or a ticket_type and quantity, not both")])
        if self.seats is None and (self.ticket_type is None or self.quantity is None):
            missing = "quantity" if self.ticket_type is not None else "ticket_type"
            field = "seats" if not by_quantity else missing
            raise cross_field_error([(field, "give seats, or a ticket_type and a quantity")])
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
    order_ref: ExternalId


class ApiKeyCreate(RequestModel):
    name: DisplayName
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(SCOPES))]
    kind: Literal["secret", "publishable"] = Field(
        default="secret", description="publishable: a checkout front-end's key, buying scopes only"
    )
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="when the key stops working; in the future, at most 730 days ahead, and never after the "
        "creating key's own expiry (absent: that expiry, or never for a key made by a person or a key that never "
        "expires)",
    )

    @model_validator(mode="after")
    def _distinct_scopes(self) -> ApiKeyCreate:
        if len(set(self.scopes)) != len(self.scopes):
            raise cross_field_error([("scopes", "repeats a scope")])
        if self.kind == KeyKind.PUBLISHABLE:
            beyond = sorted(set(self.scopes) - PUBLISHABLE_SCOPES)
            if beyond:
                allowed = ", ".join(sorted(PUBLISHABLE_SCOPES))
                raise cross_field_error([("scopes", f"a publishable key may only carry {allowed}, not {beyond}")])
        return self


# ---- responses ---------------------------------------------------------------------------------------------


class MoneyOut(BaseModel):
    amount_minor: int
    currency: str


class TicketTypeOut(BaseModel):
    code: str
    kind: Literal["ga", "seated"]
    capacity: int
    price: MoneyOut


class EventOut(BaseModel):
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


class SeatIdsOut(BaseModel):
    seat_ids: list[str]


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


class ApiKeyInfo(BaseModel):
    """A key as listed: never its secret or hash."""

    id: str
    name: str
    kind: Literal["secret", "publishable"]
    prefix: str = Field(description='the public part of "vk_<prefix>_<secret>"')
    scopes: list[str]
    created_at: Timestamp
    created_by: str | None = Field(description='"user:<id>", "key:<id>" or "system:<what>"')
    expires_at: Timestamp | None
    revoked_at: Timestamp | None
    last_used_at: Timestamp | None = Field(description="minute-accurate; written in the background")


class ApiKeyList(BaseModel):
    api_keys: list[ApiKeyInfo]


class ApiKeyOut(BaseModel):
    id: str
    name: str
    kind: Literal["secret", "publishable"]
    prefix: str
    scopes: list[str]
    created_at: Timestamp
    created_by: str
    expires_at: Timestamp | None
    key: str | None = Field(
        description="the plaintext key, shown once: null in an Idempotency-Key replay (the secret is kept nowhere)"
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    error: ErrorDetail


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready", "unready"]
    checks: dict[str, str]


class LiveSnapshot(AvailabilityOut):
    type: Literal["snapshot"]


class LiveDelta(BaseModel):
    type: Literal["delta"]
    version: int
    seats_changed: dict[str, Literal["available", "held", "sold"]]
    seats_available: int
    ticket_types: list[TicketTypeCountsOut]


# ---- parsing -----------------------------------------------------------------------------------------------


def parse_body(model: type[ModelT], raw: bytes) -> ModelT:
    """The validated body, or the API error: 400 for malformed JSON, 422 naming every bad field."""
    try:
        return model.model_validate_json(raw)
    except PydanticValidationError as error:
        raise error_for_validation(error) from None


def error_for_validation(error: PydanticValidationError) -> ApiError:
    problems = error.errors(include_url=False, include_input=False)
    malformed = next((p for p in problems if p["type"] == "json_invalid"), None)
    if malformed is not None:
        return MalformedJson(f"the request body is not valid JSON: {malformed['msg'].removeprefix('Invalid JSON: ')}")
    fields: list[dict[str, str]] = []
    for problem in problems:
        fields += _field_entries(problem)
    details: dict[str, Any] = {"fields": fields[:field_errors_max]}
    if len(fields) > field_errors_max:
        details["fields_truncated"] = True
    return ValidationFailed(details=details)


def _field_entries(problem: Any) -> list[dict[str, str]]:
    base = [str(part) for part in problem["loc"]]
    nested = (problem.get("ctx") or {}).get("fields")
    if problem["type"] == "invalid_fields" and nested:
        return [{"field": _path([*base, field]), "message": message, "type": "invalid"} for field, message in nested]
    return [{"field": _path(base), "message": problem["msg"], "type": problem["type"]}]


def _path(parts: list[str]) -> str:
    return ".".join(parts) if parts else "body"


# ---- people: sessions, invitations, members ----------------------------------------------------------------


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise PydanticCustomError("unknown_role", "unknown role; known roles: {known}", {"known": ", ".join(ROLES)})
    return role


def _acceptable_password(password: str) -> str:
    problem = passwords.password_problem(password)
    if problem is not None:
        raise PydanticCustomError("weak_password", problem)
    return password


RoleName = Annotated[str, AfterValidator(_known_role)]
Email = Annotated[EmailStr, StringConstraints(max_length=254)]
OrgId = Annotated[str, StringConstraints(pattern=r"^org_[0-9a-f]{32}$")]
# Logging in checks the length bound only: the policy may have changed since the password was set.
PresentedPassword = Annotated[str, StringConstraints(min_length=1, max_length=passwords.password_chars_max)]
NewPassword = Annotated[str, AfterValidator(_acceptable_password)]
OpaqueToken = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SessionCreate(RequestModel):
    email: Email
    password: PresentedPassword
    org_id: OrgId | None = Field(default=None, description="required when the person belongs to several orgs")


class SessionRefresh(RequestModel):
    refresh_token: OpaqueToken = Field(description="vr_<session>_<secret>, from the login or the last refresh")


class InvitationAccept(RequestModel):
    token: OpaqueToken = Field(description="vi_<invitation>_<secret>, shown once to whoever invited the person")
    password: NewPassword = Field(
        description=f"{passwords.password_chars_min}-{passwords.password_chars_max} characters: the new "
        "password when the invitation created the account, otherwise the person's existing password"
    )


class MemberCreate(RequestModel):
    email: Email
    role: RoleName


class MemberUpdate(RequestModel):
    role: RoleName


class SessionOut(BaseModel):
    access_token: str = Field(description="a signed JWT; send it as Authorization: Bearer <token>")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="seconds the access token lives")
    refresh_token: str = Field(description="single use: each refresh returns a new one")
    session_id: str
    user_id: str
    org_id: str
    role: str


class InvitationAccepted(BaseModel):
    user_id: str
    email: str


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: str
    status: Literal["active", "pending"] = Field(
        description="pending until the person accepts the organization's invitation; a pending member cannot log in"
    )
    created_at: Timestamp


class MemberList(BaseModel):
    members: list[MemberOut]


class InvitationOut(BaseModel):
    token: str | None = Field(
        description="the invitation token, shown once: pass it to the person privately; null in an Idempotency-Key "
        "replay (the token is kept nowhere)"
    )
    expires_at: Timestamp


class MemberCreated(MemberOut):
    invitation: InvitationOut | None = Field(
        description="the invitation the person accepts to join (always present from this route)"
    )
