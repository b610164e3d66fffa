"""An event as the catalog accepts it: its definition, every rule over it, and what it derives.

One set of rules, three callers. The gateway turns ``event_problems`` into its 422 (pydantic has checked each
field's shape first, so what it still finds are the rules spanning fields); persistence asserts
``stocked_problems`` on what it stores (a problem there is a caller's bug); the inventory asserts the
``stock_problems`` it shares. A problem names its field by the request's dot-separated path, so the 422 can name
the field: "ticket_types.1.code", "seating.sections.0.rows.2.label".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, replace
from datetime import datetime
from enum import StrEnum

from engine import limits
from engine.catalog import pricing, seating

_CURRENCY_RE = re.compile(r"[A-Z]{3}")  # ISO 4217


class TicketKind(StrEnum):
    GA = "ga"  # general admission: a number of interchangeable tickets
    SEATED = "seated"  # one ticket per seat of the layout


@dataclass(frozen=True, slots=True)
class Price:
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class TicketType:
    code: str
    kind: str  # a TicketKind; a str so that a stored row's unknown kind is a problem, not a crash
    capacity: int | None  # a definition gives it for GA only; stocked, every type has one (see capacity_of)
    price: Price
    _: KW_ONLY  # named at every call, so an optional field added later never takes another one's place
    zone: str | None = None  # seated, on a layout: the type's seats are that zone's (engine/catalog/layout_events.py)
    price_tiers: tuple[pricing.PriceTier, ...] = ()  # engine/catalog/pricing.py: the first still ahead applies


@dataclass(frozen=True, slots=True)
class EventDefinition:
    """What an organizer asks for."""

    name: str
    starts_at: datetime
    hold_ttl_s: int
    max_tickets_per_buyer: int
    layout: tuple[seating.Section, ...] | None  # None: no seating (a GA-only event)
    ticket_types: tuple[TicketType, ...]
    dedicated: bool = False
    layout_id: str | None = None  # instead of ``layout``: a venue's layout (engine/catalog/layout_events.py)
    fees: tuple[pricing.Fee, ...] = ()
    tax: pricing.Tax | None = None


@dataclass(frozen=True, slots=True)
class StockedEvent:
    """A definition with its derivations applied (``stocked``): the seat ids in index order and every ticket type
    with its capacity. What is stored, and what an inventory is built from."""

    name: str
    starts_at: datetime
    hold_ttl_s: int
    max_tickets_per_buyer: int
    seat_ids: tuple[str, ...]
    ticket_types: tuple[TicketType, ...]
    dedicated: bool = False
    # per seat index, the code of the seated ticket type selling it, None for a seat nobody sells (blocked);
    # empty: every seat is the one seated type's
    seat_types: tuple[str | None, ...] = ()
    fees: tuple[pricing.Fee, ...] = ()
    tax: pricing.Tax | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # dot-separated path from the root of what was checked
    message: str


# ---- derivations -------------------------------------------------------------------------------------------


def seat_ids(definition: EventDefinition) -> tuple[str, ...]:
    return seating.seat_ids(definition.layout or ())


def capacity_of(ticket_type: TicketType, seat_count: int) -> int:
    """A seated type sells each seat once, so its capacity is the seat count; a GA type's is its own."""
    if ticket_type.kind == TicketKind.SEATED:
        return seat_count
    return ticket_type.capacity or 0


def stocked(definition: EventDefinition) -> StockedEvent:
    """The definition's stock. Check ``event_problems`` first: a refused definition derives nothing useful."""
    seats = seat_ids(definition)
    seated = [t.code for t in definition.ticket_types if t.kind == TicketKind.SEATED]
    return StockedEvent(
        name=definition.name,
        starts_at=definition.starts_at,
        hold_ttl_s=definition.hold_ttl_s,
        max_tickets_per_buyer=definition.max_tickets_per_buyer,
        seat_ids=seats,
        ticket_types=tuple(replace(t, capacity=capacity_of(t, len(seats))) for t in definition.ticket_types),
        dedicated=definition.dedicated,
        seat_types=(seated[0],) * len(seats) if seated else (),
        fees=definition.fees,
        tax=definition.tax,
    )


