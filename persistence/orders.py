"""Orders' store: the order rows, their payment attempts, the provider events applied to them, their refunds and
their tickets' signed codes (persistence/migrations/011_orders.sql), all in the caller's unit of work.

An order's id derives from its hold (``engine.ids.order_id_of_hold``), so ``insert_order`` is idempotent: a
second checkout of one hold finds the first order instead of making another. A status is moved only under the
row's lock (``get_order(for_update=True)``), so two webhooks of one order are applied one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from engine.catalog.pricing import Line, Quote
from engine.orders import OrderStatus
from persistence.tenancy import OrgDb

orders_per_page_max = 200
expiring_per_sweep_max = 500

_ORDER_COLUMNS = (
    "id, event_id, hold_id, buyer_id, buyer_email, buyer_name, status, reason, currency, total_minor, quote,"
    " promo_code, created_at, expires_at, paid_at, tickets_issued_at"
)
_ATTEMPT_COLUMNS = (
    "id, order_id, provider, intent_id, confirm_url, status, failure_code, amount_minor, currency, captured_minor,"
    " refunded_minor"
)


# ---- the quote, as stored --------------------------------------------------------------------------------------


def quote_json(quote: Quote) -> str:
    lines = [
        {"kind": x.kind, "code": x.code, "description": x.description, "quantity": x.quantity,
         "amount_minor": x.amount_minor, "counted": x.counted, "ticket_type": x.ticket_type}
        for x in quote.lines
    ]
    return json.dumps({
        "currency": quote.currency, "lines": lines, "subtotal_minor": quote.subtotal_minor,
        "discount_minor": quote.discount_minor, "fees_minor": quote.fees_minor, "tax_minor": quote.tax_minor,
        "total_minor": quote.total_minor, "promo_code": quote.promo_code,
        "price_list_version": quote.price_list_version,
    })


def quote_of_json(raw: str | dict[str, Any]) -> Quote:
    data = json.loads(raw) if isinstance(raw, str) else raw
    lines = tuple(Line(**line) for line in data["lines"])
    return Quote(
        data["currency"], lines, data["subtotal_minor"], data["discount_minor"], data["fees_minor"],
        data["tax_minor"], data["total_minor"], data["promo_code"], data["price_list_version"],
    )


# ---- orders ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewOrder:
    order_id: str
    event_id: str
    hold_id: str
    buyer_id: str
    buyer_email: str
    buyer_name: str
    quote: Quote
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class OrderRecord:
    order_id: str
    event_id: str
    hold_id: str
    buyer_id: str
    buyer_email: str
    buyer_name: str
    status: OrderStatus
    reason: str | None
    quote: Quote
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    tickets_issued_at: datetime | None

    @property
    def currency(self) -> str:
        return self.quote.currency

    @property
    def total_minor(self) -> int:
        return self.quote.total_minor


def _order(row: asyncpg.Record) -> OrderRecord:
    return OrderRecord(
        row["id"], row["event_id"], row["hold_id"], row["buyer_id"], row["buyer_email"], row["buyer_name"],
        OrderStatus(row["status"]), row["reason"], quote_of_json(row["quote"]), row["created_at"],
        row["expires_at"], row["paid_at"], row["tickets_issued_at"],
    )


async def insert_order(db: OrgDb, new: NewOrder) -> tuple[OrderRecord, bool]:
    """The order of ``new.hold_id``: made now (True), or the one its hold already has (False)."""
    row = await db.conn.fetchrow(
        "INSERT INTO orders (org_id, id, event_id, hold_id, buyer_id, buyer_email, buyer_name, currency,"
        " total_minor, quote, promo_code, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12)"
        f" ON CONFLICT (hold_id) DO NOTHING RETURNING {_ORDER_COLUMNS}",
        db.org_id, new.order_id, new.event_id, new.hold_id, new.buyer_id, new.buyer_email, new.buyer_name,
        new.quote.currency, new.quote.total_minor, quote_json(new.quote), new.quote.promo_code, new.expires_at,
    )
    if row is not None:
        return _order(row), True
    found = await get_order(db, new.order_id, for_update=True)
    if found is None:  # the hold's order is another org's: ids are random, so only a forged id gets here
        raise LookupError(f"hold {new.hold_id} has an order outside this organization")
    return found, False


async def get_order(db: OrgDb, order_id: str, *, for_update: bool = False) -> OrderRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await db.conn.fetchrow(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE org_id = $1 AND id = $2{lock}", db.org_id, order_id
    )
    return _order(row) if row is not None else None


async def move_order(
    db: OrgDb, order_id: str, status: OrderStatus, reason: str | None, *, paid_at: datetime | None = None
) -> None:
    """Set the order's status (and its reason when it ends); ``paid_at`` when the move is its payment."""
    await db.conn.execute(
        "UPDATE orders SET status = $3, reason = COALESCE($4, reason), paid_at = COALESCE($5, paid_at),"
        " updated_at = now() WHERE org_id = $1 AND id = $2",
        db.org_id, order_id, status.value, reason, paid_at,
    )


