"""Price rules and quotes: tiers, fees, tax and promo codes over integer minor units, in one currency per event.

Pure: the gateway's price cache hands ``quote`` a ``PriceList`` and the time, and gets back every line and total.

The rules, as built (docs/architecture.md "Pricing"):

- **Unit price.** A ticket type has a base price and optional tiers ``[(until, price)]`` with strictly increasing
  ``until``: the first tier whose ``until`` is still ahead (``now < until``) applies; once every tier has passed,
  the base price does.
- **Lines.** One ``ticket`` line per item (unit price x quantity); then, with a promo, ``discount`` lines (negative
  amounts); then one ``fee`` line per fee rule; then one ``tax`` line when the event has a tax.
- **Promo.** ``percent_off_bp`` takes that share off each eligible ticket line (one discount line per line);
  ``amount_off_minor`` takes that amount once off the order's eligible ticket lines, at most their sum (one line).
  Eligible: every ticket type, or only those the promo names.
- **Fees.** A fixed ``amount_minor`` is charged per ticket (x the order's ticket count) or once per order. A
  ``percent_bp`` fee is that share of the net ticket amount (tickets less discounts), whether ``per`` is ticket or
  order (``per`` then only decides the quantity shown).
- **Tax.** On the net ticket amount plus fees. Added: ``rate`` of it, on top of the total. Included: the part of it
  that is tax (``base x rate / (1 + rate)``), shown as a line that the total does not count again.
- **Rounding: half-even on the minor unit, per line.** Each line's amount is computed exactly (integers and
  basis points) and rounded once to a whole minor unit, ties to the even one (``round_half_even``); totals are sums
  of rounded lines, never re-rounded.
- **Totals.** ``total = subtotal - discount + fees + (tax unless included)`` = the sum of the counted lines.
  Nothing is ever negative: a discount line never exceeds its ticket lines, fees and tax are >= 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from engine import limits

bp_per_whole = 10_000  # basis points: 1 bp = 0.01 %
price_tiers_per_type_max = 10
fees_per_event_max = 10
promo_codes_per_event_max = 1_000
promo_max_uses_max = 1_000_000
items_per_quote_max = limits.ticket_types_per_event_max
_CURRENCY_RE = re.compile(r"[A-Z]{3}")  # ISO 4217

FieldProblem = tuple[str, str]  # (dot-separated field path, message); engine/catalog/rules.py wraps them


class FeePer(StrEnum):
    TICKET = "ticket"
    ORDER = "order"


class LineKind(StrEnum):
    TICKET = "ticket"
    DISCOUNT = "discount"
    FEE = "fee"
    TAX = "tax"


class PromoInvalid(StrEnum):
    """Why a promo code does not apply: the ``reason`` of a 422 promo_code_invalid."""

    UNKNOWN = "unknown"
    NOT_YET_VALID = "not_yet_valid"
    EXPIRED = "expired"
    USED_UP = "used_up"
    BUYER_LIMIT_REACHED = "buyer_limit_reached"
    NOT_APPLICABLE = "not_applicable"  # none of the order's ticket types is one the promo names


@dataclass(frozen=True, slots=True)
class PriceTier:
    until: datetime
    amount_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Fee:
    code: str
    per: str  # a FeePer
    amount_minor: int | None = None
    percent_bp: int | None = None


@dataclass(frozen=True, slots=True)
class Tax:
    code: str
    rate_bp: int
    included: bool


@dataclass(frozen=True, slots=True)
class TypePrice:
    code: str
    amount_minor: int
    tiers: tuple[PriceTier, ...] = ()


@dataclass(frozen=True, slots=True)
class Promo:
    code: str  # upper-cased (promo_key): codes match case-insensitively
    percent_off_bp: int | None = None
    amount_off_minor: int | None = None
    max_uses: int | None = None
    max_uses_per_buyer: int | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    ticket_types: tuple[str, ...] | None = None  # None: every ticket type

    def covers(self, ticket_type: str) -> bool:
        return self.ticket_types is None or ticket_type in self.ticket_types


@dataclass(frozen=True, slots=True)
class PriceList:
    """Everything a quote needs about one event's prices; ``version`` grows with every change (the caches keep
    the newest)."""

    currency: str
    ticket_types: Mapping[str, TypePrice]
    fees: tuple[Fee, ...] = ()
    tax: Tax | None = None
    promos: Mapping[str, Promo] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 0


@dataclass(frozen=True, slots=True)
class Item:
    ticket_type: str
    quantity: int


@dataclass(frozen=True, slots=True)
class Usage:
    """A promo's live uses, overall and by the buyer asking (from the use counts' mirror)."""

    total: int
    by_buyer: int


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # a LineKind
    code: str
    description: str
    quantity: int
    amount_minor: int  # negative for a discount
    counted: bool = True  # False only for a tax line whose tax is included (it is inside the ticket prices)
    # a percent discount line: the ticket type of the line it is taken off (a refund of those tickets returns it)
    ticket_type: str | None = None


@dataclass(frozen=True, slots=True)
class Quote:
    currency: str
    lines: tuple[Line, ...]
    subtotal_minor: int
    discount_minor: int  # >= 0: the sum of the discount lines, as a positive amount
    fees_minor: int
    tax_minor: int  # included or added
    total_minor: int
    promo_code: str | None = None
    price_list_version: int = 0  # the version of the price list it was computed from


# ---- rounding -------------------------------------------------------------------------------------------------


def round_half_even(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` to the nearest integer, a tie to the even one (banker's rounding): 2.5 -> 2,
    3.5 -> 4, -2.5 -> -2. Exact for any integers (no floats)."""
    if denominator <= 0:
        raise ValueError("the denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)  # 0 <= remainder < denominator
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def share_of(amount_minor: int, bp: int) -> int:
    """``bp`` basis points of ``amount_minor``, rounded half-even."""
    return round_half_even(amount_minor * bp, bp_per_whole)


def included_tax(gross_minor: int, rate_bp: int) -> int:
    """The tax inside a tax-inclusive ``gross_minor``: gross x rate / (1 + rate), rounded half-even."""
    return round_half_even(gross_minor * rate_bp, bp_per_whole + rate_bp)


# ---- the rules --------------------------------------------------------------------------------------------------


def promo_key(code: str) -> str:
    """Promo codes match case-insensitively: stored and looked up upper-cased."""
    return code.upper()


def unit_price(price: TypePrice, now: datetime) -> int:
    """The first tier whose ``until`` is still ahead, else the base price."""
    for tier in price.tiers:
        if now < tier.until:
            return tier.amount_minor
    return price.amount_minor


def unknown_ticket_types(prices: PriceList, items: Sequence[Item]) -> list[str]:
    return [item.ticket_type for item in items if item.ticket_type not in prices.ticket_types]


def promo_refusal(
    promo: Promo | None, now: datetime, items: Sequence[Item], usage: Usage | None
) -> PromoInvalid | None:
    """Why ``promo`` does not apply to this order now (None: it does). ``usage`` None: not known here (the use
    counts are taken, authoritatively, when checkout takes a use)."""
    if promo is None:
        return PromoInvalid.UNKNOWN
    if promo.valid_from is not None and now < promo.valid_from:
        return PromoInvalid.NOT_YET_VALID
    if promo.valid_until is not None and now >= promo.valid_until:
        return PromoInvalid.EXPIRED
    if usage is not None:
        if promo.max_uses is not None and usage.total >= promo.max_uses:
            return PromoInvalid.USED_UP
        if promo.max_uses_per_buyer is not None and usage.by_buyer >= promo.max_uses_per_buyer:
            return PromoInvalid.BUYER_LIMIT_REACHED
    if not any(promo.covers(item.ticket_type) for item in items):
        return PromoInvalid.NOT_APPLICABLE
    return None


def quote(prices: PriceList, items: Sequence[Item], now: datetime, promo: Promo | None = None) -> Quote:
    """Every line and total of buying ``items`` now, with ``promo`` (already checked by ``promo_refusal``).
    Each item's ticket type must be in the price list (``unknown_ticket_types`` first)."""
    tickets = [_ticket_line(prices.ticket_types[item.ticket_type], item, now) for item in items]
    subtotal = sum(line.amount_minor for line in tickets)
    discounts = [] if promo is None else _discount_lines(promo, tickets)
    discount = -sum(line.amount_minor for line in discounts)
    net_tickets = subtotal - discount
    ticket_count = sum(item.quantity for item in items)
    fees = [_fee_line(fee, net_tickets, ticket_count) for fee in prices.fees]
    fees_total = sum(line.amount_minor for line in fees)
    taxes = [] if prices.tax is None else [_tax_line(prices.tax, net_tickets + fees_total)]
    tax = sum(line.amount_minor for line in taxes)
    lines = (*tickets, *discounts, *fees, *taxes)
    total = sum(line.amount_minor for line in lines if line.counted)
    return Quote(
        currency=prices.currency,
        lines=lines,
        subtotal_minor=subtotal,
        discount_minor=discount,
        fees_minor=fees_total,
        tax_minor=tax,
        total_minor=total,
        promo_code=None if promo is None else promo.code,
        price_list_version=prices.version,
    )


def _ticket_line(price: TypePrice, item: Item, now: datetime) -> Line:
    unit = unit_price(price, now)
    return Line(LineKind.TICKET, item.ticket_type, f"{item.quantity} x {item.ticket_type}", item.quantity,
                unit * item.quantity)


def _discount_lines(promo: Promo, tickets: Sequence[Line]) -> list[Line]:
    eligible = [line for line in tickets if promo.covers(line.code)]
    if promo.percent_off_bp is not None:
        percent = f"{promo.percent_off_bp / 100:g}%"
        return [
            Line(LineKind.DISCOUNT, promo.code, f"{promo.code}: {percent} off {line.code}", line.quantity,
                 -share_of(line.amount_minor, promo.percent_off_bp), ticket_type=line.code)
            for line in eligible
        ]
    if promo.amount_off_minor is not None:
        off = min(promo.amount_off_minor, sum(line.amount_minor for line in eligible))
        return [Line(LineKind.DISCOUNT, promo.code, f"{promo.code}: amount off", 1, -off)]
    return []


def _fee_line(fee: Fee, net_tickets: int, ticket_count: int) -> Line:
    quantity = ticket_count if fee.per == FeePer.TICKET else 1
    if fee.percent_bp is not None:
        amount = share_of(net_tickets, fee.percent_bp)
        description = f"{fee.code}: {fee.percent_bp / 100:g}%"
    else:
        amount = (fee.amount_minor or 0) * quantity
        description = f"{fee.code}: per {fee.per}"
    return Line(LineKind.FEE, fee.code, description, quantity, amount)


def _tax_line(tax: Tax, base: int) -> Line:
    rate = f"{tax.rate_bp / 100:g}%"
    if tax.included:
        return Line(LineKind.TAX, tax.code, f"{tax.code} {rate} included", 1, included_tax(base, tax.rate_bp),
                    counted=False)
    return Line(LineKind.TAX, tax.code, f"{tax.code} {rate}", 1, share_of(base, tax.rate_bp))


# ---- what an event's and a promo's price rules must satisfy ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeRules:
    """A ticket type's prices as checked: its code, its base price's currency, its tiers."""

    code: str
    currency: str
    tiers: tuple[PriceTier, ...]


def price_rule_problems(
    types: Sequence[TypeRules], fees: Sequence[Fee], tax: Tax | None
) -> list[FieldProblem]:
    """Every rule an event's prices break, with paths from the event's root."""
    # The event's currency: its first ticket type's (a malformed one is that type's own problem, not this rule's).
    currency = next((t.currency for t in types if _CURRENCY_RE.fullmatch(t.currency)), None)
    problems: list[FieldProblem] = []
    for i, t in enumerate(types):
        if currency is not None and _CURRENCY_RE.fullmatch(t.currency) and t.currency != currency:
            problems.append((f"ticket_types.{i}.price.currency", f"an event has one currency ({currency})"))
        problems += [(f"ticket_types.{i}.{f}", m) for f, m in tier_problems(t.tiers, currency or t.currency)]
    problems += fees_problems(fees)
    if tax is not None:
        problems += [(f"tax.{f}", m) for f, m in tax_problems(tax)]
    return problems


def fees_problems(fees: Sequence[Fee]) -> list[FieldProblem]:
    """An event's whole list of fees: at most ``fees_per_event_max``, codes distinct, each fee's own rules; paths
    from the event's root (``fees.2.per``)."""
    problems: list[FieldProblem] = []
    if len(fees) > fees_per_event_max:
        problems.append(("fees", f"at most {fees_per_event_max} fees per event"))
    seen: set[str] = set()
    for k, fee in enumerate(fees):
        problems += [(f"fees.{k}.{f}" if f else f"fees.{k}", m) for f, m in fee_problems(fee)]
        if fee.code in seen:
            problems.append((f"fees.{k}.code", "repeats a fee code"))
        seen.add(fee.code)
    return problems


def tier_problems(tiers: Sequence[PriceTier], currency: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if len(tiers) > price_tiers_per_type_max:
        problems.append(("price_tiers", f"at most {price_tiers_per_type_max} price tiers per ticket type"))
    latest: datetime | None = None  # the latest `until` before this tier: each must be later than all before it
    for j, tier in enumerate(tiers):
        if tier.until.utcoffset() is None:
            problems.append((f"price_tiers.{j}.until", "must carry a time zone"))
        elif latest is not None and tier.until <= latest:
            problems.append((f"price_tiers.{j}.until", "must be later than every tier before it"))
        else:
            latest = tier.until
        if not 0 <= tier.amount_minor <= limits.price_minor_max:
            problems.append((f"price_tiers.{j}.price.amount_minor", f"must be 0..{limits.price_minor_max}"))
        if tier.currency != currency:
            problems.append((f"price_tiers.{j}.price.currency", f"an event has one currency ({currency})"))
    return problems


def fee_problems(fee: Fee) -> list[FieldProblem]:
    """A fee's own rules; paths relative to the fee ("" is the fee itself)."""
    problems: list[FieldProblem] = []
    if not 1 <= len(fee.code) <= limits.label_chars_max:
        problems.append(("code", f"must be 1..{limits.label_chars_max} characters"))
    if fee.per not in tuple(FeePer):
        problems.append(("per", f"must be one of {', '.join(FeePer)}"))
    if (fee.amount_minor is None) == (fee.percent_bp is None):
        problems.append(("", "give amount_minor or percent_bp, exactly one"))
    if fee.amount_minor is not None and not 0 <= fee.amount_minor <= limits.price_minor_max:
        problems.append(("amount_minor", f"must be 0..{limits.price_minor_max}"))
    if fee.percent_bp is not None and not 0 <= fee.percent_bp <= bp_per_whole:
        problems.append(("percent_bp", f"must be 0..{bp_per_whole} basis points"))
    return problems


def tax_problems(tax: Tax) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not 1 <= len(tax.code) <= limits.label_chars_max:
        problems.append(("code", f"must be 1..{limits.label_chars_max} characters"))
    if not 0 <= tax.rate_bp <= bp_per_whole:
        problems.append(("rate_bp", f"must be 0..{bp_per_whole} basis points"))
    return problems


def promo_problems(promo: Promo, ticket_types: Sequence[str] | None) -> list[FieldProblem]:
    """A new promo code's rules, against its event's ticket type codes (None: not known here, not checked); paths
    relative to the request body."""
    problems: list[FieldProblem] = []
    if not 1 <= len(promo.code) <= limits.label_chars_max:
        problems.append(("code", f"must be 1..{limits.label_chars_max} characters"))
    if (promo.percent_off_bp is None) == (promo.amount_off_minor is None):
        problems.append(("percent_off_bp", "give percent_off_bp or amount_off_minor, exactly one"))
    if promo.percent_off_bp is not None and not 1 <= promo.percent_off_bp <= bp_per_whole:
        problems.append(("percent_off_bp", f"must be 1..{bp_per_whole} basis points"))
    if promo.amount_off_minor is not None and not 1 <= promo.amount_off_minor <= limits.price_minor_max:
        problems.append(("amount_off_minor", f"must be 1..{limits.price_minor_max}"))
    if promo.max_uses is not None and not 1 <= promo.max_uses <= promo_max_uses_max:
        problems.append(("max_uses", f"must be 1..{promo_max_uses_max}"))
    if promo.max_uses_per_buyer is not None and not 1 <= promo.max_uses_per_buyer <= promo_max_uses_max:
        problems.append(("max_uses_per_buyer", f"must be 1..{promo_max_uses_max}"))
    for name, moment in (("valid_from", promo.valid_from), ("valid_until", promo.valid_until)):
        if moment is not None and moment.utcoffset() is None:
            problems.append((name, "must carry a time zone"))
    window = (promo.valid_from, promo.valid_until)
    if (
        window[0] is not None and window[1] is not None
        and window[0].utcoffset() is not None and window[1].utcoffset() is not None
        and window[1] <= window[0]
    ):
        problems.append(("valid_until", "must be later than valid_from"))
    if promo.ticket_types is not None:
        if not promo.ticket_types:
            problems.append(("ticket_types", "name at least one ticket type, or leave it out for all"))
        seen: set[str] = set()
        for i, code in enumerate(promo.ticket_types):
            if ticket_types is not None and code not in ticket_types:
                problems.append((f"ticket_types.{i}", "not a ticket type of this event"))
            elif code in seen:
                problems.append((f"ticket_types.{i}", "repeats a ticket type"))
            seen.add(code)
    return problems


def item_problems(items: Sequence[Item]) -> list[FieldProblem]:
    """A quote's items: each ticket type once (paths relative to the request body)."""
    seen: set[str] = set()
    problems: list[FieldProblem] = []
    for i, item in enumerate(items):
        if item.ticket_type in seen:
            problems.append((f"items.{i}.ticket_type", "repeats a ticket type"))
        seen.add(item.ticket_type)
    return problems