# ---- the rules ---------------------------------------------------------------------------------------------


def event_problems(definition: EventDefinition) -> list[Problem]:
    """Every rule the definition breaks, in the order of its fields; empty when the catalog accepts it."""
    layout_found = [] if definition.layout is None else within("seating", layout_problems(definition.layout))
    types = definition.ticket_types
    seated = any(t.kind == TicketKind.SEATED for t in types)
    on_layout = definition.layout_id is not None
    return [
        *settings_problems(definition.name, definition.starts_at),
        *sale_limit_problems(definition.hold_ttl_s, definition.max_tickets_per_buyer),
        *layout_found,
        *type_count_problems(types),
        *(p for i, t in enumerate(types) for p in within(f"ticket_types.{i}", ticket_type_problems(t))),
        *(type_zone_problems(types) if on_layout else type_mix_problems(types)),
        *_seating_presence_problems(seated, definition.layout is not None or on_layout),
        *_seating_or_layout_problems(definition.layout is not None, on_layout),
        *([] if on_layout else _zone_without_layout_problems(types)),
        *price_problems(types, definition.fees, definition.tax),
    ]


def stocked_problems(event: StockedEvent) -> list[Problem]:
    """Every rule a stocked event breaks; empty for the stock of an accepted definition."""
    types = event.ticket_types
    return [
        *settings_problems(event.name, event.starts_at),
        *sale_limit_problems(event.hold_ttl_s, event.max_tickets_per_buyer),
        *type_count_problems(types),
        *(p for i, t in enumerate(types) for p in within(f"ticket_types.{i}", _stocked_type_problems(t))),
        *stock_problems(event.seat_ids, [(t.code, t.kind, t.capacity) for t in types], event.seat_types),
        *price_problems(types, event.fees, event.tax),
    ]


def settings_problems(name: str, starts_at: datetime) -> list[Problem]:
    problems = []
    if not 1 <= len(name) <= limits.name_chars_max:
        problems.append(Problem("name", f"must be 1..{limits.name_chars_max} characters"))
    if starts_at.utcoffset() is None:
        problems.append(Problem("starts_at", "must carry a time zone"))
    return problems


def sale_limit_problems(hold_ttl_s: int, max_tickets_per_buyer: int) -> list[Problem]:
    problems = []
    if not limits.hold_ttl_s_min <= hold_ttl_s <= limits.hold_ttl_s_max:
        problems.append(Problem("hold_ttl_s", f"must be {limits.hold_ttl_s_min}..{limits.hold_ttl_s_max}"))
    if not 1 <= max_tickets_per_buyer <= limits.max_tickets_per_buyer_max:
        problems.append(Problem("max_tickets_per_buyer", f"must be 1..{limits.max_tickets_per_buyer_max}"))
    return problems


def layout_problems(layout: Sequence[seating.Section]) -> list[Problem]:
    """What would repeat a seat id or pass the seat limit. Paths are relative to the seating."""
    problems = [
        Problem(f"sections.{s}.name", "repeats a section name")
        if r is None
        else Problem(f"sections.{s}.rows.{r}.label", "repeats a row label in this section")
        for s, r in seating.repeated_rows(layout)
    ]
    count = seating.seat_count(layout)
    if count > limits.seats_per_event_max:
        problems.append(Problem("sections", f"{count} seats; at most {limits.seats_per_event_max} per event"))
    return problems


def type_count_problems(types: Sequence[TicketType]) -> list[Problem]:
    if len(types) > limits.ticket_types_per_event_max:
        return [Problem("ticket_types", f"at most {limits.ticket_types_per_event_max} ticket types per event")]
    return []