async def mark_tickets_issued(db: OrgDb, order_id: str, at: datetime) -> None:
    await db.conn.execute(
        "UPDATE orders SET tickets_issued_at = $3, updated_at = now()"
        " WHERE org_id = $1 AND id = $2 AND tickets_issued_at IS NULL",
        db.org_id, order_id, at,
    )


@dataclass(frozen=True, slots=True)
class OrderPage:
    orders: tuple[OrderRecord, ...]
    next_cursor: str | None  # the last order id of a full page: pass it back for the next


async def list_orders(
    db: OrgDb, *, event_id: str | None, status: OrderStatus | None, after_id: str | None, limit: int
) -> OrderPage:
    if not 1 <= limit <= orders_per_page_max:
        raise ValueError(f"a page holds 1..{orders_per_page_max} orders")
    rows = await db.conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE org_id = $1"
        " AND ($2::text IS NULL OR event_id = $2) AND ($3::text IS NULL OR status = $3)"
        " AND ($4::text IS NULL OR id > $4) ORDER BY id LIMIT $5",
        db.org_id, event_id, status.value if status else None, after_id, limit,
    )
    orders = tuple(_order(row) for row in rows)
    return OrderPage(orders, orders[-1].order_id if len(orders) == limit else None)


async def open_orders_of_event(db: OrgDb, event_id: str, *, after_id: str | None, limit: int
                               ) -> list[OrderRecord]:
    """The event's orders still pending or holding money, by id after ``after_id``: a cancelled event's to end."""
    if not 1 <= limit <= orders_per_page_max:
        raise ValueError(f"a page holds 1..{orders_per_page_max} orders")
    rows = await db.conn.fetch(
        f"SELECT {_ORDER_COLUMNS} FROM orders WHERE org_id = $1 AND event_id = $2"
        " AND status IN ('pending_payment', 'paid', 'partially_refunded') AND ($3::text IS NULL OR id > $3)"
        " ORDER BY id LIMIT $4",
        db.org_id, event_id, after_id, limit,
    )
    return [_order(row) for row in rows]


async def expired_pending(conn: asyncpg.Connection, now: datetime, limit: int = expiring_per_sweep_max
                          ) -> list[tuple[str, str]]:
    """(org id, order id) of pending orders whose payment window has ended, oldest first: the expiry sweep's work,
    read on an unscoped connection (it is every org's)."""
    rows = await conn.fetch(
        "SELECT org_id, id FROM orders WHERE status = 'pending_payment' AND expires_at <= $1"
        " ORDER BY expires_at LIMIT $2",
        now, limit,
    )
    return [(row["org_id"], row["id"]) for row in rows]


# ---- payment attempts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt_id: str
    order_id: str
    provider: str
    intent_id: str | None
    confirm_url: str | None
    status: str  # 'creating' until the provider answered, then an engine.payments.provider.IntentStatus
    failure_code: str | None
    amount_minor: int
    currency: str
    captured_minor: int
    refunded_minor: int


def _attempt(row: asyncpg.Record) -> AttemptRecord:
    return AttemptRecord(*(row[name] for name in (
        "id", "order_id", "provider", "intent_id", "confirm_url", "status", "failure_code", "amount_minor",
        "currency", "captured_minor", "refunded_minor")))


async def insert_attempt(
    db: OrgDb, attempt_id: str, order_id: str, provider: str, amount_minor: int, currency: str
) -> None:
    await db.conn.execute(
        "INSERT INTO payment_attempts (org_id, id, order_id, provider, status, amount_minor, currency)"
        " VALUES ($1, $2, $3, $4, 'creating', $5, $6) ON CONFLICT (id) DO NOTHING",
        db.org_id, attempt_id, order_id, provider, amount_minor, currency,
    )


