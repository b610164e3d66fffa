"""engine/catalog/pricing.py: the quote's properties (Hypothesis) and the rules, with worked examples.

Properties, over any price list, order, time and promo: the total is the sum of the counted lines; nothing is
negative; an included tax is inside the total (the same order without the tax costs the same) and an added tax is
on top (it costs exactly the tax more); every line is its exact amount rounded half-even once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import limits
from engine.catalog import pricing
from engine.catalog.pricing import (
    Fee,
    Item,
    LineKind,
    PriceList,
    PriceTier,
    Promo,
    PromoInvalid,
    Tax,
    TypePrice,
    Usage,
    promo_refusal,
    quote,
    round_half_even,
    unit_price,
)
from engine.catalog.rules import EventDefinition, Price, TicketType, event_problems

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
CODES = ("GA", "VIP", "SEAT", "KIDS")


# ---- strategies ---------------------------------------------------------------------------------------------------

amounts = st.one_of(st.integers(0, 100_000), st.integers(0, limits.price_minor_max))
bps = st.integers(0, pricing.bp_per_whole)


@st.composite
def type_prices(draw: st.DrawFn, code: str) -> TypePrice:
    offsets = sorted(draw(st.sets(st.integers(-100, 100), max_size=pricing.price_tiers_per_type_max)))
    tiers = tuple(PriceTier(NOW + timedelta(days=d), draw(amounts), "ZAR") for d in offsets)
    return TypePrice(code, draw(amounts), tiers)


@st.composite
def fees(draw: st.DrawFn) -> tuple[Fee, ...]:
    count = draw(st.integers(0, 3))
    made = []
    for k in range(count):
        per = draw(st.sampled_from(["ticket", "order"]))
        if draw(st.booleans()):
            made.append(Fee(f"F{k}", per, amount_minor=draw(st.integers(0, 10_000))))
        else:
            made.append(Fee(f"F{k}", per, percent_bp=draw(bps)))
    return tuple(made)


@st.composite
def price_lists(draw: st.DrawFn) -> PriceList:
    codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=4, unique=True))
    types = {code: draw(type_prices(code)) for code in codes}
    tax = draw(st.none() | st.builds(Tax, st.just("VAT"), bps, st.booleans()))
    return PriceList("ZAR", MappingProxyType(types), draw(fees()), tax, version=draw(st.integers(0, 10)))


@st.composite
def promos(draw: st.DrawFn, codes: list[str]) -> Promo:
    types = draw(st.none() | st.lists(st.sampled_from(codes), min_size=1, unique=True).map(tuple))
    if draw(st.booleans()):
        return Promo("P", percent_off_bp=draw(st.integers(1, pricing.bp_per_whole)), ticket_types=types)
    return Promo("P", amount_off_minor=draw(st.integers(1, limits.price_minor_max)), ticket_types=types)


@st.composite
def orders(draw: st.DrawFn) -> tuple[PriceList, list[Item], datetime, Promo | None]:
    prices = draw(price_lists())
    codes = list(prices.ticket_types)
    chosen = draw(st.lists(st.sampled_from(codes), min_size=1, unique=True))
    items = [Item(code, draw(st.integers(1, limits.quantity_per_hold_max))) for code in chosen]
    now = NOW + timedelta(days=draw(st.integers(-120, 120)), seconds=draw(st.integers(0, 86_399)))
    promo = draw(st.none() | promos(codes))
    return prices, items, now, promo


# ---- properties ---------------------------------------------------------------------------------------------------


@settings(max_examples=300)
@given(orders())
def test_the_total_is_the_sum_of_the_counted_lines_and_nothing_is_negative(
    order: tuple[PriceList, list[Item], datetime, Promo | None],
) -> None:
    prices, items, now, promo = order
    q = quote(prices, items, now, promo)
    assert q.total_minor == sum(line.amount_minor for line in q.lines if line.counted)
    tax_added = 0 if prices.tax is None or prices.tax.included else q.tax_minor
    assert q.total_minor == q.subtotal_minor - q.discount_minor + q.fees_minor + tax_added
    assert min(q.total_minor, q.subtotal_minor, q.discount_minor, q.fees_minor, q.tax_minor) >= 0
    assert q.discount_minor <= q.subtotal_minor
    for line in q.lines:
        assert (line.amount_minor <= 0) if line.kind == LineKind.DISCOUNT else (line.amount_minor >= 0)
        assert line.counted or (line.kind == LineKind.TAX and prices.tax is not None and prices.tax.included)
    kinds = [LineKind.TICKET, LineKind.DISCOUNT, LineKind.FEE, LineKind.TAX]
    ranks = [kinds.index(LineKind(line.kind)) for line in q.lines]
    assert ranks == sorted(ranks)
    assert sum(line.amount_minor for line in q.lines if line.kind == LineKind.TICKET) == q.subtotal_minor
    assert q.currency == "ZAR" and q.price_list_version == prices.version


@settings(max_examples=300)
@given(orders(), bps)
def test_an_included_tax_is_inside_the_total_and_an_added_one_on_top(
    order: tuple[PriceList, list[Item], datetime, Promo | None], rate_bp: int
) -> None:
    prices, items, now, promo = order
    untaxed = quote(replace(prices, tax=None), items, now, promo)
    included = quote(replace(prices, tax=Tax("VAT", rate_bp, True)), items, now, promo)
    added = quote(replace(prices, tax=Tax("VAT", rate_bp, False)), items, now, promo)
    base = untaxed.subtotal_minor - untaxed.discount_minor + untaxed.fees_minor
    assert untaxed.total_minor == base and untaxed.tax_minor == 0
    # Included: the buyer pays the same; the tax line names the part of it that is tax.
    assert included.total_minor == untaxed.total_minor
    assert included.tax_minor == round(Fraction(base * rate_bp, pricing.bp_per_whole + rate_bp))
    assert 0 <= included.tax_minor <= included.total_minor
    # Added: the buyer pays exactly the tax more.
    assert added.total_minor == untaxed.total_minor + added.tax_minor
    assert added.tax_minor == round(Fraction(base * rate_bp, pricing.bp_per_whole))
    assert added.tax_minor >= included.tax_minor


@settings(max_examples=300)
@given(orders())
def test_every_line_is_its_exact_amount_rounded_half_even_once(
    order: tuple[PriceList, list[Item], datetime, Promo | None],
) -> None:
    """Python's round() of a Fraction is half-even: the reference for each line."""
    prices, items, now, promo = order
    q = quote(prices, items, now, promo)
    tickets = {line.code: line for line in q.lines if line.kind == LineKind.TICKET}
    for item in items:
        assert tickets[item.ticket_type].amount_minor == unit_price(prices.ticket_types[item.ticket_type], now) * (
            item.quantity
        )
    discounts = [line for line in q.lines if line.kind == LineKind.DISCOUNT]
    if promo is not None and promo.percent_off_bp is not None:
        eligible = [line for line in tickets.values() if promo.covers(line.code)]
        assert [-d.amount_minor for d in discounts] == [
            round(Fraction(line.amount_minor * promo.percent_off_bp, pricing.bp_per_whole)) for line in eligible
        ]
    if promo is not None and promo.amount_off_minor is not None:
        eligible_total = sum(line.amount_minor for line in tickets.values() if promo.covers(line.code))
        assert [-d.amount_minor for d in discounts] == [min(promo.amount_off_minor, eligible_total)]
    net = q.subtotal_minor - q.discount_minor
    count = sum(item.quantity for item in items)
    fee_lines = [line for line in q.lines if line.kind == LineKind.FEE]
    assert len(fee_lines) == len(prices.fees)
    for fee, line in zip(prices.fees, fee_lines, strict=True):
        if fee.percent_bp is not None:
            assert line.amount_minor == round(Fraction(net * fee.percent_bp, pricing.bp_per_whole))
        else:
            assert line.amount_minor == (fee.amount_minor or 0) * (count if fee.per == "ticket" else 1)


