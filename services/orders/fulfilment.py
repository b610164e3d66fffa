"""The outbox's work for orders (the topics of services/orders/moves.py), each handler idempotent by its row's key,
so a crash anywhere and the drain's retry do the work once:

- ``fulfil`` a paid order: capture the payment (idempotency key ``capture:<attempt>``; the ledger's capture posted
  in the unit of work that records it, by source, so once; a retry that finds the attempt captured already, say by
  the provider's webhook after a crash lost the capture's answer, posts it if missing), confirm the hold into a
  sale (command id ``fulfil:<order>``: the inventory answers a retried confirm with the sale it made), then sign
  and store the tickets' codes and mark the order issued (one unit of work; codes keyed by ticket). A hold found
  gone (expired, released, confirmed elsewhere, the event no longer selling) makes the order ``refunded`` with
  reason ``hold_lost`` and owes the refund: never a paid order without tickets.
- ``refund_payment``: what the provider took goes back (the capture's posting made sure of, then the refund's,
  both by source), or, if it was never captured, the authorization is voided.
- ``cancel_payment``, ``release_hold``, ``release_promo``: an order that ended unpaid gives up what it held.

A handler raises to be retried (``services/outbox.py`` bounds the retries); a refusal that retrying cannot change
ends the work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from engine import ids
from engine.inventory.commands import Confirm, Release, actor_ref
from engine.ledger import flows
from engine.orders import HOLD_LOST_REFUSALS, OrderEvent, OrderStatus
from engine.payments.provider import Intent, IntentStatus, ProviderRefused, RefundRequest
from engine.refusals import Refusal, Refused
from engine.tickets.payload import TicketClaims
from engine.tickets.verify import sign
from persistence import audit, ledger
from persistence import orders as pg_orders
from persistence import tickets as pg_tickets
from persistence.outbox import Claimed
from services.catalog.pricing import release_promo_use
from services.inventory.commands import submit
from services.orders import moves
from services.orders.ports import FULFILMENT_ACTOR, Checkout
from services.orders.returns import return_tickets_of
from services.unit_of_work import UnitOfWork

_INFRASTRUCTURE = frozenset({Refusal.INVENTORY_UNAVAILABLE, Refusal.PERSISTENCE_UNAVAILABLE})
PAYMENT_CAPTURE = "payment.capture"
ORDER_TICKETS_ISSUED = "order.tickets_issued"
REFUND_DONE = "refund.done"


class NotCapturable(RuntimeError):
    """The provider will not capture a paid order's payment (retried, then left for an operator)."""




async def _read(deps: Checkout, org_id: str, order_id: str
                ) -> tuple[pg_orders.OrderRecord | None, pg_orders.AttemptRecord | None]:
    async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
        order = await pg_orders.get_order(uow.db, order_id)
        attempt = await pg_orders.get_attempt(uow.db, ids.payment_attempt_id(order_id))
    return order, attempt


# ---- fulfil ----------------------------------------------------------------------------------------------------


async def fulfil(deps: Checkout, row: Claimed) -> None:
    order, attempt = await _read(deps, row.org_id, row.payload["order_id"])
    if order is None or order.status is not OrderStatus.PAID or order.tickets_issued_at is not None:
        return  # nothing is owed any more (issued, or refunded meanwhile)
    if order.total_minor > 0:
        assert attempt is not None and attempt.intent_id is not None, order.order_id
        await _capture(deps, row.org_id, order, attempt)
    if not await _confirm(deps, row.org_id, order):
        async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
            locked = await pg_orders.get_order(uow.db, order.order_id, for_update=True)
            assert locked is not None
            await moves.move(uow, locked, OrderEvent.HOLD_LOST, deps.now())
        return
    await _issue(deps, row.org_id, order)


async def _capture(deps: Checkout, org_id: str, order: pg_orders.OrderRecord, attempt: pg_orders.AttemptRecord
                   ) -> None:
    assert attempt.intent_id is not None
    if attempt.captured_minor >= attempt.amount_minor:
        # Captured already, but maybe not in the ledger: the provider's payment.captured webhook records the
        # capture on the attempt (services/orders/payments.py) and may do so before this handler recorded its
        # own, when the capture's answer was lost (a crash, a timeout). The posting is by source: at most once.
        async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
            await _post_capture(uow, order, attempt, attempt.captured_minor, order.quote.currency)
        return
    provider = deps.provider(attempt.provider)
    try:
        intent = await provider.capture(attempt.intent_id, f"capture:{attempt.attempt_id}")
    except ProviderRefused as error:
        intent = await provider.get_intent(attempt.intent_id)
        if intent.status not in (IntentStatus.CAPTURED, IntentStatus.REFUNDED):
            raise NotCapturable(f"{attempt.intent_id} is {intent.status.value}: {error}") from error
    async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
        await _record_capture(uow, order, attempt, intent)


