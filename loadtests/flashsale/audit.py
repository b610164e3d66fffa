"""The audit after a sale, from the stores' own rows, never from the platform's answers (pure).

The facts come from loadtests/flashsale/truth.py: Postgres' live tickets and sales, the inventory store's view
(Redis for the engine and the redis-lua baseline, the baseline's own tables for the postgres baseline), the
availability endpoint's answer, and the sales the platform acknowledged to buyers. Definitions:

- oversold: seats with more than one live ticket, GA units sold more than once or outside 1..capacity, and GA
  tickets beyond a type's capacity. Must be 0.
- lost_acknowledged: acknowledged sales (a 201 confirm) that Postgres lacks, or holds under another hold or with
  other tickets. Must be 0.
- sold_unconfirmed: live sales of holds that their buyer released (answered 204) or abandoned, or whose confirm
  was refused with a 4xx. Must be 0.
- redis_pg_mismatch (store_pg_mismatch for the postgres baseline, which has no Redis): seats the store shows
  available though Postgres sold them, seats it shows taken that are neither sold nor held, a seated sold count
  that differs from Postgres', and per GA type |store sold - Postgres sold| plus any available + held + sold that
  does not add up to capacity. endpoint_pg_mismatch: the same against the availability endpoint.
- orphaned_holds: seats and units still held once every hold should have ended (the audit first waits the
  event's hold TTL for abandoned and unconfirmed holds to expire), minus those held for open orders
  (``--checkout``: a checkout keeps its hold for the order's payment window, and an order its buyer gave up on,
  after 503s, say, stays open until that window ends and its expiry releases the hold).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.flashsale.samples import AckedSale


@dataclass(frozen=True)
class LiveTicket:
    sale_id: str
    hold_id: str
    ticket_type: str
    seat_id: str | None
    unit: int | None


@dataclass(frozen=True)
class Counts:
    capacity: int
    available: int
    held: int
    sold: int


@dataclass(frozen=True)
class InventoryView:
    """Availability as one source shows it: bit i of ``bitmap`` (MSB first) set when seat i is available."""

    bitmap: bytes
    seated: Counts | None
    ga: Mapping[str, Counts]


@dataclass(frozen=True)
class Facts:
    seat_ids: Sequence[str]
    ga_capacity: Mapping[str, int]
    tickets: Sequence[LiveTicket]
    acked: Sequence[AckedSale]
    store: InventoryView | None
    endpoint: InventoryView | None
    store_is_redis: bool
    released_hold_ids: Sequence[str] = ()
    abandoned_hold_ids: Sequence[str] = ()
    refused_hold_ids: Sequence[str] = ()
    held_for_open_orders: int = 0  # units of the holds of orders still pending payment (--checkout)


def audit(facts: Facts) -> dict[str, Any]:
    sold_seats = Counter(t.seat_id for t in facts.tickets if t.seat_id is not None)
    ga_units = Counter((t.ticket_type, t.unit) for t in facts.tickets if t.unit is not None)
    ga_sold = Counter(t.ticket_type for t in facts.tickets if t.unit is not None)
    oversold_detail = {
        "seats_sold_twice": sum(1 for n in sold_seats.values() if n > 1),
        "ga_units_sold_twice": sum(1 for n in ga_units.values() if n > 1),
        "ga_units_out_of_range": sum(
            1 for (code, unit) in ga_units if not 1 <= (unit or 0) <= facts.ga_capacity.get(code, 0)
        ),
        "ga_over_capacity": sum(max(0, n - facts.ga_capacity.get(code, 0)) for code, n in ga_sold.items()),
    }
    store = _mismatch(facts.store, facts, set(sold_seats), ga_sold)
    endpoint = _mismatch(facts.endpoint, facts, set(sold_seats), ga_sold)
    return {
        "sold_seats_pg": len(sold_seats),
        "sold_ga_pg": sum(ga_sold.values()),
        "sold_ga_pg_by_type": dict(ga_sold),
        "oversold": sum(oversold_detail.values()),
        "oversold_detail": oversold_detail,
        "lost_acknowledged": lost_acknowledged(facts.acked, facts.tickets),
        "sold_unconfirmed": len({t.hold_id for t in facts.tickets} & _unconfirmed(facts)),
        "acknowledged_sales": len(facts.acked),
        "redis_pg_mismatch": store if facts.store_is_redis else None,
        "store_pg_mismatch": store,
        "endpoint_pg_mismatch": endpoint,
        "orphaned_holds": orphaned(facts.store, facts.held_for_open_orders),
        "orphaned_holds_endpoint": orphaned(facts.endpoint, facts.held_for_open_orders),
        "held_for_open_orders": facts.held_for_open_orders,
    }


def _unconfirmed(facts: Facts) -> set[str]:
    return set(facts.released_hold_ids) | set(facts.abandoned_hold_ids) | set(facts.refused_hold_ids)


def lost_acknowledged(acked: Iterable[AckedSale], tickets: Iterable[LiveTicket]) -> int:
    in_pg: dict[str, set[tuple[str, str, str | None, int | None]]] = {}
    for t in tickets:
        in_pg.setdefault(t.sale_id, set()).add((t.hold_id, t.ticket_type, t.seat_id, t.unit))
    return sum(
        1 for sale in acked
        if in_pg.get(sale.sale_id) != {(sale.hold_id, t.ticket_type, t.seat_id, t.unit) for t in sale.tickets}
    )


def _mismatch(view: InventoryView | None, facts: Facts, sold: set[str], ga_sold: Counter[str]) -> int | None:
    if view is None:
        return None
    mismatched = 0
    if facts.seat_ids:
        free = available_seats(view.bitmap, len(facts.seat_ids))
        available_but_sold = sum(1 for i, seat in enumerate(facts.seat_ids) if i in free and seat in sold)
        taken_not_sold = sum(1 for i, seat in enumerate(facts.seat_ids) if i not in free and seat not in sold)
        held = view.seated.held if view.seated else 0
        seated_sold = view.seated.sold if view.seated else 0
        mismatched += available_but_sold + max(0, taken_not_sold - held) + abs(seated_sold - len(sold))
    for code, capacity in facts.ga_capacity.items():
        counts = view.ga.get(code)
        if counts is None:
            mismatched += 1
            continue
        mismatched += abs(counts.sold - ga_sold.get(code, 0))
        mismatched += abs(counts.available + counts.held + counts.sold - capacity)
    return mismatched


def orphaned(view: InventoryView | None, held_for_open_orders: int) -> int | None:
    """Units held beyond those the open orders' holds keep; None for no view."""
    units = held(view)
    return None if units is None else max(0, units - held_for_open_orders)


def held(view: InventoryView | None) -> int | None:
    """Seats and GA units the view shows held; None for no view."""
    if view is None:
        return None
    return (view.seated.held if view.seated else 0) + sum(c.held for c in view.ga.values())


def available_seats(bitmap: bytes, seats: int) -> set[int]:
    return {i for i in range(min(seats, len(bitmap) * 8)) if bitmap[i >> 3] & (0x80 >> (i & 7))}