@given(st.integers(-(10**18), 10**18), st.integers(1, 10**6))
def test_round_half_even_is_the_nearest_integer_ties_to_even(numerator: int, denominator: int) -> None:
    rounded = round_half_even(numerator, denominator)
    exact = Fraction(numerator, denominator)
    assert rounded == round(exact)
    assert abs(exact - rounded) <= Fraction(1, 2)
    if abs(exact - rounded) == Fraction(1, 2):
        assert rounded % 2 == 0


@given(type_prices("GA"), st.integers(-200, 200))
def test_the_first_tier_still_ahead_applies(price: TypePrice, days: int) -> None:
    now = NOW + timedelta(days=days)
    ahead = [t for t in price.tiers if now < t.until]
    assert unit_price(price, now) == (ahead[0].amount_minor if ahead else price.amount_minor)


# ---- examples -------------------------------------------------------------------------------------------------


def _prices(**changes: object) -> PriceList:
    base = PriceList(
        "ZAR",
        MappingProxyType(
            {
                "GA": TypePrice("GA", 15_000, (PriceTier(NOW + timedelta(days=1), 12_000, "ZAR"),)),
                "VIP": TypePrice("VIP", 30_000),
            }
        ),
        fees=(Fee("BOOKING", "ticket", amount_minor=500), Fee("SERVICE", "order", percent_bp=250)),
        tax=Tax("VAT", 1_500, True),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_worked_example() -> None:
    ten_off_vip = Promo("TEN", percent_off_bp=1_000, ticket_types=("VIP",))
    q = quote(_prices(), [Item("GA", 2), Item("VIP", 1)], NOW, ten_off_vip)
    assert [(line.kind, line.code, line.quantity, line.amount_minor) for line in q.lines] == [
        ("ticket", "GA", 2, 24_000),  # the early-bird tier: 120.00 until tomorrow
        ("ticket", "VIP", 1, 30_000),
        ("discount", "TEN", 1, -3_000),  # 10 % off the VIP line only
        ("fee", "BOOKING", 3, 1_500),  # 5.00 a ticket
        ("fee", "SERVICE", 1, 1_275),  # 2.5 % of 510.00 net
        ("tax", "VAT", 1, 7_014),  # 537.75 x 15/115 = 70.1413... inside the price
    ]
    assert (q.subtotal_minor, q.discount_minor, q.fees_minor, q.tax_minor, q.total_minor) == (
        54_000, 3_000, 2_775, 7_014, 53_775,
    )
    later = quote(_prices(), [Item("GA", 1)], NOW + timedelta(days=2))
    assert later.lines[0].amount_minor == 15_000  # the tier has passed


def test_rounding_ties_go_to_the_even_minor_unit() -> None:
    # 2.5 % of 1.00 is 0.025 -> 0.02 (2 is even); 2.5 % of 3.00 is 0.075 -> 0.08; 50 % of 0.05 is 0.025 -> 0.02.
    prices = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 100)}), fees=(Fee("S", "order", percent_bp=250),))
    assert quote(prices, [Item("GA", 1)], NOW).fees_minor == 2
    assert quote(prices, [Item("GA", 3)], NOW).fees_minor == 8
    half = Promo("HALF", percent_off_bp=5_000)
    cheap = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 5)}))
    assert quote(cheap, [Item("GA", 1)], NOW, half).discount_minor == 2
    assert quote(cheap, [Item("GA", 3)], NOW, half).discount_minor == 8  # 7.5 -> 8


