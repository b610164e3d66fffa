"""The steps of changing an event's prices after its creation, inside the caller's unit of work
(services/catalog/lifecycle.py: ``change_ticket_type`` for a type's price and tiers, ``patch_event`` for the
event's fees and tax).

The rules are engine/catalog/price_changes.py's, checked against the price list as Postgres holds it, with the
event's row locked (so two changes of one event's prices run one after another). A change that would leave every
price as it is writes nothing, bumps no version and is not audited. Otherwise the price list's version is bumped
(``next_version``, which also row-locks it against promo codes being added), the rows are written, and the caller
records the audit entry from ``Written`` in the same transaction. After the commit the caller shares
``Written.prices`` (``SharedPrices``: Redis, then every gateway process drops its older copy on the announcement),
also when nothing changed: a retry after a failed share then repairs Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.catalog import price_changes, pricing
from engine.catalog.rules import Problem
from engine.refusals import Refusal, Refused
from persistence.catalog import prices as pg_prices
from persistence.tenancy import OrgDb

TICKET_TYPE_PRICE = "ticket_type.price"


@dataclass(frozen=True)
class Written:
    """What a price change left: the event's price list now (to share), and the audit entry's before and after
    (None: nothing changed, nothing to audit)."""

    prices: pricing.PriceList
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def prices_ended(event_id: str, status: str) -> Refused:
    """A closed or cancelled event's prices no longer change (409, like its capacity): its sale is over, and
    whatever it sold was sold at the prices then."""
    return Refused(
        Refusal.EVENT_ENDED, f"the event is {status}: its prices no longer change",
        {"event_id": event_id, "status": status},
    )


async def current_prices(db: OrgDb, event_id: str) -> pricing.PriceList:
    """The event's price list as Postgres holds it (the event exists: the caller locked its row)."""
    found = await pg_prices.load_price_list(db, event_id)
    assert found is not None, f"event {event_id} has no ticket types"
    return found


def type_problems(prices: pricing.PriceList, change: price_changes.TypePriceChange) -> list[Problem]:
    return [Problem(f, m) for f, m in price_changes.type_change_problems(prices, change)]


def rules_problems(change: price_changes.RulesChange) -> list[Problem]:
    return [Problem(f, m) for f, m in price_changes.rules_change_problems(change)]


async def write_type_change(
    db: OrgDb, event_id: str, current: pricing.PriceList, change: price_changes.TypePriceChange
) -> Written:
    """The ticket type's checked change written (in db's transaction, the event's row locked since ``current``
    was read)."""
    target = price_changes.with_type_change(current, change)
    if not price_changes.changes_prices(current, target):
        return Written(current)
    await pg_prices.next_version(db, event_id)
    await pg_prices.write_type_change(db, event_id, change)
    after = await _stored_as_decided(db, event_id, target)
    return Written(
        after, pg_prices.type_price_audit_view(current, change), pg_prices.type_price_audit_view(after, change)
    )


async def write_rules_change(
    db: OrgDb, event_id: str, current: pricing.PriceList, change: price_changes.RulesChange
) -> Written:
    """The event's checked new fees and tax written (in db's transaction, the event's row locked since
    ``current`` was read)."""
    target = price_changes.with_rules_change(current, change)
    if not price_changes.changes_prices(current, target):
        return Written(current)
    await pg_prices.next_version(db, event_id)  # before the tax: it makes the row of an event older than pricing
    await pg_prices.write_rules_change(db, event_id, change)
    after = await _stored_as_decided(db, event_id, target)
    return Written(after, pg_prices.rules_audit_view(current, change), pg_prices.rules_audit_view(after, change))


async def _stored_as_decided(db: OrgDb, event_id: str, target: pricing.PriceList) -> pricing.PriceList:
    after = await current_prices(db, event_id)
    # What Postgres now holds is what the engine decided (a writer's bug would otherwise be shared everywhere).
    assert not price_changes.changes_prices(after, target), (event_id, after, target)
    return after
