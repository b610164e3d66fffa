"""The reconciler's rules: what a payment attempt stuck pending becomes once the provider has been asked, and how
often and how much the asking goes. Pure: the shell (services/orders/reconciler.py) reads the attempts, asks
``get_intent`` and applies the event decided here through the webhook's own code path.

Outcomes reach the platform by webhook; a webhook lost (the provider gave up redelivering, the platform was down
for longer than its retries) would leave a buyer who paid without tickets until the order expires and the late
success is refunded. So an attempt quiet for ``reconcile_after_s`` is asked about, and settled like its webhook
would have settled it:

- ``authorized``, ``captured``, ``refunded``: the card was accepted -> ``payment_succeeded`` (the fulfilment that
  follows captures; a payment already refunded at the provider is still one the order must answer for, and the
  order machine decides what that means);
- ``failed`` -> ``payment_failed``;
- ``canceled`` -> ``payment_failed`` as well: a canceled intent can never take money, so the order can never be
  paid by it, and failing it now gives its hold and promo use back instead of keeping them until the window
  ends. The platform's own cancel only follows an order's end (expiry, a lost hold, a cancelled event), so an
  order still pending whose intent is canceled was voided on the provider's side; the reconciler is the one to
  notice, since a ``payment.canceled`` webhook moves no order (it normally confirms what the platform asked);
- ``requires_payment``, ``processing``: nothing yet; asked again after another ``reconcile_after_s``.

Each application is recorded as the provider event ``reconcile:<intent>:<status>``, so it has one effect; the
real webhook arriving afterwards is a replay for the order (``payment_succeeded`` on a paid order is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.orders import OrderEvent
from engine.payments.provider import Intent, IntentStatus

reconcile_after_s = 20.0  # how long an attempt stays quiet (no webhook, no ask) before the provider is asked
reconciles_per_sweep_max = 100  # attempts asked about in one sweep; the rest wait for the next, oldest first
reconcile_every_s = 5.0  # between sweeps
reconcile_asks_in_flight_max = 4  # provider calls of one sweep at once (each bounded by the provider client)
RECONCILE_EVENT_PREFIX = "reconcile:"
RECONCILE_TYPE_PREFIX = "reconcile."

# attempts the provider may know more about: an intent exists and no outcome has been recorded
UNSETTLED: frozenset[str] = frozenset({IntentStatus.REQUIRES_PAYMENT, IntentStatus.PROCESSING, IntentStatus.AUTHORIZED})

_SETTLES: dict[IntentStatus, OrderEvent | None] = {
    IntentStatus.REQUIRES_PAYMENT: None,
    IntentStatus.PROCESSING: None,
    IntentStatus.AUTHORIZED: OrderEvent.PAYMENT_SUCCEEDED,
    IntentStatus.CAPTURED: OrderEvent.PAYMENT_SUCCEEDED,
    IntentStatus.REFUNDED: OrderEvent.PAYMENT_SUCCEEDED,
    IntentStatus.FAILED: OrderEvent.PAYMENT_FAILED,
    IntentStatus.CANCELED: OrderEvent.PAYMENT_FAILED,
}
assert set(_SETTLES) == set(IntentStatus), "every provider status is decided"


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """The reconciler's bounds (the module's defaults; tests make them small)."""

    after_s: float = reconcile_after_s
    per_sweep_max: int = reconciles_per_sweep_max
    every_s: float = reconcile_every_s
    asks_in_flight_max: int = reconcile_asks_in_flight_max

    def __post_init__(self) -> None:
        if not (self.after_s >= 0 and self.every_s > 0):
            raise ValueError("reconcile waits are positive seconds")
        if not (self.per_sweep_max >= 1 and self.asks_in_flight_max >= 1):
            raise ValueError("a sweep asks about at least one attempt, at least one at a time")


def settling_event(attempt_status: str, intent: Intent) -> OrderEvent | None:
    """The order event the provider's ``intent`` means for an attempt recorded as ``attempt_status``; None: nothing
    to apply (the outcome is not known yet, or the attempt was settled already)."""
    if attempt_status not in UNSETTLED:
        return None  # an outcome was recorded (by webhook or an earlier sweep): the provider adds nothing
    return _SETTLES[intent.status]


def reconcile_event_id(intent: Intent) -> str:
    """The provider event id a reconciliation is recorded under: one per intent and status, so one application."""
    return f"{RECONCILE_EVENT_PREFIX}{intent.intent_id}:{intent.status.value}"


def reconcile_event_type(intent: Intent) -> str:
    return f"{RECONCILE_TYPE_PREFIX}{intent.status.value}"