def ticket_type_problems(ticket_type: TicketType) -> list[Problem]:
    """A defined ticket type's own rules. Paths are relative to the ticket type."""
    problems = _code_kind_price_problems(ticket_type)
    if ticket_type.kind == TicketKind.GA and ticket_type.capacity is None:
        problems.append(Problem("capacity", "a GA ticket type needs a capacity"))
    if ticket_type.kind == TicketKind.SEATED and ticket_type.capacity is not None:
        problems.append(Problem("capacity", "a seated ticket type's capacity is its seat count; omit it"))
    if ticket_type.capacity is not None and not 0 <= ticket_type.capacity <= limits.ga_capacity_max:
        problems.append(Problem("capacity", f"must be 0..{limits.ga_capacity_max}"))
    if ticket_type.kind == TicketKind.GA and ticket_type.zone is not None:
        problems.append(Problem("zone", "only a seated ticket type has a zone"))
    return problems


def _stocked_type_problems(ticket_type: TicketType) -> list[Problem]:
    problems = _code_kind_price_problems(ticket_type)
    if ticket_type.capacity is None:
        problems.append(Problem("capacity", "a stocked ticket type has a capacity"))
    return problems


def _code_kind_price_problems(ticket_type: TicketType) -> list[Problem]:
    problems = []
    if not 1 <= len(ticket_type.code) <= limits.label_chars_max:
        problems.append(Problem("code", f"must be 1..{limits.label_chars_max} characters"))
    if ticket_type.kind not in tuple(TicketKind):
        problems.append(Problem("kind", f"must be one of {', '.join(TicketKind)}"))
    if not 0 <= ticket_type.price.amount_minor <= limits.price_minor_max:
        problems.append(Problem("price.amount_minor", f"must be 0..{limits.price_minor_max} minor units"))
    if _CURRENCY_RE.fullmatch(ticket_type.price.currency) is None:
        problems.append(Problem("price.currency", "must be three upper-case letters (ISO 4217)"))
    return problems


def type_mix_problems(types: Sequence[TicketType]) -> list[Problem]:
    """The rules across an event's ticket types: codes are distinct, and at most one type is seated."""
    return [
        *repeated_code_problems([t.code for t in types]),
        *_extra_seated_problems([t.kind for t in types]),
    ]


def repeated_code_problems(codes: Sequence[str]) -> list[Problem]:
    """Each code that repeats an earlier one (a ticket's type is named by its code)."""
    problems = []
    seen: set[str] = set()
    for i, code in enumerate(codes):
        if code in seen:
            problems.append(Problem(f"ticket_types.{i}.code", "repeats a ticket type code"))
        seen.add(code)
    return problems


def _extra_seated_problems(kinds: Sequence[str]) -> list[Problem]:
    # A seat belongs to one ticket type, so a second seated type would have no seats of its own.
    seated = [i for i, kind in enumerate(kinds) if kind == TicketKind.SEATED]
    return [Problem(f"ticket_types.{i}.kind", "at most one seated ticket type per event") for i in seated[1:]]


def type_zone_problems(types: Sequence[TicketType]) -> list[Problem]:
    """The rules across the ticket types of an event on a layout: codes are distinct, a zone is one type's, and
    at most one seated type has no zone (it sells every seat no other type claims)."""
    problems = repeated_code_problems([t.code for t in types])
    zones: set[str] = set()
    zoneless = 0
    for i, t in enumerate(types):
        if t.kind != TicketKind.SEATED:
            continue
        if t.zone is None:
            zoneless += 1
            if zoneless > 1:
                problems.append(Problem(f"ticket_types.{i}.zone", "at most one seated ticket type without a zone"))
        elif t.zone in zones:
            problems.append(Problem(f"ticket_types.{i}.zone", f"zone {t.zone!r} is another ticket type's"))
        else:
            zones.add(t.zone)
    return problems


def _zone_without_layout_problems(types: Sequence[TicketType]) -> list[Problem]:
    return [
        Problem(f"ticket_types.{i}.zone", "a zone needs the event on a layout (layout_id)")
        for i, t in enumerate(types)
        if t.kind == TicketKind.SEATED and t.zone is not None
    ]


def _seating_or_layout_problems(has_seating: bool, has_layout: bool) -> list[Problem]:
    if has_seating and has_layout:
        return [Problem("layout_id", "give either seating or layout_id, not both")]
    return []