async def _record_capture(uow: UnitOfWork, order: pg_orders.OrderRecord, attempt: pg_orders.AttemptRecord,
                          intent: Intent) -> None:
    await pg_orders.set_attempt(uow.db, attempt.attempt_id, status=intent.status.value,
                                captured_minor=intent.captured_minor)
    await _post_capture(uow, order, attempt, intent.captured_minor, intent.currency)


async def _post_capture(uow: UnitOfWork, order: pg_orders.OrderRecord, attempt: pg_orders.AttemptRecord,
                        captured_minor: int, currency: str) -> None:
    """The ledger's capture of the order (source ``capture:<attempt>``: posted once whoever posts it first),
    audited when this call posted it."""
    posting = flows.capture(order.order_id, order.quote, transaction_id=ledger.new_transaction_id(),
                            source=f"capture:{attempt.attempt_id}")
    if posting.transaction is not None:
        written = await ledger.write(uow.db, posting.transaction)
        if written.created:
            uow.record(audit.Change(PAYMENT_CAPTURE, "payment", attempt.attempt_id,
                                    after={"order_id": order.order_id, "amount_minor": captured_minor,
                                           "currency": currency, "ledger": written.transaction_id}))


async def _confirm(deps: Checkout, org_id: str, order: pg_orders.OrderRecord) -> bool:
    """The hold confirmed into the order's sale (True), or found gone for good (False)."""
    command = Confirm(f"fulfil:{order.order_id}", order.hold_id, order.order_id,
                      actor_ref(FULFILMENT_ACTOR.type, FULFILMENT_ACTOR.id), None)
    dedicated = await deps.placements.dedicated(org_id, order.event_id)
    try:
        await submit(deps.inventory, org_id, order.event_id, command, dedicated=dedicated)
    except Refused as refusal:
        if refusal.refusal in HOLD_LOST_REFUSALS:
            return False
        raise
    return True


async def _issue(deps: Checkout, org_id: str, order: pg_orders.OrderRecord) -> None:
    assert deps.master is not None, "this process issues tickets: it needs the ticket master key"
    sale_id = ids.sale_id_of_hold(order.hold_id)
    async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
        await pg_tickets.ensure_active_key(uow.db, deps.master)
        key = await pg_tickets.signing_key(uow.db, deps.master)
        assert key is not None
        tickets = await pg_orders.tickets_of_sale(uow.db, order.order_id, sale_id)
        assert tickets, f"the sale of {order.order_id} has no tickets"
        codes = [(t.ticket_id, sign(TicketClaims(t.ticket_id, t.ticket_type, t.seat_id, t.unit), key))
                 for t in tickets if t.payload is None]
        await pg_orders.insert_ticket_codes(uow.db, order.order_id, key.kid, codes)
        await pg_orders.mark_tickets_issued(uow.db, order.order_id, deps.now())
        uow.record(audit.Change(ORDER_TICKETS_ISSUED, "order", order.order_id,
                                after={"tickets": [t.ticket_id for t in tickets], "kid": key.kid}))


# ---- giving back -----------------------------------------------------------------------------------------------


async def refund_payment(deps: Checkout, row: Claimed) -> None:
    order, attempt = await _read(deps, row.org_id, row.payload["order_id"])
    assert order is not None and attempt is not None, row
    refund_id = row.payload["refund_id"]
    if attempt.intent_id is None:  # no intent was ever made: nothing was taken
        await _refund_done(deps, row.org_id, order, attempt, refund_id, None, attempt.status)
        return
    provider = deps.provider(attempt.provider)
    intent = await provider.get_intent(attempt.intent_id)
    provider_refund_id: str | None = None
    if intent.status is IntentStatus.CAPTURED:
        request = RefundRequest(intent.intent_id, intent.refundable_minor, intent.currency,
                                f"refund:{attempt.attempt_id}", order.reason or "refund")
        provider_refund_id = (await provider.refund(request)).refund_id
        intent = await provider.get_intent(attempt.intent_id)
    elif intent.status in (IntentStatus.REQUIRES_PAYMENT, IntentStatus.PROCESSING, IntentStatus.AUTHORIZED):
        intent = await provider.cancel(intent.intent_id, f"cancel:{attempt.attempt_id}")
    await _refund_done(deps, row.org_id, order, attempt, refund_id, provider_refund_id, intent.status.value,
                       intent)


