"""Id formats the core derives from, so a hold names its event and its sale without a lookup.

The shell draws the random parts; the core only derives. A hold id embeds its event's id, so the gateway routes
``/v1/holds/{hold_id}`` to the owning inventory without a database read.
"""

from __future__ import annotations

import re

EVENT_PREFIX = "evt_"
HOLD_PREFIX = "hld_"
SALE_PREFIX = "sal_"
TICKET_PREFIX = "tkt_"
event_hex_chars = 32
hold_token_hex_chars = 20

_EVENT_RE = re.compile(r"evt_[0-9a-f]{32}")
_HOLD_RE = re.compile(r"hld_([0-9a-f]{32})([0-9a-f]{20})")


def is_event_id(value: str) -> bool:
    return _EVENT_RE.fullmatch(value) is not None


def hold_id_for(event_id: str, token_hex: str) -> str:
    if not is_event_id(event_id) or re.fullmatch(r"[0-9a-f]{20}", token_hex) is None:
        raise ValueError("hold ids are built from an event id and 20 lowercase hex characters")
    return HOLD_PREFIX + event_id[len(EVENT_PREFIX) :] + token_hex


def event_id_of_hold(hold_id: str) -> str | None:
    """The event a hold id belongs to, or None when the string is not a hold id."""
    match = _HOLD_RE.fullmatch(hold_id)
    return EVENT_PREFIX + match.group(1) if match else None


def sale_id_of_hold(hold_id: str) -> str:
    """One hold makes at most one sale, so the sale id is the hold id under another prefix."""
    return SALE_PREFIX + hold_id[len(HOLD_PREFIX) :]


def ticket_id_of_hold(hold_id: str, number: int) -> str:
    return f"{TICKET_PREFIX}{hold_id[len(HOLD_PREFIX):]}_{number}"


ORDER_PREFIX = "ord_"
PAYMENT_PREFIX = "pay_"
REFUND_PREFIX = "ref_"
_ORDER_RE = re.compile(r"ord_([0-9a-f]{52})")
_TICKET_ID_RE = re.compile(r"tkt_([0-9a-f]{32})[0-9a-f]{20}_[1-9][0-9]{0,2}")


def order_id_of_hold(hold_id: str) -> str:
    """One hold is checked out into at most one order, so the order id is the hold id under another prefix (a
    second checkout of the hold finds its order by id, and the order names its event and its sale)."""
    return ORDER_PREFIX + hold_id[len(HOLD_PREFIX) :]


def is_order_id(value: str) -> bool:
    return _ORDER_RE.fullmatch(value) is not None


def hold_id_of_order(order_id: str) -> str:
    return HOLD_PREFIX + order_id[len(ORDER_PREFIX) :]


def payment_attempt_id(order_id: str, number: int = 1) -> str:
    """The order's payment attempts, numbered; the id is also the provider's idempotency key for the intent."""
    return f"{PAYMENT_PREFIX}{order_id[len(ORDER_PREFIX):]}_{number}"


def event_id_of_ticket(ticket_id: str) -> str | None:
    match = _TICKET_ID_RE.fullmatch(ticket_id)
    return EVENT_PREFIX + match.group(1) if match else None


VENUE_PREFIX = "ven_"
LAYOUT_PREFIX = "lay_"
venue_hex_chars = 32
layout_hex_chars = 32
_VENUE_RE = re.compile(r"ven_[0-9a-f]{32}")
_LAYOUT_RE = re.compile(r"lay_[0-9a-f]{32}")


def is_venue_id(value: str) -> bool:
    return _VENUE_RE.fullmatch(value) is not None


def is_layout_id(value: str) -> bool:
    return _LAYOUT_RE.fullmatch(value) is not None
