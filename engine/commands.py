"""Commands the inventory core accepts and the results it returns.

Every command carries a ``cmd_id``; the core answers a repeated id with the first result and changes nothing.
Results are plain frozen values so the shell can ship them across process boundaries unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold either ``seats`` (seat ids) or ``quantity`` units of GA ``ticket_type``; never both."""

    cmd_id: str
    hold_id: str
    buyer_id: str
    seats: tuple[str, ...] = ()
    ticket_type: str | None = None
    quantity: int = 0
    ttl_s: int | None = None


@dataclass(frozen=True, slots=True)
class Release:
    cmd_id: str
    hold_id: str


@dataclass(frozen=True, slots=True)
class Confirm:
    cmd_id: str
    hold_id: str
    order_ref: str


@dataclass(frozen=True, slots=True)
class CancelSale:
    cmd_id: str
    hold_id: str


@dataclass(frozen=True, slots=True)
class LookupHold:
    """A read: answers the hold (or its sale) as it stands; never recorded, never changes anything."""

    cmd_id: str
    hold_id: str


Command = Hold | Release | Confirm | CancelSale | LookupHold


@dataclass(frozen=True, slots=True)
class TicketView:
    ticket_id: str
    ticket_type: str
    seat_id: str | None
    unit: int | None


@dataclass(frozen=True, slots=True)
class HoldView:
    hold_id: str
    buyer_id: str
    seats: tuple[str, ...]
    ticket_type: str
    quantity: int
    units: tuple[int, ...]
    expires_at: float
    status: str  # "held" or "sold"


@dataclass(frozen=True, slots=True)
class SaleView:
    sale_id: str
    hold_id: str
    buyer_id: str
    order_ref: str
    tickets: tuple[TicketView, ...]


@dataclass(frozen=True, slots=True)
class Ok:
    value: HoldView | SaleView | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A domain refusal. ``code`` is one of the codes in ``REJECTION_CODES``."""

    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


Result = Ok | Rejected

# The closed set of domain refusals; gateway/errors.py maps each to its HTTP status.
REJECTION_CODES = frozenset(
    {
        "seats_unavailable",
        "insufficient_inventory",
        "unknown_seats",
        "unknown_ticket_type",
        "buyer_limit_exceeded",
        "invalid_hold_request",
        "hold_not_found",
        "hold_expired",
        "invalid_transition",
        "batch_too_large",
        # refusals of the shell around the core (actors/), not of the core itself
        "not_on_sale",
        "persistence_unavailable",
        "inventory_unavailable",
    }
)