def _seating_presence_problems(has_seated_type: bool, has_seating: bool) -> list[Problem]:
    if has_seated_type and not has_seating:
        return [Problem("seating", "a seated ticket type needs seating")]
    if has_seating and not has_seated_type:
        return [Problem("seating", "seating needs a seated ticket type")]
    return []


def stock_problems(
    seat_ids: Sequence[str],
    types: Sequence[tuple[str, str, int | None]],
    seat_types: Sequence[str | None] = (),
) -> list[Problem]:
    """The rules over what goes on sale: the seat ids, each ticket type as (code, kind, capacity), and per seat
    the seated type selling it (None: nobody; empty: every seat is the one seated type's)."""
    seated = [(code, capacity) for code, kind, capacity in types if kind == TicketKind.SEATED]
    problems = [
        *seat_id_problems(seat_ids),
        *repeated_code_problems([code for code, _, _ in types]),
    ]
    if bool(seated) != bool(seat_ids):
        problems.append(Problem("seat_ids", "a seated ticket type needs seats, and seats need a seated ticket type"))
    if not seat_types:
        problems += _extra_seated_problems([kind for _, kind, _ in types])
        if seated and seated[0][1] != len(seat_ids):
            problems.append(Problem("ticket_types", "a seated ticket type's capacity is its number of seats"))
    elif len(seat_types) != len(seat_ids):
        problems.append(Problem("seat_types", "one ticket type (or none) per seat"))
    else:
        problems += _seat_type_problems(seated, seat_types)
    for i, (_, kind, capacity) in enumerate(types):
        if kind == TicketKind.GA and capacity is not None and not 0 <= capacity <= limits.ga_capacity_max:
            problems.append(Problem(f"ticket_types.{i}.capacity", f"must be 0..{limits.ga_capacity_max}"))
    return problems


def _seat_type_problems(seated: Sequence[tuple[str, int | None]], seat_types: Sequence[str | None]) -> list[Problem]:
    counts: dict[str | None, int] = {}
    for code in seat_types:
        counts[code] = counts.get(code, 0) + 1
    codes = {code for code, _ in seated}
    problems = []
    if any(code is not None and code not in codes for code in counts):
        problems.append(Problem("seat_types", "a seat's ticket type must be a seated ticket type of the event"))
    for code, capacity in seated:
        if counts.get(code, 0) != capacity:
            problems.append(Problem("ticket_types", f"seated ticket type {code}'s capacity is its number of seats"))
    return problems


def seat_id_problems(seat_ids: Sequence[str]) -> list[Problem]:
    if len(seat_ids) > limits.seats_per_event_max:
        return [Problem("seat_ids", f"at most {limits.seats_per_event_max} seats per event")]
    problems = []
    if len(set(seat_ids)) != len(seat_ids):
        problems.append(Problem("seat_ids", "seat ids must be unique"))
    if any(not 1 <= len(seat_id) <= limits.id_chars_max for seat_id in seat_ids):
        problems.append(Problem("seat_ids", f"seat ids must be 1..{limits.id_chars_max} characters"))
    return problems


def price_problems(
    types: Sequence[TicketType], fees: Sequence[pricing.Fee], tax: pricing.Tax | None
) -> list[Problem]:
    """The price rules (engine/catalog/pricing.py): one currency, tiers in order, fees and tax in bounds."""
    rules = [pricing.TypeRules(t.code, t.price.currency, t.price_tiers) for t in types]
    return [Problem(f, m) for f, m in pricing.price_rule_problems(rules, fees, tax)]


def within(prefix: str, problems: Sequence[Problem]) -> list[Problem]:
    """The problems of a part, with paths from the whole."""
    return [Problem(f"{prefix}.{p.field}", p.message) for p in problems]


def describe(problems: Sequence[Problem]) -> str:
    """One line naming every problem, for an exception a caller's bug raises."""
    return "; ".join(f"{p.field}: {p.message}" for p in problems)
