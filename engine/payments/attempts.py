"""What the provider's word does to a payment attempt and its order, as rules (pure): which webhook types move an
order, and whether a reported intent status may replace the one recorded.

Deliveries come at least once and in any order (a ``payment.captured`` may arrive after the ``payment.refunded``
that followed it), so an attempt's status only moves forward: along requires_payment -> processing -> authorized
-> captured -> refunded, and never from an ended status (failed, canceled, captured, refunded) back to one that is
still open. The shell (services/orders/payments.py) applies what these say under the order's row lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from engine.orders import OrderEvent
from engine.payments.provider import EventType, IntentStatus

CREATING = "creating"  # an attempt recorded before its intent exists (persistence/orders.py)

# The webhook types that move an order; the others (captured, refunded, canceled) confirm what the platform asked
# for and update the attempt only.
ORDER_EVENTS: Mapping[EventType, OrderEvent] = MappingProxyType({
    EventType.AUTHORIZED: OrderEvent.PAYMENT_SUCCEEDED,
    EventType.FAILED: OrderEvent.PAYMENT_FAILED,
    EventType.CHARGED_BACK: OrderEvent.CHARGEBACK,
})  # fmt: skip

_FORWARD: tuple[str, ...] = (CREATING, IntentStatus.REQUIRES_PAYMENT, IntentStatus.PROCESSING,
                             IntentStatus.AUTHORIZED, IntentStatus.CAPTURED, IntentStatus.REFUNDED)
_RANK: Mapping[str, int] = MappingProxyType({status: rank for rank, status in enumerate(_FORWARD)})
ENDED: frozenset[str] = frozenset({IntentStatus.FAILED, IntentStatus.CANCELED, IntentStatus.CAPTURED,
                                   IntentStatus.REFUNDED})


def order_event_of(event_type: EventType) -> OrderEvent | None:
    """The order event a webhook of ``event_type`` is; None: it updates the attempt only."""
    return ORDER_EVENTS.get(event_type)


def may_replace(recorded: str, reported: IntentStatus) -> bool:
    """Whether an attempt recorded as ``recorded`` takes the provider's ``reported`` status: never backwards along
    the forward path, never from an ended status to an open one (a late delivery of an earlier step)."""
    if recorded in ENDED and reported not in ENDED:
        return False
    if recorded in _RANK and reported in _RANK:
        return _RANK[reported] >= _RANK[recorded]
    return True