async def set_attempt(
    db: OrgDb,
    attempt_id: str,
    *,
    status: str,
    intent_id: str | None = None,
    confirm_url: str | None = None,
    failure_code: str | None = None,
    captured_minor: int | None = None,
    refunded_minor: int | None = None,
) -> None:
    await db.conn.execute(
        "UPDATE payment_attempts SET status = $3, intent_id = COALESCE($4, intent_id),"
        " confirm_url = COALESCE($5, confirm_url), failure_code = COALESCE($6, failure_code),"
        " captured_minor = COALESCE($7, captured_minor), refunded_minor = COALESCE($8, refunded_minor),"
        " updated_at = now() WHERE org_id = $1 AND id = $2",
        db.org_id, attempt_id, status, intent_id, confirm_url, failure_code, captured_minor, refunded_minor,
    )


async def touch_attempt(db: OrgDb, attempt_id: str) -> None:
    """The attempt was just looked at (the reconciler asked, and nothing was settled): quiet again from now."""
    await db.conn.execute(
        "UPDATE payment_attempts SET updated_at = now() WHERE org_id = $1 AND id = $2", db.org_id, attempt_id
    )


@dataclass(frozen=True, slots=True)
class Unsettled:
    org_id: str
    order_id: str
    attempt_id: str
    provider: str
    intent_id: str
    status: str


async def unsettled_attempts(
    conn: asyncpg.Connection, statuses: Collection[str], quiet_s: float, limit: int
) -> list[Unsettled]:
    """Attempts in ``statuses`` with an intent, of orders still pending, untouched for ``quiet_s`` (by the
    database's clock, which wrote ``updated_at``), least recently touched first: the reconciler's work, read on an
    unscoped connection (it is every org's). It starts from the pending orders (their partial index), so a sweep
    costs what awaits payment, not every attempt ever made."""
    rows = await conn.fetch(
        "SELECT a.org_id, a.order_id, a.id, a.provider, a.intent_id, a.status FROM orders o"
        " JOIN payment_attempts a ON a.order_id = o.id AND a.org_id = o.org_id"
        " WHERE o.status = 'pending_payment' AND a.intent_id IS NOT NULL"
        " AND a.status = ANY($1::text[]) AND a.updated_at <= now() - make_interval(secs => $2)"
        " ORDER BY a.updated_at LIMIT $3",
        sorted(statuses), quiet_s, limit,
    )
    return [Unsettled(r["org_id"], r["order_id"], r["id"], r["provider"], r["intent_id"], r["status"]) for r in rows]


async def get_attempt(db: OrgDb, attempt_id: str) -> AttemptRecord | None:
    row = await db.conn.fetchrow(
        f"SELECT {_ATTEMPT_COLUMNS} FROM payment_attempts WHERE org_id = $1 AND id = $2", db.org_id, attempt_id
    )
    return _attempt(row) if row is not None else None


async def attempt_of_intent(db: OrgDb, provider: str, intent_id: str) -> AttemptRecord | None:
    row = await db.conn.fetchrow(
        f"SELECT {_ATTEMPT_COLUMNS} FROM payment_attempts WHERE org_id = $1 AND provider = $2 AND intent_id = $3",
        db.org_id, provider, intent_id,
    )
    return _attempt(row) if row is not None else None


async def record_provider_event(
    db: OrgDb, provider: str, event_id: str, event_type: str, intent_id: str, outcome: str
) -> bool:
    """True when this is the first delivery of the event; False: it was applied before (a redelivery, a replay)."""
    inserted = await db.conn.fetchval(
        "INSERT INTO provider_events (org_id, provider, event_id, type, intent_id, outcome)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, event_id) DO NOTHING RETURNING true",
        db.org_id, provider, event_id, event_type, intent_id, outcome,
    )
    return bool(inserted)


# ---- refunds ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundRecord:
    refund_id: str
    order_id: str
    amount_minor: int
    currency: str
    reason: str
    ticket_ids: tuple[str, ...]
    status: str
    created_at: datetime