async def _refund_done(deps: Checkout, org_id: str, order: pg_orders.OrderRecord,
                       attempt: pg_orders.AttemptRecord, refund_id: str, provider_refund_id: str | None,
                       status: str, intent: Intent | None = None) -> None:
    async with deps.units.begin(org_id, FULFILMENT_ACTOR) as uow:
        if intent is not None and intent.captured_minor > 0:
            await _record_capture(uow, order, attempt, intent)  # by source: posted once, whoever posts it
            money = flows.OrderMoney(order.order_id, order.quote)
            posting = flows.refund_all(money, transaction_id=ledger.new_transaction_id(),
                                       source=f"refund:{attempt.attempt_id}")
            if posting.transaction is not None:
                await ledger.write(uow.db, posting.transaction)
            await pg_orders.set_attempt(uow.db, attempt.attempt_id, status=status,
                                        refunded_minor=intent.refunded_minor)
        elif intent is not None:
            await pg_orders.set_attempt(uow.db, attempt.attempt_id, status=status)
        await pg_orders.refund_done(uow.db, refund_id, provider_refund_id)
        uow.record(audit.Change(REFUND_DONE, "refund", refund_id,
                                after={"order_id": order.order_id, "provider_refund_id": provider_refund_id,
                                       "payment": status}))


async def return_tickets(deps: Checkout, row: Claimed) -> None:
    await return_tickets_of(deps, row.org_id, row.payload["order_id"], row.payload["refund_id"],
                            row.payload["ticket_ids"])


async def refund_money(deps: Checkout, row: Claimed) -> None:
    """A refund on request (or a cancelled event's): its amount back through the provider, once (idempotency key
    ``refund:<refund id>``); the ledger posted it when the refund was made."""
    order, attempt = await _read(deps, row.org_id, row.payload["order_id"])
    async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
        refund = await pg_orders.get_refund(uow.db, row.payload["refund_id"])
    assert order is not None and attempt is not None and attempt.intent_id is not None and refund is not None, row
    if refund.status == "done":
        return
    provider = deps.provider(attempt.provider)
    request = RefundRequest(attempt.intent_id, refund.amount_minor, refund.currency, f"refund:{refund.refund_id}",
                            refund.reason)
    provider_refund = await provider.refund(request)
    intent = await provider.get_intent(attempt.intent_id)
    async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
        await pg_orders.set_attempt(uow.db, attempt.attempt_id, status=intent.status.value,
                                    refunded_minor=intent.refunded_minor)
        await pg_orders.refund_done(uow.db, refund.refund_id, provider_refund.refund_id)
        uow.record(audit.Change(REFUND_DONE, "refund", refund.refund_id,
                                after={"order_id": order.order_id, "provider_refund_id": provider_refund.refund_id,
                                       "payment": intent.status.value}))


async def cancel_payment(deps: Checkout, row: Claimed) -> None:
    _, attempt = await _read(deps, row.org_id, row.payload["order_id"])
    if attempt is None or attempt.intent_id is None:
        return
    try:
        intent = await deps.provider(attempt.provider).cancel(attempt.intent_id, f"cancel:{attempt.attempt_id}")
    except ProviderRefused:
        return  # not cancellable (failed, or already gone): a success arriving later is refunded on its own
    async with deps.units.begin(row.org_id, FULFILMENT_ACTOR) as uow:
        await pg_orders.set_attempt(uow.db, attempt.attempt_id, status=intent.status.value)


async def release_hold(deps: Checkout, row: Claimed) -> None:
    order_id = row.payload["order_id"]
    hold_id = ids.hold_id_of_order(order_id)
    event_id = ids.event_id_of_hold(hold_id)
    assert event_id is not None
    dedicated = await deps.placements.dedicated(row.org_id, event_id)
    try:
        await submit(deps.inventory, row.org_id, event_id, Release(f"release:{order_id}", hold_id),
                     dedicated=dedicated)
    except Refused as refusal:
        if refusal.refusal in _INFRASTRUCTURE:
            raise
        # gone already (expired, released): nothing left to give up


async def release_promo(deps: Checkout, row: Claimed) -> None:
    order_id = row.payload["order_id"]
    event_id = ids.event_id_of_hold(ids.hold_id_of_order(order_id))
    assert event_id is not None
    await release_promo_use(deps.units, deps.redis, row.org_id, FULFILMENT_ACTOR, event_id,
                            row.payload["promo_code"], order_id)


Handler = Callable[[Checkout, Claimed], Awaitable[None]]
HANDLERS: Mapping[str, Handler] = {
    moves.FULFIL_TOPIC: fulfil,
    moves.REFUND_PAYMENT_TOPIC: refund_payment,
    moves.CANCEL_PAYMENT_TOPIC: cancel_payment,
    moves.RELEASE_HOLD_TOPIC: release_hold,
    moves.RELEASE_PROMO_TOPIC: release_promo,
    moves.RETURN_TICKETS_TOPIC: return_tickets,
    moves.REFUND_MONEY_TOPIC: refund_money,
}
assert set(HANDLERS) == set(moves.TOPICS)
