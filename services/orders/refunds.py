"""Money back for a paid order's tickets: a refund on request (some tickets or all), a chargeback, a cancelled
event. Everything the refund decides happens in one unit of work, under the order's row lock:

- the engine's machine moves the order (engine/orders.py: ``refund_some``/``refund_all``/``chargeback``/
  ``event_cancelled``), and its audit entry is written;
- the ledger posts the refund (or chargeback) at once, from the order's quote and its refunds so far
  (engine/ledger/flows.py ``refund``: cumulative per line, so partial refunds never round past what was paid);
- the refund is recorded with its tickets (each ticket refunded at most once: the schema's key);
- the tickets' codes are revoked (a new revocation list version), so the door refuses them from now on;
- the outbox owes the rest: the seats or units back to the inventory (``orders.return_tickets``), and, unless a
  chargeback already took the money, the provider's refund (``orders.refund_money``), each idempotent by the
  refund's id.

The seats go back at once: the request tries the return itself after its commit; the outbox makes sure.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from engine import ids, limits
from engine.ledger import flows
from engine.ledger.accounts import TransactionKind
from engine.orders import Change, OrderEvent, decide, refund_event, tickets_refundable
from engine.refusals import Refusal, Refused
from persistence import audit, ledger
from persistence import orders as pg_orders
from persistence import tickets as pg_tickets
from services.orders import moves
from services.orders.ports import Checkout
from services.orders.reads import order_not_found
from services.orders.returns import return_tickets_of
from services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

ORDER_REFUND = "order.refund"
refund_tickets_max = limits.seats_per_hold_max  # a sale holds at most this many tickets
refund_reason_chars_max = 500  # what the provider takes (engine/payments/provider.py)
_KINDS = {OrderEvent.CHARGEBACK: TransactionKind.CHARGEBACK}


def new_refund_id() -> str:
    return ids.REFUND_PREFIX + secrets.token_hex(16)


async def refund_order(
    deps: Checkout, org_id: str, actor: audit.Actor, order_id: str, ticket_ids: Sequence[str] | None, reason: str
) -> pg_orders.RefundRecord:
    """Refund ``ticket_ids`` of the order (every ticket left when None). 404 for an unknown order; 409 when it is
    not paid with tickets issued, or a ticket was refunded already; 404 for a ticket not the order's."""
    if not ids.is_order_id(order_id):
        raise order_not_found(order_id)
    async with deps.units.begin(org_id, actor) as uow:
        order = await pg_orders.get_order(uow.db, order_id, for_update=True)
        if order is None:
            raise order_not_found(order_id)
        if not tickets_refundable(order.status, order.tickets_issued_at is not None):
            raise Refused(Refusal.ORDER_NOT_REFUNDABLE, "only a paid order with its tickets issued is refunded",
                          {"order_id": order_id, "status": order.status.value})
        left = await tickets_left(uow, order)
        chosen = _chosen(left, ticket_ids, await refunded_ticket_ids(uow, order_id))
        event = refund_event(len(left), len(chosen))
        refund = await give_back(uow, order, event, chosen, reason, deps.now())
    await return_now(deps, org_id, order, refund)
    return refund


def _chosen(left: Sequence[pg_orders.OrderTicket], wanted: Sequence[str] | None, refunded: set[str]
            ) -> list[pg_orders.OrderTicket]:
    if wanted is None:
        return list(left)
    by_id = {t.ticket_id: t for t in left}
    again = sorted({t for t in wanted if t in refunded})
    if again:
        raise Refused(Refusal.TICKET_ALREADY_REFUNDED, "a ticket was refunded already", {"ticket_ids": again})
    unknown = sorted({t for t in wanted if t not in by_id})
    if unknown:
        raise Refused(Refusal.TICKET_NOT_FOUND, "the order has no such ticket", {"ticket_ids": unknown})
    return [by_id[t] for t in dict.fromkeys(wanted)]


