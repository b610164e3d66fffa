"""engine/catalog/price_changes.py: a change of an event's prices after its creation is held to the creation's rules.

Properties (Hypothesis), over any valid price list and any change, valid or not: a change the rules accept leads to
a list the creation rules accept too (so no change can bring in what creating the event refuses); a price in
another currency than the event's is always refused; applying a change touches only what it names; a change
naming the stored values changes nothing. Then worked examples: every problem at once, with the body's paths.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import limits
from engine.catalog import pricing
from engine.catalog.price_changes import (
    RulesChange,
    TypePriceChange,
    changes_prices,
    rules_change_problems,
    type_change_problems,
    with_rules_change,
    with_type_change,
)
from engine.catalog.pricing import Fee, PriceList, PriceTier, Tax, TypePrice
from engine.catalog.rules import Price

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
CODES = ("GA", "VIP", "SEAT")
CURRENCIES = ("ZAR", "USD")

# ---- strategies ---------------------------------------------------------------------------------------------------

valid_amounts = st.integers(0, 100_000)
any_amounts = st.one_of(valid_amounts, st.sampled_from([-1, limits.price_minor_max, limits.price_minor_max + 1]))
bps = st.integers(0, pricing.bp_per_whole)


@st.composite
def valid_lists(draw: st.DrawFn) -> PriceList:
    """A price list the creation rules accept."""
    codes = draw(st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True))
    types = {}
    for code in codes:
        offsets = sorted(draw(st.sets(st.integers(-30, 30), max_size=3)))
        tiers = tuple(PriceTier(NOW + timedelta(days=d), draw(valid_amounts), "ZAR") for d in offsets)
        types[code] = TypePrice(code, draw(valid_amounts), tiers)
    fees = tuple(Fee(f"F{k}", "order", amount_minor=draw(valid_amounts)) for k in range(draw(st.integers(0, 2))))
    tax = draw(st.none() | st.builds(Tax, st.just("VAT"), bps, st.booleans()))
    return PriceList("ZAR", MappingProxyType(types), fees, tax, version=draw(st.integers(1, 10)))


@st.composite
def any_tiers(draw: st.DrawFn) -> tuple[PriceTier, ...]:
    """Tiers in any order, currency, amount and number (some past the limit)."""
    count = draw(st.integers(0, pricing.price_tiers_per_type_max + 2))
    return tuple(
        PriceTier(
            NOW + timedelta(days=draw(st.integers(-5, 5))), draw(any_amounts), draw(st.sampled_from(CURRENCIES))
        )
        for _ in range(count)
    )


@st.composite
def type_changes(draw: st.DrawFn, prices: PriceList) -> TypePriceChange:
    code = draw(st.sampled_from(list(prices.ticket_types)))
    price = draw(st.none() | st.builds(Price, any_amounts, st.sampled_from(CURRENCIES)))
    return TypePriceChange(code, price=price, tiers=draw(st.none() | any_tiers()))


@st.composite
def any_fees(draw: st.DrawFn) -> tuple[Fee, ...]:
    count = draw(st.integers(0, pricing.fees_per_event_max + 1))
    made = []
    for _ in range(count):
        code = draw(st.sampled_from(["A", "B", "C", "", "X" * (limits.label_chars_max + 1)]))
        per = draw(st.sampled_from(["ticket", "order", "week"]))
        amount = draw(st.none() | any_amounts)
        percent = draw(st.none() | st.integers(-1, pricing.bp_per_whole + 1))
        made.append(Fee(code, per, amount, percent))
    return tuple(made)


def creation_problems(prices: PriceList) -> list[pricing.FieldProblem]:
    """What creating an event with these prices would be refused for (engine/catalog/rules.py's price rules)."""
    rules = [pricing.TypeRules(t.code, prices.currency, t.tiers) for t in prices.ticket_types.values()]
    problems = pricing.price_rule_problems(rules, prices.fees, prices.tax)
    problems += [
        (f"{t.code}.price.amount_minor", "out of bounds")
        for t in prices.ticket_types.values()
        if not 0 <= t.amount_minor <= limits.price_minor_max
    ]
    return problems


# ---- properties ---------------------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.data())
def test_an_accepted_type_change_leaves_a_list_the_creation_rules_accept(data: st.DataObject) -> None:
    prices = data.draw(valid_lists())
    assert creation_problems(prices) == []
    change = data.draw(type_changes(prices))
    problems = type_change_problems(prices, change)
    after = with_type_change(prices, change)
    if not problems:
        assert creation_problems(after) == []
    if creation_problems(after):
        assert problems
    if change.price is not None and change.price.currency != prices.currency:
        assert ("price.currency", "an event has one currency (ZAR)") in problems
    for field, _ in problems:
        assert field.split(".")[0] in ("price", "price_tiers"), field


@settings(max_examples=300)
@given(st.data())
def test_a_type_change_touches_only_what_it_names(data: st.DataObject) -> None:
    prices = data.draw(valid_lists())
    change = data.draw(type_changes(prices))
    after = with_type_change(prices, change)
    assert list(after.ticket_types) == list(prices.ticket_types)  # each type keeps its place
    assert (after.fees, after.tax, after.currency, after.version, after.promos) == (
        prices.fees, prices.tax, prices.currency, prices.version, prices.promos,
    )
    for code, before in prices.ticket_types.items():
        changed = after.ticket_types[code]
        if code != change.code:
            assert changed == before
            continue
        expected_amount = before.amount_minor if change.price is None else change.price.amount_minor
        assert changed.amount_minor == expected_amount
        assert changed.tiers == (before.tiers if change.tiers is None else change.tiers)
    assert changes_prices(prices, after) == (after.ticket_types[change.code] != prices.ticket_types[change.code])


@settings(max_examples=300)
@given(st.data())
def test_an_accepted_rules_change_leaves_a_list_the_creation_rules_accept(data: st.DataObject) -> None:
    prices = data.draw(valid_lists())
    tax_given = data.draw(st.booleans())
    tax = data.draw(st.none() | st.builds(Tax, st.sampled_from(["VAT", ""]), st.integers(-1, 10_001), st.booleans()))
    change = RulesChange(data.draw(st.none() | any_fees()), tax_given, tax)
    problems = rules_change_problems(change)
    after = with_rules_change(prices, change)
    assert (not problems) == (not creation_problems(after))
    assert after.ticket_types == prices.ticket_types
    assert after.fees == (prices.fees if change.fees is None else change.fees)
    assert after.tax == (tax if tax_given else prices.tax)
    for field, _ in problems:
        assert field.split(".")[0] in ("fees", "tax"), field


@given(valid_lists())
def test_naming_the_stored_values_changes_nothing(prices: PriceList) -> None:
    for code, stored in prices.ticket_types.items():
        same = TypePriceChange(code, Price(stored.amount_minor, prices.currency), stored.tiers)
        assert type_change_problems(prices, same) == []
        assert not changes_prices(prices, with_type_change(prices, same))
    same_rules = RulesChange(prices.fees, True, prices.tax)
    assert rules_change_problems(same_rules) == []
    assert not changes_prices(prices, with_rules_change(prices, same_rules))
    assert TypePriceChange("GA").empty and RulesChange().empty and not RulesChange(tax_given=True).empty


# ---- worked examples ----------------------------------------------------------------------------------------------

FAR = datetime(2099, 1, 1, tzinfo=UTC)
LIST = PriceList(
    "ZAR",
    MappingProxyType({
        "GA": TypePrice("GA", 15_000, (PriceTier(FAR, 12_000, "ZAR"),)),
        "VIP": TypePrice("VIP", 50_000),
    }),
    (Fee("BOOKING", "ticket", amount_minor=500),),
    Tax("VAT", 1_500, False),
    version=3,
)


def _fields(problems: list[pricing.FieldProblem]) -> set[str]:
    return {field for field, _ in problems}


def test_a_new_price_and_tiers_are_checked_all_at_once() -> None:
    change = TypePriceChange(
        "GA",
        price=Price(10_000, "USD"),
        tiers=(
            PriceTier(FAR, 9_000, "ZAR"),
            PriceTier(FAR - timedelta(days=1), 8_000, "ZAR"),  # not later than the tier before it
            PriceTier(FAR + timedelta(days=1), limits.price_minor_max + 1, "EUR"),
            PriceTier(datetime(2099, 2, 1), 1, "ZAR"),  # no time zone
        ),
    )
    assert _fields(type_change_problems(LIST, change)) == {
        "price.currency",
        "price_tiers.1.until",
        "price_tiers.2.price.amount_minor",
        "price_tiers.2.price.currency",
        "price_tiers.3.until",
    }


def test_an_event_with_one_type_keeps_its_currency_too() -> None:
    alone = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 100)}))
    assert type_change_problems(alone, TypePriceChange("GA", price=Price(100, "USD"))) == [
        ("price.currency", "an event has one currency (ZAR)")
    ]


