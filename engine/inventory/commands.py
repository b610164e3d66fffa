"""Commands the inventory core accepts and the results it returns.

Every command carries a ``cmd_id``; the core answers a repeated id with the first result and changes nothing.
Results are plain frozen values so the shell can ship them across process boundaries unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.audit_chain import check_actor
from engine.inventory.best_available import BestRequest
from engine.refusals import Refusal

_ACTOR_REF_SEP = ":"


def actor_ref(actor_type: str, actor_id: str) -> str:
    """One string for who acted, as a Confirm carries it across the wire: "<type>:<id>"."""
    return f"{actor_type}{_ACTOR_REF_SEP}{actor_id}"


def split_actor_ref(ref: str) -> tuple[str, str]:
    """(type, id) of an ``actor_ref``; ids may contain the separator, types never do."""
    actor_type, _, actor_id = ref.partition(_ACTOR_REF_SEP)
    return actor_type, actor_id


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold either ``seats`` (seat ids), ``quantity`` units of GA ``ticket_type``, or the seats the inventory picks
    by ``best_available`` (engine/inventory/best_available.py); exactly one of the three."""

    cmd_id: str
    hold_id: str
    buyer_id: str
    seats: tuple[str, ...] = ()
    ticket_type: str | None = None
    quantity: int = 0
    ttl_s: int | None = None
    best_available: BestRequest | None = None


@dataclass(frozen=True, slots=True)
class Release:
    cmd_id: str
    hold_id: str


@dataclass(frozen=True, slots=True)
class Confirm:
    """``by`` (an ``actor_ref``: "key:<key id>", "user:<user id>") and ``ip`` say who confirmed and from where.

    The core only carries them: the shell names them in the audit entry of the sale this command makes, in the
    sale's own group commit. A retried confirm (the same ``cmd_id``) makes no sale, so it leaves no second entry.
    A malformed actor is a caller's bug, not a buyer's refusal: it raises where the command is built, never
    later in a group commit that would then fail for the whole batch.
    """

    cmd_id: str
    hold_id: str
    order_ref: str
    by: str
    ip: str | None

    def __post_init__(self) -> None:
        check_actor(*split_actor_ref(self.by), self.ip)


@dataclass(frozen=True, slots=True)
class CancelSale:
    cmd_id: str
    hold_id: str


@dataclass(frozen=True, slots=True)
class CancelTickets:
    """Give back some tickets of a committed sale (checkout's refund of part of an order): their seats and GA units
    are free at once. ``ticket_ids``: 1..tickets_per_cancel_max distinct tickets of the sale (engine/limits.py).
    A ticket already given back is skipped, so a retry, under any cmd_id, changes nothing; giving back the sale's
    last ticket ends the sale as CancelSale does. Answers the sale with the tickets it still has (none: it ended)."""

    cmd_id: str
    hold_id: str
    ticket_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LookupHold:
    """A read: answers the hold (or its sale) as it stands; never recorded, never changes anything."""

    cmd_id: str
    hold_id: str


@dataclass(frozen=True, slots=True)
class ExtendHold:
    """Keep a live hold for a payment window (checkout, when it makes an order from the hold): its expiry becomes
    max(expires_at, now + ``ttl_s``), so an extension never shortens a hold. ``ttl_s`` is 1..payment_window_s_max
    (engine/limits.py), not the event's hold_ttl_s. Answers the hold with its new expires_at."""

    cmd_id: str
    hold_id: str
    ttl_s: int


@dataclass(frozen=True, slots=True)
class SetCapacity:
    """Change a GA ticket type's capacity on a live event (catalog lifecycle): grow any time, shrink only down to
    held + sold. ``by``/``ip`` as on ``Confirm``: the shell audits the change, in its fenced commit, under them.
    ``hold_id`` is empty: the command names no hold (it is there so every command has one)."""

    cmd_id: str
    ticket_type: str
    capacity: int
    by: str
    ip: str | None
    hold_id: str = ""

    def __post_init__(self) -> None:
        check_actor(*split_actor_ref(self.by), self.ip)


Command = Hold | Release | Confirm | CancelSale | LookupHold | SetCapacity | ExtendHold | CancelTickets


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
    """A refusal of one command; the batch goes on. Its code is a member of the one refusal table."""

    code: Refusal
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.code, Refusal):  # a code off the wire: outside the closed set it raises here
            object.__setattr__(self, "code", Refusal(self.code))


Result = Ok | Rejected
