"""Orders as their response models render them (gateway/routes/orders/models.py)."""

from __future__ import annotations

from typing import Any

from gateway.routes.catalog.pricing import lines_view
from persistence import orders as pg_orders
from services.orders.reads import OrderDetails


def ticket_view(ticket: pg_orders.OrderTicket) -> dict[str, Any]:
    status = "valid" if ticket.live and not ticket.revoked else "revoked"
    return {
        "ticket_id": ticket.ticket_id, "event_id": ticket.event_id, "ticket_type": ticket.ticket_type,
        "seat_id": ticket.seat_id, "unit": ticket.unit, "status": status, "qr": ticket.payload,
    }  # fmt: skip


def payment_view(attempt: pg_orders.AttemptRecord | None) -> dict[str, Any] | None:
    if attempt is None:
        return None
    return {"id": attempt.attempt_id, "provider": attempt.provider, "status": attempt.status,
            "confirm_url": attempt.confirm_url}  # fmt: skip


def refund_view(refund: pg_orders.RefundRecord) -> dict[str, Any]:
    return {
        "refund_id": refund.refund_id, "amount_minor": refund.amount_minor, "currency": refund.currency,
        "reason": refund.reason, "ticket_ids": list(refund.ticket_ids), "status": refund.status,
        "created_at": refund.created_at,
    }  # fmt: skip


def order_view(
    order: pg_orders.OrderRecord,
    payment: pg_orders.AttemptRecord | None = None,
    tickets: tuple[pg_orders.OrderTicket, ...] = (),
    refunds: tuple[pg_orders.RefundRecord, ...] = (),
) -> dict[str, Any]:
    return {
        "order_id": order.order_id, "event_id": order.event_id, "hold_id": order.hold_id,
        "status": order.status.value, "reason": order.reason,
        "total": {"amount_minor": order.total_minor, "currency": order.currency},
        "lines": lines_view(order.quote), "buyer": {"email": order.buyer_email, "name": order.buyer_name},
        "promo_code": order.quote.promo_code, "created_at": order.created_at, "expires_at": order.expires_at,
        "paid_at": order.paid_at, "payment": payment_view(payment),
        "tickets": [ticket_view(t) for t in tickets], "refunds": [refund_view(r) for r in refunds],
    }  # fmt: skip


def details_view(details: OrderDetails) -> dict[str, Any]:
    return order_view(details.order, details.payment, details.tickets, details.refunds)
