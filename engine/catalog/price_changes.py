"""Changing an event's prices after its creation: a ticket type's base price and tiers, the event's fees and tax.

Pure. A change is held to the rules an event is created under (engine/catalog/pricing.py), checked against the
event's price list as it stands:

- **One currency, fixed.** The event's currency is its price list's (its first ticket type's, at creation). A new
  price or tier in any other currency is refused, even on an event with one ticket type: fees, promo amounts and
  the quotes already given are in that currency.
- **Tiers** are replaced as a whole (``()`` removes them): in order, at most ``price_tiers_per_type_max``.
- **Fees** are replaced as a whole (``()`` removes them): valid, distinct codes, at most ``fees_per_event_max``.
- **Tax** is replaced or removed.

A change names only what changes (None: unchanged). ``with_type_change`` / ``with_rules_change`` give the list it
leads to; ``changes_prices`` whether that differs from the list before (an unchanged list is neither written nor
audited). Quotes already given are not re-priced: a quote is a snapshot of the list it was computed from
(``Quote.price_list_version``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from types import MappingProxyType

from engine import limits
from engine.catalog.pricing import (
    Fee,
    FieldProblem,
    PriceList,
    PriceTier,
    Tax,
    TypePrice,
    fees_problems,
    tax_problems,
    tier_problems,
)
from engine.catalog.rules import Price


@dataclass(frozen=True, slots=True)
class TypePriceChange:
    """A ticket type's new base price and/or tiers (None: unchanged; tiers ``()``: no tiers any more)."""

    code: str
    price: Price | None = None
    tiers: tuple[PriceTier, ...] | None = None

    @property
    def empty(self) -> bool:
        return self.price is None and self.tiers is None


@dataclass(frozen=True, slots=True)
class RulesChange:
    """An event's new fees (the whole list; ``()``: none) and/or tax (``tax_given``: replaced by ``tax``, None
    removes it). None / False: unchanged."""

    fees: tuple[Fee, ...] | None = None
    tax_given: bool = False
    tax: Tax | None = None

    @property
    def empty(self) -> bool:
        return self.fees is None and not self.tax_given


def type_change_problems(prices: PriceList, change: TypePriceChange) -> list[FieldProblem]:
    """Every rule the ticket type's change breaks against the event's ``prices``, with paths as in the request
    body (``price.currency``, ``price_tiers.1.until``). The type must be one of the list's (the caller's 404)."""
    assert change.code in prices.ticket_types, change.code
    problems: list[FieldProblem] = []
    if change.price is not None:
        if not 0 <= change.price.amount_minor <= limits.price_minor_max:
            problems.append(("price.amount_minor", f"must be 0..{limits.price_minor_max} minor units"))
        if change.price.currency != prices.currency:
            problems.append(("price.currency", f"an event has one currency ({prices.currency})"))
    if change.tiers is not None:
        problems += tier_problems(change.tiers, prices.currency)
    return problems


def rules_change_problems(change: RulesChange) -> list[FieldProblem]:
    """Every rule the event's new fees and tax break, with paths as in the request body (``fees.1.code``,
    ``tax.rate_bp``). Fees carry no currency of their own (an amount is in the event's)."""
    problems: list[FieldProblem] = [] if change.fees is None else fees_problems(change.fees)
    if change.tax_given and change.tax is not None:
        problems += [(f"tax.{f}", m) for f, m in tax_problems(change.tax)]
    return problems


def with_type_change(prices: PriceList, change: TypePriceChange) -> PriceList:
    """``prices`` with the ticket type's change applied (same version: the store gives the next one)."""
    current = prices.ticket_types[change.code]
    changed = TypePrice(
        current.code,
        current.amount_minor if change.price is None else change.price.amount_minor,
        current.tiers if change.tiers is None else change.tiers,
    )
    types = dict(prices.ticket_types)
    types[change.code] = changed  # keeps the type's place: quotes list lines in the order asked, lists in this one
    return replace(prices, ticket_types=MappingProxyType(types))


def with_rules_change(prices: PriceList, change: RulesChange) -> PriceList:
    """``prices`` with the event's new fees and tax applied (same version)."""
    return replace(
        prices,
        fees=prices.fees if change.fees is None else change.fees,
        tax=change.tax if change.tax_given else prices.tax,
    )


def changes_prices(before: PriceList, after: PriceList) -> bool:
    """Whether a quote could come out differently under ``after`` than under ``before`` (versions aside)."""
    return (
        dict(before.ticket_types) != dict(after.ticket_types)
        or before.fees != after.fees
        or before.tax != after.tax
        or before.currency != after.currency
    )
