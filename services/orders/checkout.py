"""Checkout: a live hold becomes an order with a payment to make.

1. The hold is read from the copy its inventory's store keeps (``HoldCopies``: the engine's Redis write-through)
   and priced with the catalog's quote (never Postgres).
2. A promo code's use is taken for the order (``use_id`` = the order id: a retry takes nothing more).
3. The order and its payment attempt are written in one unit of work (audited); its ``expires_at`` is the
   payment window's end. A free order is paid at once and owes its fulfilment.
4. Then the hold is extended to the payment window plus a grace (engine/orders.py), so an order paid at the
   window's last second is still confirmed. In this order, because an extension is never taken back: a hold
   extended for an order that then failed to be written would stay held with nothing to end it. A hold found
   gone ends its pending order (``hold_lost``); a retried checkout extends again (idempotent).
5. The provider's intent is created with the attempt's id as its idempotency key, and its confirm_url kept.

Every step is idempotent by the hold: the order id is the hold's (engine/ids.py), so a retried checkout (a lost
answer, a 503 from the provider) finds the order and finishes what is missing. An unpaid order whose intent was
never made expires like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from engine import ids
from engine.catalog.pricing import Quote
from engine.inventory.commands import ExtendHold, HoldView
from engine.orders import HOLD_LOST_REFUSALS, OrderEvent, OrderStatus, hold_kept_s, payment_window_s
from engine.payments.provider import CreateIntent, ProviderError
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence import orders as pg_orders
from services.catalog import pricing as catalog_pricing
from services.inventory.commands import submit
from services.orders import moves
from services.orders.ports import Checkout

ORDER_CREATE = "order.create"
_OUTAGES = frozenset({Refusal.INVENTORY_UNAVAILABLE, Refusal.PERSISTENCE_UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class Buyer:
    email: str
    name: str


@dataclass(frozen=True, slots=True)
class CheckedOut:
    order: pg_orders.OrderRecord
    payment: pg_orders.AttemptRecord | None  # None for a free order
    created: bool


def _hold_not_found(hold_id: str) -> Refused:
    return Refused(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})


async def checkout(
    deps: Checkout, org_id: str, actor: audit.Actor, hold_id: str, buyer: Buyer, promo_code: str | None
) -> CheckedOut:
    event_id = ids.event_id_of_hold(hold_id)
    if event_id is None:
        raise _hold_not_found(hold_id)
    order_id = ids.order_id_of_hold(hold_id)
    deps.provider()  # no provider here: 404 before anything is taken
    async with deps.units.begin(org_id, actor) as uow:
        order = await pg_orders.get_order(uow.db, order_id)
    created = order is None
    if order is None:
        order = await _create_order(deps, org_id, actor, event_id, hold_id, buyer, promo_code)
    await _keep_hold(deps, org_id, actor, order)
    attempt = await _ensure_intent(deps, org_id, actor, order) if order.total_minor > 0 else None
    return CheckedOut(order, attempt, created)


async def _create_order(
    deps: Checkout, org_id: str, actor: audit.Actor, event_id: str, hold_id: str, buyer: Buyer,
    promo_code: str | None,
) -> pg_orders.OrderRecord:
    now = deps.now()
    hold = await deps.holds.read(org_id, event_id, hold_id)
    if hold is None:
        raise _hold_not_found(hold_id)
    quote = await catalog_pricing.quote_live_hold(deps.prices, org_id, event_id, hold, promo_code, now)
    order_id = ids.order_id_of_hold(hold_id)
    if quote.promo_code:
        await catalog_pricing.take_promo_use(
            deps.units, deps.redis, org_id, actor, event_id, quote.promo_code, order_id, hold.buyer_id, now
        )
    try:
        return await _write_order(deps, org_id, actor, event_id, hold_id, hold.buyer_id, buyer, quote, now)
    except Refused as refusal:
        # the hold is gone: no order will ever take this use, so it goes back. (After an outage the use is kept
        # for the retry of the same hold, which takes it again by its id.)
        if quote.promo_code and refusal.refusal not in _OUTAGES:
            await catalog_pricing.release_promo_use(
                deps.units, deps.redis, org_id, actor, event_id, quote.promo_code, order_id
            )
        raise


async def _write_order(
    deps: Checkout, org_id: str, actor: audit.Actor, event_id: str, hold_id: str, buyer_id: str, buyer: Buyer,
    quote: Quote, now: datetime,
) -> pg_orders.OrderRecord:
    """The order and its payment attempt, written before the hold is extended for it: an extension is never
    taken back, so one made for an order that then failed to be written (503) would keep the hold for the
    payment window with no order to end it."""
    order_id = ids.order_id_of_hold(hold_id)
    new = pg_orders.NewOrder(order_id, event_id, hold_id, buyer_id, buyer.email, buyer.name, quote,
                             now + timedelta(seconds=payment_window_s))  # fmt: skip
    async with deps.units.begin(org_id, actor) as uow:
        order, created = await pg_orders.insert_order(uow.db, new)
        if created:
            uow.record(audit.Change(ORDER_CREATE, "order", order_id, after=_audit_view(order)))
            if order.total_minor > 0:
                await pg_orders.insert_attempt(uow.db, ids.payment_attempt_id(order_id), order_id,
                                               deps.provider_name, order.total_minor, order.currency)
            else:  # nothing to pay: paid now, and its tickets owed
                await moves.move(uow, order, OrderEvent.PAYMENT_SUCCEEDED, now)
                order = await pg_orders.get_order(uow.db, order_id) or order
    return order


async def _keep_hold(deps: Checkout, org_id: str, actor: audit.Actor, order: pg_orders.OrderRecord) -> None:
    """The order's hold kept for its payment window and the grace after it (ExtendHold, idempotent by the order,
    so a retried checkout sends it again harmlessly). A pending order whose hold is gone ends (hold_lost: its
    promo use goes back) and the refusal is answered; a paid order's hold is fulfilment's to confirm (a free
    order may be confirmed already), so nothing is answered for it."""
    if order.status not in (OrderStatus.PENDING_PAYMENT, OrderStatus.PAID) or order.tickets_issued_at is not None:
        return
    try:
        await _extend(deps, org_id, order.event_id, order.order_id, order.hold_id)
    except Refused as refusal:
        if order.status is OrderStatus.PAID and refusal.refusal not in _OUTAGES:
            return
        if refusal.refusal in HOLD_LOST_REFUSALS:
            async with deps.units.begin(org_id, actor) as uow:
                locked = await pg_orders.get_order(uow.db, order.order_id, for_update=True)
                if locked is not None:
                    await moves.move(uow, locked, OrderEvent.HOLD_LOST, deps.now())
        raise


async def _extend(deps: Checkout, org_id: str, event_id: str, order_id: str, hold_id: str) -> HoldView:
    """The hold kept for the payment window (and the grace after it): 404/410 when it is gone."""
    dedicated = await deps.placements.dedicated(org_id, event_id)
    command = ExtendHold(f"checkout:{order_id}", hold_id, hold_kept_s)
    result = await submit(deps.inventory, org_id, event_id, command, dedicated=dedicated)
    assert isinstance(result.value, HoldView), result
    return result.value


async def _ensure_intent(
    deps: Checkout, org_id: str, actor: audit.Actor, order: pg_orders.OrderRecord
) -> pg_orders.AttemptRecord:
    """The order's payment attempt with its intent: made at the provider now if it was not yet (503 when the
    provider is away; the retry makes the same intent, by the attempt's idempotency key)."""
    attempt_id = ids.payment_attempt_id(order.order_id)
    async with deps.units.begin(org_id, actor) as uow:
        attempt = await pg_orders.get_attempt(uow.db, attempt_id)
    assert attempt is not None, f"order {order.order_id} has no payment attempt"
    if attempt.intent_id is not None or order.status is not OrderStatus.PENDING_PAYMENT:
        return attempt
    metadata = {"org_id": org_id, "order_id": order.order_id, "attempt_id": attempt_id}
    request = CreateIntent(order.total_minor, order.currency, attempt_id, metadata)
    try:
        intent = await deps.provider(attempt.provider).create_intent(request)
    except ProviderError as error:
        raise Refused(Refusal.PAYMENTS_UNAVAILABLE, "the payment provider did not answer; retry the checkout",
                      {"order_id": order.order_id}) from error
    async with deps.units.begin(org_id, actor) as uow:
        await pg_orders.set_attempt(uow.db, attempt_id, status=intent.status.value, intent_id=intent.intent_id,
                                    confirm_url=intent.confirm_url)
        found = await pg_orders.get_attempt(uow.db, attempt_id)
    assert found is not None
    return found


def _audit_view(order: pg_orders.OrderRecord) -> dict[str, object]:
    return {"event_id": order.event_id, "hold_id": order.hold_id, "status": order.status.value,
            "total_minor": order.total_minor, "currency": order.currency, "expires_at": order.expires_at.isoformat(),
            "promo_code": order.quote.promo_code}
