"""Checkout's request and response models (docs/api.md "Checkout, payments, tickets")."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints

from engine.orders import OrderStatus
from gateway.fields import MoneyOut
from gateway.parsing import RequestModel
from gateway.rendering import Timestamp
from gateway.routes.catalog.pricing_models import PriceCode, QuoteLineOut
from persistence import orders as pg_orders
from services.orders.refunds import refund_reason_chars_max, refund_tickets_max

# one @ between non-empty parts without spaces or control characters (the same in JSON Schema's and Python's
# regular expressions: no \s, whose meaning differs between them)
Email = Annotated[str, StringConstraints(min_length=3, max_length=254, pattern=r"^[^@\x00-\x20]+@[^@\x00-\x20]+$")]
OrderStatusName = Literal[
    "pending_payment", "paid", "partially_refunded", "refunded", "expired", "failed", "cancelled"
]
BuyerName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]


class BuyerIn(RequestModel):
    email: Email
    name: BuyerName


class CheckoutCreate(RequestModel):
    buyer: BuyerIn
    promo_code: PriceCode | None = None


TicketId = Annotated[str, StringConstraints(pattern=r"^tkt_[0-9a-f]{52}_[1-9][0-9]{0,2}$")]
RefundReason = Annotated[str, StringConstraints(min_length=1, max_length=refund_reason_chars_max,
                                                pattern=r"^[^\x00-\x1f\x7f]+$")]


class RefundCreate(RequestModel):
    ticket_ids: list[TicketId] | None = Field(
        default=None, min_length=1, max_length=refund_tickets_max,
        description="the tickets to refund; every ticket not refunded yet when absent",
    )
    reason: RefundReason


class BuyerOut(BaseModel):
    email: str
    name: str


class PaymentOut(BaseModel):
    id: str
    provider: str
    status: str = Field(description="the payment attempt as the provider last told it: creating, requires_payment, "
                        "processing, authorized, captured, refunded, failed or canceled")
    confirm_url: str | None = Field(description="where the buyer's card goes (the provider's page or API)")


class TicketOut(BaseModel):
    ticket_id: str
    event_id: str
    ticket_type: str
    seat_id: str | None = None
    unit: int | None = None
    status: Literal["valid", "revoked", "used"]
    qr: str = Field(description="the signed QR payload (verify offline with GET /v1/ticket-keys)")


class RefundOut(BaseModel):
    refund_id: str
    amount_minor: int
    currency: str
    reason: str
    ticket_ids: list[str]
    status: Literal["owed", "done"]
    created_at: Timestamp


class OrderOut(BaseModel):
    order_id: str
    event_id: str
    hold_id: str
    status: OrderStatusName
    reason: str | None = Field(default=None, description="why the order ended where it did (expired, refunded ...)")
    total: MoneyOut
    lines: list[QuoteLineOut]
    buyer: BuyerOut
    promo_code: str | None = None
    created_at: Timestamp
    expires_at: Timestamp = Field(description="the end of the payment window: unpaid by then, the order expires")
    paid_at: Timestamp | None = None
    payment: PaymentOut | None = Field(default=None, description="none for a free order")
    tickets: list[TicketOut] = Field(default_factory=list, description="once issued")
    refunds: list[RefundOut] = Field(default_factory=list)


class OrderPageOut(BaseModel):
    orders: list[OrderOut]
    next_cursor: str | None


class OrdersQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str | None = Field(default=None, pattern=r"^evt_[0-9a-f]{32}$")
    status: OrderStatusName | None = None
    cursor: str | None = Field(default=None, pattern=r"^ord_[0-9a-f]{52}$", description="next_cursor of a page")
    limit: int = Field(default=50, ge=1, le=pg_orders.orders_per_page_max)


class WebhookReceivedOut(BaseModel):
    received: bool
    applied: bool = Field(description="false: a redelivery or replay of an event already applied, or not ours")


class TicketListOut(RootModel[list[TicketOut]]):
    """The order's tickets, as a JSON array."""


assert set(get_args(OrderStatusName)) == {s.value for s in OrderStatus}, "the API's statuses are the engine's"
