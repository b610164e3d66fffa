"""Pricing use cases: promo codes, quotes, and the promo use accounting that checkout consumes.

- ``create_promo_code``: a new code on an event (audited), then the event's new price list is shared with every
  gateway process (``SharedPrices``: Redis, announced by pub/sub).
- ``quote`` / ``quote_hold``: lines and totals from the cached price list and the promo's use counts
  (``PriceLists``: gateway memory, else Redis and the use mirror), the hold from Redis: never Postgres.
- ``take_promo_use`` / ``release_promo_use``: when a use is taken and released (docs/architecture.md "Pricing"):
  checkout (issue 11) takes one use when it creates an order with a promo code (``use_id`` = the order id; a
  retry with the same id takes nothing more), keeps it when the order is paid (a refund keeps it too), and
  releases it when the order expires, fails or is cancelled unpaid. A quote never takes a use.

Taking a use: first the Redis mirror reserves it atomically (a used-up code is refused there, without a Postgres
round trip, however many buyers rush it); then the use's row is written in a unit of work, where the schema's
trigger counts the live uses under the code's row lock, so Postgres never holds more than the limits even if the
mirror was lost or wrong. If the row cannot be written the reservation is given back. If Redis is away, Postgres
alone decides.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from engine import ids
from engine.catalog import pricing
from engine.catalog.pricing import PromoInvalid
from engine.inventory.commands import HoldView
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.catalog import prices as pg_prices
from persistence.catalog import promo_codes as pg_promos
from persistence.catalog import promo_uses
from persistence.catalog.promo_uses import Gate, Taken
from persistence.outages import REDIS_OUTAGES
from services.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

PROMO_CODE_CREATE = "promo_code.create"
PROMO_USE_TAKE = "promo_use.take"
PROMO_USE_RELEASE = "promo_use.release"


class LiveHolds(Protocol):
    """Where a hold quote reads the live hold without asking its inventory (services/inventory/holds.py: the
    copy the inventory's store keeps)."""

    async def read(self, org_id: str, event_id: str, hold_id: str) -> HoldView | None: ...


class PriceLists(Protocol):
    """Where quotes find an event's price list and a promo's live uses without Postgres (gateway/price_cache.py:
    memory, else Redis and the promo's use mirror)."""

    async def price_list(self, org_id: str, event_id: str) -> pricing.PriceList | None: ...

    async def promo_usage(
        self, org_id: str, event_id: str, code: str, buyer_id: str, *, per_buyer: bool
    ) -> pricing.Usage | None: ...


class SharedPrices(Protocol):
    """Who must see an event's new price list at once (every gateway process's price cache)."""

    async def share_prices(self, org_id: str, event_id: str, prices: pricing.PriceList) -> None: ...


def event_not_found(event_id: str) -> Refused:
    return Refused(Refusal.EVENT_NOT_FOUND, "no such event", {"event_id": event_id})


def promo_code_invalid(code: str, reason: PromoInvalid) -> Refused:
    messages = {
        PromoInvalid.UNKNOWN: "no such promo code for this event",
        PromoInvalid.NOT_YET_VALID: "the promo code is not valid yet",
        PromoInvalid.EXPIRED: "the promo code has expired",
        PromoInvalid.USED_UP: "the promo code is used up",
        PromoInvalid.BUYER_LIMIT_REACHED: "this buyer has used the promo code as often as allowed",
        PromoInvalid.NOT_APPLICABLE: "the promo code applies to none of these ticket types",
    }
    return Refused(Refusal.PROMO_CODE_INVALID, messages[reason], {"promo_code": code, "reason": reason.value})


# ---- promo codes ------------------------------------------------------------------------------------------------


async def create_promo_code(
    units: UnitsOfWork,
    shared: SharedPrices,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    promo: pricing.Promo,
) -> pricing.Promo:
    """Add ``promo`` to the event (409 when it has that code already), then share the new price list. The gateway
    has checked the promo's rules (engine/catalog/pricing.promo_problems) against the event's ticket types."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    promo = _normalized(promo)
    async with units.begin(org_id, actor) as uow:
        before = await pg_prices.load_price_list(uow.db, event_id)
        if before is None:
            raise event_not_found(event_id)
        problems = pricing.promo_problems(promo, list(before.ticket_types))
        if problems:
            raise ValueError(f"a promo code the rules refuse reached the use case: {problems}")
        await pg_prices.next_version(uow.db, event_id)  # locks the event's prices: changes queue here
        if await pg_promos.count_promo_codes(uow.db, event_id) >= pricing.promo_codes_per_event_max:
            raise Refused(
                Refusal.TOO_MANY_PROMO_CODES,
                f"an event has at most {pricing.promo_codes_per_event_max} promo codes",
                {"promo_codes_max": pricing.promo_codes_per_event_max},
            )
        if not await pg_promos.create_promo_code(uow.db, event_id, promo):
            raise Refused(Refusal.PROMO_CODE_EXISTS, "the event has this promo code already", {"code": promo.code})
        after = await pg_prices.load_price_list(uow.db, event_id)
        assert after is not None
        uow.record(
            audit.Change(PROMO_CODE_CREATE, "promo_code", f"{event_id}:{promo.code}",
                         after=pg_promos.audit_view(event_id, promo))
        )
    await shared.share_prices(org_id, event_id, after)
    return promo


def _normalized(promo: pricing.Promo) -> pricing.Promo:
    return pricing.Promo(
        code=pricing.promo_key(promo.code),
        percent_off_bp=promo.percent_off_bp,
        amount_off_minor=promo.amount_off_minor,
        max_uses=promo.max_uses,
        max_uses_per_buyer=promo.max_uses_per_buyer,
        valid_from=promo.valid_from,
        valid_until=promo.valid_until,
        ticket_types=promo.ticket_types,
    )


# ---- quotes --------------------------------------------------------------------------------------------------


async def quote(
    prices: PriceLists,
    org_id: str,
    event_id: str,
    buyer_id: str,
    items: Sequence[pricing.Item],
    promo_code: str | None,
    now: datetime,
) -> pricing.Quote:
    """The order's lines and totals now. 404 for an unknown event, 422 unknown_ticket_type, 422
    promo_code_invalid with the reason. Reads only the caches and Redis."""
    price_list = await prices.price_list(org_id, event_id)
    if price_list is None:
        raise event_not_found(event_id)
    unknown = pricing.unknown_ticket_types(price_list, items)
    if unknown:
        raise Refused(
            Refusal.UNKNOWN_TICKET_TYPE, "no such ticket types in this event", {"ticket_types": sorted(set(unknown))}
        )
    promo = None
    if promo_code is not None:
        key = pricing.promo_key(promo_code)
        promo = price_list.promos.get(key)
        usage: pricing.Usage | None = None
        if promo is not None and (promo.max_uses is not None or promo.max_uses_per_buyer is not None):
            per_buyer = promo.max_uses_per_buyer is not None
            usage = await prices.promo_usage(org_id, event_id, key, buyer_id, per_buyer=per_buyer)
        reason = pricing.promo_refusal(promo, now, items, usage)
        if reason is not None:
            raise promo_code_invalid(key, reason)
    return pricing.quote(price_list, items, now, promo)


async def quote_hold(
    prices: PriceLists,
    holds: LiveHolds,
    org_id: str,
    event_id: str,
    buyer_id: str,
    hold_id: str,
    promo_code: str | None,
    now: datetime,
) -> pricing.Quote:
    """``quote`` for what a live hold holds (read from the inventory store's copy). A hold of another event or
    another buyer is as unknown as a made-up id: 404 hold_not_found; past its time: 410 hold_expired."""
    if ids.event_id_of_hold(hold_id) != event_id:
        raise Refused(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})
    hold = await holds.read(org_id, event_id, hold_id)
    if hold is None or hold.buyer_id != buyer_id:
        raise Refused(Refusal.HOLD_NOT_FOUND, "no such hold", {"hold_id": hold_id})
    return await quote_live_hold(prices, org_id, event_id, hold, promo_code, now)


async def quote_live_hold(
    prices: PriceLists, org_id: str, event_id: str, hold: HoldView, promo_code: str | None, now: datetime
) -> pricing.Quote:
    """``quote`` for a hold the caller has read already (its buyer's); past its time: 410 hold_expired."""
    if hold.expires_at <= now.timestamp():
        raise Refused(Refusal.HOLD_EXPIRED, "the hold has expired", {"hold_id": hold.hold_id})
    quantity = len(hold.seats) if hold.seats else hold.quantity
    items = [pricing.Item(hold.ticket_type, quantity)]
    return await quote(prices, org_id, event_id, hold.buyer_id, items, promo_code, now)


# ---- promo use accounting ----------------------------------------------------------------------------------------


async def take_promo_use(
    units: UnitsOfWork,
    redis: Redis,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    promo_code: str,
    use_id: str,
    buyer_id: str,
    now: datetime | None = None,
) -> promo_uses.PromoUse:
    """Take one use of the code for ``use_id`` (the order), or refuse it: 422 promo_code_invalid (unknown, not yet
    valid, expired, used up, buyer limit reached). Taking the same ``use_id`` again answers the same use."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    code = pricing.promo_key(promo_code)
    now = now or datetime.now(UTC)
    gate = await _reserve(units, redis, org_id, actor, event_id, code, use_id, buyer_id)
    try:
        async with units.begin(org_id, actor) as uow:
            promo = await pg_promos.get_promo_code(uow.db, event_id, code)
            reason = pricing.promo_refusal(promo, now, [], None)
            if promo is None or reason not in (None, PromoInvalid.NOT_APPLICABLE):
                raise promo_code_invalid(code, reason or PromoInvalid.UNKNOWN)
            taken, use = await promo_uses.insert_use(uow.db, event_id, code, use_id, buyer_id)
            if taken is Taken.USED_UP:
                raise promo_code_invalid(code, PromoInvalid.USED_UP)
            if taken is Taken.BUYER_LIMIT_REACHED:
                raise promo_code_invalid(code, PromoInvalid.BUYER_LIMIT_REACHED)
            assert use is not None
            if use.code != code or use.buyer_id != buyer_id or use.event_id != event_id:
                raise ValueError(f"use id {use_id!r} belongs to another promo code or buyer")
            if taken is Taken.RELEASED:
                raise Refused(Refusal.PROMO_USE_RELEASED, "this use was released; take a new one",
                              {"use_id": use_id})
            if taken is Taken.TAKEN:
                uow.record(audit.Change(PROMO_USE_TAKE, "promo_use", use_id, after=promo_uses.audit_view(use)))
    except BaseException:
        if gate is Gate.OK:  # the reservation is this call's own: give it back
            await _unreserve(redis, org_id, event_id, code, use_id)
        raise
    return use


async def release_promo_use(
    units: UnitsOfWork,
    redis: Redis,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    promo_code: str,
    use_id: str,
) -> bool:
    """Release the live use ``use_id`` (its order expired, failed or was cancelled unpaid); False when there is
    none (never taken, or released already: releasing twice is harmless)."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    code = pricing.promo_key(promo_code)
    async with units.begin(org_id, actor) as uow:
        use = await promo_uses.release_use(uow.db, event_id, code, use_id)
        if use is not None:
            uow.record(audit.Change(PROMO_USE_RELEASE, "promo_use", use_id, before=promo_uses.audit_view(use)))
    if use is not None:
        await _unreserve(redis, org_id, event_id, code, use_id)
    return use is not None


async def _reserve(
    units: UnitsOfWork,
    redis: Redis,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    code: str,
    use_id: str,
    buyer_id: str,
) -> Gate | None:
    """The mirror's reservation (building the mirror from Postgres when it is missing); None when Redis is away
    (Postgres alone decides). Refuses a used-up code or a buyer at their limit."""
    try:
        gate = await promo_uses.reserve(redis, org_id, event_id, code, use_id, buyer_id)
        if gate is Gate.MISSING:
            async with units.begin(org_id, actor) as uow:
                promo = await pg_promos.get_promo_code(uow.db, event_id, code)
                if promo is None:
                    raise promo_code_invalid(code, PromoInvalid.UNKNOWN)
                uses = await promo_uses.live_uses(uow.db, event_id, code)
            await promo_uses.load_mirror(redis, org_id, event_id, promo, uses)
            gate = await promo_uses.reserve(redis, org_id, event_id, code, use_id, buyer_id)
    except REDIS_OUTAGES as error:
        log.warning("promo use mirror unreachable (%r); Postgres alone decides %s", error, code)
        return None
    if gate is Gate.USED_UP:
        raise promo_code_invalid(code, PromoInvalid.USED_UP)
    if gate is Gate.BUYER_LIMIT_REACHED:
        raise promo_code_invalid(code, PromoInvalid.BUYER_LIMIT_REACHED)
    return gate


async def _unreserve(redis: Redis, org_id: str, event_id: str, code: str, use_id: str) -> None:
    # Best effort: a reservation left behind only makes the mirror refuse early until it is rebuilt
    # (promo_uses.mirror_ttl_s); Postgres is the truth either way.
    with contextlib.suppress(*REDIS_OUTAGES):
        await promo_uses.unreserve(redis, org_id, event_id, code, use_id)
