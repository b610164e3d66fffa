"""The provider's webhooks: verified, then applied to their order exactly once.

The delivery is believed only if its signature verifies over the raw body within the signature's age
(engine/payments/signature.py: constant-time comparison, older than 5 minutes refused): 400 webhook_refused
otherwise, nothing applied. A believed event finds its org and order by the intent's metadata (set at checkout,
and covered by the signature), then, under the order's row lock, is recorded by its event id: a redelivery, a
replay or a duplicate finds its id and changes nothing. So every event has one effect or none.

``payment.authorized`` is the payment's success (the order is paid and owes its fulfilment, which captures);
``payment.failed`` its failure; ``payment.charged_back`` the buyer's bank taking the payment back (every ticket
left revoked and given back, the ledger's chargeback posted). ``captured``, ``refunded`` and ``canceled`` confirm
what the platform itself asked for: they update the attempt and move no order.

``apply_fact`` is everything after the verification, shared with the reconciler (services/orders/reconciler.py),
which applies what ``get_intent`` says of an attempt whose webhook never came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from engine.orders import Change, OrderEvent, decide, tickets_refundable
from engine.payments import attempts
from engine.payments.provider import Intent
from engine.payments.webhooks import WebhookRefused
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence import orders as pg_orders
from persistence.tenancy import OrgDb
from services.orders import moves
from services.orders.ports import PROVIDER_ACTOR, Checkout
from services.orders.refunds import give_back, tickets_left
from services.unit_of_work import UnitOfWork

_ORG_RE = re.compile(r"org_[0-9a-f]{32}")
CHARGEBACK_REASON = "chargeback"


@dataclass(frozen=True, slots=True)
class Received:
    event_id: str
    applied: bool  # False: a replay, or an event of no order of ours
    order_id: str | None = None
    change: str | None = None  # an engine.orders.Change value, when it met an order


def _refused(reason: str) -> Refused:
    return Refused(Refusal.WEBHOOK_REFUSED, "the webhook delivery is not believed", {"reason": reason})


@dataclass(frozen=True, slots=True)
class ProviderFact:
    """What the provider says of one intent, to apply once: a verified webhook's event, or the reconciler's
    answer from ``get_intent`` (services/orders/reconciler.py)."""

    event_id: str  # the key of "already applied" (provider_events)
    event_type: str  # recorded with it, for the operator
    intent: Intent  # as the provider told it
    order_event: OrderEvent | None  # what it means for the order; None: it updates the attempt only


async def receive_webhook(deps: Checkout, provider_name: str, body: bytes, signature: str) -> Received:
    provider = deps.provider(provider_name)
    try:
        event = provider.parse_webhook(body, signature, deps.clock())
    except WebhookRefused as error:
        raise _refused(error.reason) from None
    org_id = event.intent.metadata.get("org_id", "")
    order_id = event.intent.metadata.get("order_id", "")
    if _ORG_RE.fullmatch(org_id) is None:
        return Received(event.event_id, applied=False)  # not a payment of ours: acknowledged, ignored
    fact = ProviderFact(event.event_id, event.type.value, event.intent, attempts.order_event_of(event.type))
    return await apply_fact(deps, PROVIDER_ACTOR, provider.name, org_id, order_id, fact)


async def apply_fact(
    deps: Checkout, actor: audit.Actor, provider_name: str, org_id: str, order_id: str, fact: ProviderFact
) -> Received:
    """``fact`` applied to its order once: under the order's row lock, recorded by its event id (a second one
    finds it and changes nothing), the attempt brought forward, the order moved. The webhook and the reconciler
    both come through here, so what one applied the other meets as a replay."""
    now = deps.now()
    async with deps.units.begin(org_id, actor) as uow:
        order = await pg_orders.get_order(uow.db, order_id, for_update=True)
        attempt = await pg_orders.attempt_of_intent(uow.db, provider_name, fact.intent.intent_id)
        if order is None or attempt is None or attempt.order_id != order.order_id:
            return Received(fact.event_id, applied=False)
        # what it will do, recorded with the event (decided again under the same lock when applied)
        change = "attempt_updated" if fact.order_event is None else decide(order.status, fact.order_event).change.value
        first = await pg_orders.record_provider_event(
            uow.db, provider_name, fact.event_id, fact.event_type, fact.intent.intent_id, change
        )
        if not first:
            return Received(fact.event_id, applied=False, order_id=order.order_id)
        await _update_attempt(uow.db, attempt, fact.intent)
        if fact.order_event is OrderEvent.CHARGEBACK:
            change = await _charge_back(uow, order, now)
        elif fact.order_event is not None:
            outcome = await moves.move(uow, order, fact.order_event, now)
            change = outcome.change.value
    return Received(fact.event_id, applied=True, order_id=order.order_id, change=change)


async def _charge_back(uow: UnitOfWork, order: pg_orders.OrderRecord, now: datetime) -> str:
    """The bank took the payment back: every ticket left is revoked and given back, the ledger posts the chargeback
    (services/orders/refunds.py). A paid order still issuing its tickets is refused for now (409): the provider
    redelivers, and by then they are issued."""
    outcome = decide(order.status, OrderEvent.CHARGEBACK)
    if outcome.change is not Change.MOVED:
        return outcome.change.value  # refunded already (nothing left to take), or not paid: nothing to do
    if not tickets_refundable(order.status, order.tickets_issued_at is not None):
        raise Refused(Refusal.ORDER_NOT_REFUNDABLE, "the order's tickets are still being issued; deliver again",
                      {"order_id": order.order_id, "status": order.status.value})
    await give_back(uow, order, OrderEvent.CHARGEBACK, await tickets_left(uow, order), CHARGEBACK_REASON, now)
    return outcome.change.value


async def _update_attempt(db: OrgDb, attempt: pg_orders.AttemptRecord, intent: Intent) -> None:
    status = intent.status
    if not attempts.may_replace(attempt.status, status):
        return  # a late delivery of an earlier step: the attempt only moves forward (engine/payments/attempts.py)
    await pg_orders.set_attempt(
        db, attempt.attempt_id, status=status.value, failure_code=intent.failure_code,
        captured_minor=max(intent.captured_minor, attempt.captured_minor),
        refunded_minor=max(intent.refunded_minor, attempt.refunded_minor),
    )  # fmt: skip