def test_too_many_tiers_and_removing_them() -> None:
    many = tuple(PriceTier(FAR + timedelta(days=d), 1, "ZAR") for d in range(pricing.price_tiers_per_type_max + 1))
    assert _fields(type_change_problems(LIST, TypePriceChange("GA", tiers=many))) == {"price_tiers"}
    removed = with_type_change(LIST, TypePriceChange("GA", tiers=()))
    assert removed.ticket_types["GA"] == TypePrice("GA", 15_000, ())
    assert changes_prices(LIST, removed)
    repriced = with_type_change(LIST, TypePriceChange("VIP", price=Price(45_000, "ZAR")))
    assert repriced.ticket_types["VIP"].amount_minor == 45_000
    assert repriced.ticket_types["GA"] == LIST.ticket_types["GA"]


def test_new_fees_and_tax_are_checked_all_at_once() -> None:
    change = RulesChange(
        fees=(
            Fee("BOOKING", "week", amount_minor=1, percent_bp=1),
            Fee("BOOKING", "order", percent_bp=pricing.bp_per_whole + 1),
        ),
        tax_given=True,
        tax=Tax("", -1, True),
    )
    assert _fields(rules_change_problems(change)) == {
        "fees.0", "fees.0.per", "fees.1.code", "fees.1.percent_bp", "tax.code", "tax.rate_bp",
    }
    eleven = tuple(Fee(f"F{k}", "order", amount_minor=1) for k in range(pricing.fees_per_event_max + 1))
    assert _fields(rules_change_problems(RulesChange(fees=eleven))) == {"fees"}


def test_fees_and_tax_are_replaced_or_removed() -> None:
    assert with_rules_change(LIST, RulesChange(fees=())).fees == ()
    assert with_rules_change(LIST, RulesChange(tax_given=True)).tax is None
    assert with_rules_change(LIST, RulesChange(fees=())).tax == LIST.tax  # not named: unchanged
    kept = with_rules_change(LIST, RulesChange(tax_given=False, tax=None))
    assert kept.tax == LIST.tax and not changes_prices(LIST, kept)
    assert rules_change_problems(RulesChange(tax_given=True)) == []  # removing the tax breaks nothing