def test_an_amount_off_never_makes_the_order_negative() -> None:
    prices = _prices(fees=(), tax=None)
    q = quote(prices, [Item("VIP", 1)], NOW, Promo("BIG", amount_off_minor=10**9))
    assert (q.discount_minor, q.total_minor) == (30_000, 0)
    only_vip = Promo("V", amount_off_minor=10**9, ticket_types=("VIP",))
    q = quote(prices, [Item("GA", 1), Item("VIP", 1)], NOW, only_vip)
    assert (q.discount_minor, q.total_minor) == (30_000, 12_000)


def test_promo_refusals() -> None:
    items = [Item("GA", 1)]
    window = Promo("W", percent_off_bp=1, valid_from=NOW, valid_until=NOW + timedelta(hours=1), max_uses=2,
                   max_uses_per_buyer=1)
    assert promo_refusal(None, NOW, items, None) is PromoInvalid.UNKNOWN
    assert promo_refusal(window, NOW - timedelta(seconds=1), items, None) is PromoInvalid.NOT_YET_VALID
    assert promo_refusal(window, NOW + timedelta(hours=1), items, None) is PromoInvalid.EXPIRED
    assert promo_refusal(window, NOW, items, Usage(2, 0)) is PromoInvalid.USED_UP
    assert promo_refusal(window, NOW, items, Usage(1, 1)) is PromoInvalid.BUYER_LIMIT_REACHED
    assert promo_refusal(window, NOW, items, Usage(1, 0)) is None
    assert promo_refusal(window, NOW, items, None) is None  # counts unknown here: the take decides
    vip_only = replace(window, ticket_types=("VIP",))
    assert promo_refusal(vip_only, NOW, items, None) is PromoInvalid.NOT_APPLICABLE


