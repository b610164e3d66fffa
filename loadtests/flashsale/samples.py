"""What one flash-sale run records: a sample per HTTP request, the acknowledged sales, the actor kills.

Times are seconds since the sale's start (the first buyer's scheduled arrival), on the driver's monotonic clock.
A request's latency runs from when it was *due* (its scheduled send time), not from when it was sent, so a
generator that falls behind its schedule shows up as latency instead of hiding it (open loop).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

HOLD = "hold"
CONFIRM = "confirm"
RELEASE = "release"
AVAILABILITY = "availability"
CHECKOUT = "checkout"  # --checkout: POST /v1/holds/{id}/checkout
PAY = "pay"  # the card, posted to the order's confirm_url (the payment simulator)
ORDER = "order"  # GET /v1/orders/{id}, polled until the tickets are issued
KINDS = (HOLD, CONFIRM, RELEASE, AVAILABILITY, CHECKOUT, PAY, ORDER)

NO_ANSWER = 0  # the status of a request that got no HTTP answer (timeout, connection refused or reset)


class Sample(NamedTuple):
    kind: str  # one of KINDS
    due_s: float  # when the request was scheduled to go out
    done_s: float  # when its answer (or its failure) arrived
    status: int  # HTTP status, or NO_ANSWER
    units: int  # seats or GA units asked for (hold, release) or sold (a 201 confirm); 0 otherwise

    @property
    def latency_ms(self) -> float:
        return (self.done_s - self.due_s) * 1000.0


class AckedTicket(NamedTuple):
    ticket_id: str
    ticket_type: str
    seat_id: str | None
    unit: int | None


class CardPosted(NamedTuple):
    """An order a buyer posted a card for (--checkout): the card's wall-clock time (time.time(), the clock
    Postgres stamps tickets_issued_at with on this machine) starts its latency to tickets issued."""

    order_id: str
    hold_id: str
    card: str
    posted_at: float


class AckedSale(NamedTuple):
    """A confirm the platform answered 201: it promised this sale is durable."""

    sale_id: str
    hold_id: str
    tickets: tuple[AckedTicket, ...]


@dataclass
class GeneratorOutcome:
    """What one generator process brings back."""

    samples: list[Sample] = field(default_factory=list)
    sales: list[AckedSale] = field(default_factory=list)
    buyers_started: int = 0
    buyers_dropped: int = 0  # arrivals refused because the process already had journeys_in_flight_max running
    # buyers who left because their seat map showed nothing left for them (before a first try, or after a 409)
    buyers_saw_sold_out: int = 0
    abandoned_hold_ids: list[str] = field(default_factory=list)
    released_hold_ids: list[str] = field(default_factory=list)  # releases answered 204
    refused_hold_ids: list[str] = field(default_factory=list)  # confirms answered 4xx (expired, say): no sale
    journeys_cut_short: int = 0  # journeys still running drain_s_max after the last arrival, cancelled
    # best-available 409s whose inventory said seats were left in the zones asked (fewer than asked): refusals
    # before the sell-out by the inventory's own count, whatever order the answers arrived in
    best_refused_seats_left: int = 0
    unreadable_answers: int = 0  # 2xx answers whose body could not be read (a 201 hold or confirm, availability)
    cards: list[CardPosted] = field(default_factory=list)  # --checkout: every order a card was posted for
    orders_failed: list[str] = field(default_factory=list)  # seen failed (a declined card), expired or cancelled
    orders_refunded: list[str] = field(default_factory=list)  # seen refunded unasked (paid after the hold was lost)
    orders_unsettled: int = 0  # orders neither paid with tickets nor failed when the buyer stopped waiting
    unavailable_without_retry_after: int = 0  # the platform's 503s that did not say when to retry

    def merge(self, other: GeneratorOutcome) -> None:
        self.samples += other.samples
        self.sales += other.sales
        self.buyers_started += other.buyers_started
        self.buyers_dropped += other.buyers_dropped
        self.buyers_saw_sold_out += other.buyers_saw_sold_out
        self.abandoned_hold_ids += other.abandoned_hold_ids
        self.released_hold_ids += other.released_hold_ids
        self.refused_hold_ids += other.refused_hold_ids
        self.unreadable_answers += other.unreadable_answers
        self.journeys_cut_short += other.journeys_cut_short
        self.best_refused_seats_left += other.best_refused_seats_left
        self.cards += other.cards
        self.orders_failed += other.orders_failed
        self.orders_refunded += other.orders_refunded
        self.orders_unsettled += other.orders_unsettled
        self.unavailable_without_retry_after += other.unavailable_without_retry_after
