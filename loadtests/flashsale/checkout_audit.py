"""The audit of a `--checkout` sale, from Postgres' rows and the payment simulator's counters (pure).

The facts come from loadtests/flashsale/checkout_truth.py once every hold has ended and the outbox has drained.
Each count below must be 0; checkout_mismatch is their sum (report.audit_passed requires it):

- paid_without_tickets: orders paid whose tickets were never issued (alf.io #1421).
- tickets_without_payment: orders with tickets issued that are not paid (no refund is asked in a sale).
- paid_without_sale / sales_without_paid_order: a paid order has exactly one live sale of the event (its
  order_ref is the order id) and a live sale belongs to a paid order; a second sale of one order counts too.
- captures_unmatched: |captures at the simulator - orders paid - orders refunded unasked| (a payment that
  arrived after its hold was lost is captured, then refunded: pretix #74's case, handled).
- refunds_unmatched: |refunds at the simulator - orders refunded|.
- ledger_unbalanced: ledger transactions of the org whose entries do not sum to 0 per currency.
- capture_mismatch: paid or refunded orders whose capture (provider clearing) differs from the order's total.
- outbox_undone: outbox rows of the event's orders still owed (a paid order's tickets, a refund).
- no_paid_orders: 1 when no order was paid with its tickets: such a run proves nothing of checkout.

Figures: paid_per_s = orders paid with tickets / (last tickets_issued_at - first card posted), wall clock;
card_to_tickets_ms: per order paid with the always-succeeding card and issued its tickets, from the buyer posting
its card to tickets_issued_at in Postgres (nearest rank, as report.py), the polling's interval adding nothing;
slow_card_to_tickets_ms the same for the slow card (the simulator settles it after 5 s by design).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.flashsale.samples import CardPosted
from paysim.cards import SLOW, SUCCEEDS

PAID = "paid"
REFUNDED = "refunded"
FAILED = "failed"


@dataclass(frozen=True)
class OrderRow:
    order_id: str
    status: str
    reason: str | None
    total_minor: int
    tickets_issued_at: float | None  # epoch seconds


@dataclass(frozen=True)
class CheckoutFacts:
    cards: Sequence[CardPosted]
    orders: Sequence[OrderRow]
    live_sale_orders: Sequence[str]  # order_ref of every live sale of the event
    captures: int  # at the simulator, during the sale
    refunds: int
    ledger_unbalanced: int
    capture_mismatch: int
    outbox_undone: int


def audit_checkout(facts: CheckoutFacts) -> dict[str, Any]:
    paid = {o.order_id for o in facts.orders if o.status == PAID}
    refunded = {o.order_id for o in facts.orders if o.status == REFUNDED}
    issued = {o.order_id for o in facts.orders if o.tickets_issued_at is not None}
    sales = Counter(facts.live_sale_orders)
    counts = {
        "paid_without_tickets": len(paid - issued),
        "tickets_without_payment": len(issued - paid),
        "paid_without_sale": len(paid - set(sales)),
        "sales_without_paid_order": sum(n for order, n in sales.items() if order not in paid)
        + sum(n - 1 for order, n in sales.items() if order in paid),
        "captures_unmatched": abs(facts.captures - len(paid) - len(refunded)),
        "refunds_unmatched": abs(facts.refunds - len(refunded)),
        "ledger_unbalanced": facts.ledger_unbalanced,
        "capture_mismatch": facts.capture_mismatch,
        "outbox_undone": facts.outbox_undone,
        "no_paid_orders": int(not paid & issued),
    }
    return {
        "checkout_mismatch": sum(counts.values()),
        "counts": counts,
        "orders": len(facts.orders),
        "orders_by_status": dict(Counter(o.status for o in facts.orders)),
        "reasons": dict(Counter(o.reason for o in facts.orders if o.reason)),
        "cards_posted": len(facts.cards),
        "cards_by_number": dict(Counter(c.card for c in facts.cards)),
        "paid_orders": len(paid & issued),
        "captures": facts.captures,
        "refunds": facts.refunds,
        "paid_per_s": _paid_per_s(facts, paid & issued),
        "card_to_tickets_ms": _card_to_tickets_ms(facts, paid & issued, SUCCEEDS),
        "slow_card_to_tickets_ms": _card_to_tickets_ms(facts, paid & issued, SLOW),
    }


def _paid_per_s(facts: CheckoutFacts, paid: set[str]) -> float | None:
    issued = [o.tickets_issued_at for o in facts.orders if o.order_id in paid and o.tickets_issued_at is not None]
    if not issued or not facts.cards:
        return None
    window_s = max(issued) - min(c.posted_at for c in facts.cards)
    return round(len(issued) / window_s, 1) if window_s > 0 else None


def _card_to_tickets_ms(facts: CheckoutFacts, paid: set[str], card: str) -> dict[str, float | None]:
    posted = {c.order_id: c.posted_at for c in facts.cards if c.card == card}
    latencies = sorted(
        (o.tickets_issued_at - posted[o.order_id]) * 1000.0
        for o in facts.orders
        if o.order_id in paid and o.order_id in posted and o.tickets_issued_at is not None
    )
    return {name: _nearest_rank(latencies, q) for name, q in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}


def _nearest_rank(ordered: list[float], percent: float) -> float | None:
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)