async def add_refund(
    db: OrgDb, refund_id: str, order_id: str, amount_minor: int, currency: str, reason: str,
    ticket_ids: Sequence[str] = (),
) -> None:
    """Record a refund owed (again: nothing). Its tickets are refunded once each: a ticket already refunded by
    another refund is a unique violation (the caller checked under the order's lock; the schema makes sure)."""
    inserted = await db.conn.fetchval(
        "INSERT INTO order_refunds (org_id, id, order_id, amount_minor, currency, reason, ticket_ids)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING RETURNING true",
        db.org_id, refund_id, order_id, amount_minor, currency, reason, list(ticket_ids),
    )
    if inserted and ticket_ids:
        await db.conn.execute(
            "INSERT INTO order_refund_tickets (org_id, ticket_id, refund_id, order_id)"
            " SELECT $1, t, $2, $3 FROM unnest($4::text[]) AS t",
            db.org_id, refund_id, order_id, list(ticket_ids),
        )


async def get_refund(db: OrgDb, refund_id: str) -> RefundRecord | None:
    row = await db.conn.fetchrow(
        f"SELECT {_REFUND_COLUMNS} FROM order_refunds WHERE org_id = $1 AND id = $2", db.org_id, refund_id
    )
    return _refund(row) if row is not None else None


async def refund_done(db: OrgDb, refund_id: str, provider_refund_id: str | None) -> None:
    await db.conn.execute(
        "UPDATE order_refunds SET status = 'done', done_at = now(), provider_refund_id = $3"
        " WHERE org_id = $1 AND id = $2 AND status = 'owed'",
        db.org_id, refund_id, provider_refund_id,
    )


async def refunds_of(db: OrgDb, order_id: str) -> list[RefundRecord]:
    rows = await db.conn.fetch(
        f"SELECT {_REFUND_COLUMNS} FROM order_refunds WHERE org_id = $1 AND order_id = $2 ORDER BY created_at, id",
        db.org_id, order_id,
    )
    return [_refund(r) for r in rows]


_REFUND_COLUMNS = "id, order_id, amount_minor, currency, reason, ticket_ids, status, created_at"


def _refund(r: asyncpg.Record) -> RefundRecord:
    return RefundRecord(r["id"], r["order_id"], r["amount_minor"], r["currency"], r["reason"], tuple(r["ticket_ids"]),
                        r["status"], r["created_at"])


# ---- tickets and their codes -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderTicket:
    ticket_id: str
    event_id: str
    ticket_type: str
    seat_id: str | None
    unit: int | None
    live: bool  # its sale stands (a refund or cancellation makes it false)
    revoked: bool
    payload: str | None  # its signed QR payload, once issued


async def tickets_of_sale(db: OrgDb, order_id: str, sale_id: str) -> list[OrderTicket]:
    """The tickets the order's sale made, in their order, with their codes and revocations."""
    rows = await db.conn.fetch(
        "SELECT t.id, t.event_id, t.ticket_type, t.seat_id, t.unit, t.status, c.payload,"
        " (r.ticket_id IS NOT NULL) AS revoked"
        " FROM tickets t"
        " LEFT JOIN ticket_codes c ON c.ticket_id = t.id AND c.order_id = $3"
        " LEFT JOIN ticket_revocations r ON r.event_id = t.event_id AND r.ticket_id = t.id"
        " WHERE t.org_id = $1 AND t.sale_id = $2 ORDER BY t.ordinal",
        db.org_id, sale_id, order_id,
    )
    return [OrderTicket(r["id"], r["event_id"], r["ticket_type"], r["seat_id"], r["unit"], r["status"] == "live",
                        r["revoked"], r["payload"]) for r in rows]


async def insert_ticket_codes(db: OrgDb, order_id: str, kid: str, codes: Sequence[tuple[str, str]]) -> None:
    """(ticket id, payload) pairs: each ticket's code, issued once (a retry finds them and adds nothing)."""
    await db.conn.execute(
        "INSERT INTO ticket_codes (org_id, ticket_id, order_id, kid, payload)"
        " SELECT $1, c.ticket_id, $2, $3, c.payload FROM unnest($4::text[], $5::text[]) AS c(ticket_id, payload)"
        " ON CONFLICT (ticket_id) DO NOTHING",
        db.org_id, order_id, kid, [c[0] for c in codes], [c[1] for c in codes],
    )


async def ticket_code(db: OrgDb, ticket_id: str) -> tuple[str, str] | None:
    """(order id, payload) of an issued ticket."""
    row = await db.conn.fetchrow(
        "SELECT order_id, payload FROM ticket_codes WHERE org_id = $1 AND ticket_id = $2", db.org_id, ticket_id
    )
    return (row["order_id"], row["payload"]) if row is not None else None