def _fields(problems: list[tuple[str, str]]) -> set[str]:
    return {f for f, _ in problems}


def test_promo_rules() -> None:
    good = Promo("SUMMER", percent_off_bp=1_000, ticket_types=("GA",))
    assert pricing.promo_problems(good, ["GA"]) == []
    both = Promo("X", percent_off_bp=1, amount_off_minor=1)
    assert _fields(pricing.promo_problems(both, None)) == {"percent_off_bp"}
    assert _fields(pricing.promo_problems(Promo("X"), None)) == {"percent_off_bp"}
    backwards = replace(good, valid_from=NOW, valid_until=NOW - timedelta(seconds=1))
    assert _fields(pricing.promo_problems(backwards, ["GA"])) == {"valid_until"}
    strangers = replace(good, ticket_types=("GA", "NOPE", "GA"))
    assert _fields(pricing.promo_problems(strangers, ["GA"])) == {"ticket_types.1", "ticket_types.2"}
    assert pricing.promo_problems(strangers, None) == [("ticket_types.2", "repeats a ticket type")]


def _event(types: tuple[TicketType, ...], **changes: object) -> EventDefinition:
    base = EventDefinition("E", NOW, 600, 10, None, types)
    return replace(base, **changes)  # type: ignore[arg-type]


def test_event_price_rules_are_reported_all_at_once() -> None:
    tier = PriceTier(NOW + timedelta(days=2), 100, "ZAR")
    later = replace(tier, until=NOW + timedelta(days=1))
    ga = TicketType("GA", "ga", 10, Price(1_000, "ZAR"), price_tiers=(tier, later))
    vip = TicketType("VIP", "ga", 10, Price(2_000, "USD"), price_tiers=(replace(tier, currency="EUR"),))
    definition = _event(
        (ga, vip),
        fees=(Fee("F", "ticket"), Fee("F", "order", amount_minor=1), Fee("G", "weekly", percent_bp=10_001)),
        tax=Tax("VAT", 10_001, False),
    )
    assert {p.field for p in event_problems(definition)} == {
        "ticket_types.0.price_tiers.1.until",  # not after the tier before
        "ticket_types.1.price.currency",  # one currency per event
        "ticket_types.1.price_tiers.0.price.currency",
        "fees.0",  # neither amount nor percent
        "fees.1.code",  # repeated
        "fees.2.per",
        "fees.2.percent_bp",
        "tax.rate_bp",
    }
    assert event_problems(_event((replace(ga, price_tiers=(tier,)),), fees=(Fee("F", "order", percent_bp=5),))) == []


@pytest.mark.parametrize("numerator,denominator,expected", [(5, 2, 2), (7, 2, 4), (-5, 2, -2), (1, 3, 0), (2, 3, 1)])
def test_round_half_even_examples(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_even(numerator, denominator) == expected