async def tickets_left(uow: UnitOfWork, order: pg_orders.OrderRecord) -> list[pg_orders.OrderTicket]:
    """The order's issued tickets not refunded yet, in their sale's order."""
    sale = await pg_orders.tickets_of_sale(uow.db, order.order_id, ids.sale_id_of_hold(order.hold_id))
    refunded = await refunded_ticket_ids(uow, order.order_id)
    return [t for t in sale if t.payload is not None and t.ticket_id not in refunded]


async def refunded_ticket_ids(uow: UnitOfWork, order_id: str) -> set[str]:
    return {t for r in await pg_orders.refunds_of(uow.db, order_id) for t in r.ticket_ids}


async def order_money(uow: UnitOfWork, order: pg_orders.OrderRecord) -> flows.OrderMoney:
    """The order's money as the ledger knows it: its quote, its tickets refunded so far by type, whether its
    revenue was released to the organizer (a release is posted by source ``release:<order>``)."""
    sale = await pg_orders.tickets_of_sale(uow.db, order.order_id, ids.sale_id_of_hold(order.hold_id))
    refunded = await refunded_ticket_ids(uow, order.order_id)
    counts = Counter(t.ticket_type for t in sale if t.ticket_id in refunded)
    released = await ledger.by_source(uow.db, ledger.release_source(order.order_id)) is not None
    return flows.OrderMoney(order.order_id, order.quote, refunded=dict(counts), released=released)


async def give_back(
    uow: UnitOfWork, order: pg_orders.OrderRecord, event: OrderEvent, chosen: Sequence[pg_orders.OrderTicket],
    reason: str, now: datetime,
) -> pg_orders.RefundRecord:
    """Apply ``event`` (a refund of ``chosen``, or of every ticket left) to the order, read under its row lock."""
    assert decide(order.status, event).change in (Change.MOVED, Change.ACTED), (order.order_id, event)
    refund_id = new_refund_id()
    # The book's lock before reading whether the order's revenue was released: a payout releases it under the same
    # lock, so the refund then debits the revenue where it really sits (held, or payable).
    await ledger.lock_book(uow.db, order.currency)
    money = await order_money(uow, order)
    posting = flows.refund(money, Counter(t.ticket_type for t in chosen), transaction_id=ledger.new_transaction_id(),
                           source=f"refund:{refund_id}", kind=_KINDS.get(event, TransactionKind.REFUND))
    if posting.transaction is not None:
        await ledger.write(uow.db, posting.transaction)
    ticket_ids = [t.ticket_id for t in chosen]
    amount_minor = -posting.amount_minor  # the refunds account is credited: the cash goes out
    assert amount_minor >= 0, posting
    await pg_orders.add_refund(uow.db, refund_id, order.order_id, amount_minor, order.currency, reason, ticket_ids)
    if ticket_ids:
        await pg_tickets.revoke_tickets(uow.db, order.event_id, ticket_ids)
    await moves.move(uow, order, event, now, moves.Refunding(refund_id, tuple(ticket_ids), amount_minor))
    uow.record(audit.Change(ORDER_REFUND, "refund", refund_id, after={
        "order_id": order.order_id, "event": event.value, "ticket_ids": ticket_ids,
        "amount_minor": amount_minor, "currency": order.currency, "reason": reason,
        "ledger": posting.transaction.id if posting.transaction else None,
    }))  # fmt: skip
    refund = await pg_orders.get_refund(uow.db, refund_id)
    assert refund is not None
    return refund


async def return_now(deps: Checkout, org_id: str, order: pg_orders.OrderRecord,
                     refund: pg_orders.RefundRecord) -> None:
    """The seats back at once, best effort: the outbox's ``orders.return_tickets`` retries what fails here."""
    try:
        await return_tickets_of(deps, org_id, order.order_id, refund.refund_id, refund.ticket_ids)
    except Exception as error:
        log.info("returning the tickets of %s is left to the outbox: %r", refund.refund_id, error)




