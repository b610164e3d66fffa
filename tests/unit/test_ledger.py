"""engine/ledger: the rules of a transaction, the accounts' sides, each flow against an independent reference,
a worked example in minor units, and (Hypothesis) the refund rounding rule over any quote and any sequence of
partial refunds. The stateful test over random flows is tests/unit/test_ledger_machine.py."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from fractions import Fraction
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.catalog import pricing
from engine.catalog.pricing import Fee, Item, LineKind, PriceList, Promo, Quote, Tax, TypePrice
from engine.ledger import book, flows
from engine.ledger.accounts import (
    MAY_GO_AGAINST_NORMAL,
    NORMAL_SIDE,
    Account,
    Side,
    TransactionKind,
    against_normal,
    held_at_provider,
    payable_minor,
)
from engine.ledger.book import Entry, SignViolation, Transaction, UnbalancedTransaction, post, trial_balance
from engine.refusals import Refusal, Refused

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
A = Account


class Ids:
    """Transaction ids and sources, as the shell would draw them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> dict[str, str]:
        self.n += 1
        return {"transaction_id": f"ltx_{self.n:032x}", "source": f"test:{self.n}"}


# ---- strategies ---------------------------------------------------------------------------------------------------

bps = st.integers(0, pricing.bp_per_whole)


@st.composite
def quotes(draw: st.DrawFn, currency: str = "ZAR") -> Quote:
    """A quote from a random price list, order and promo, computed by the pricing core itself."""
    codes = draw(st.lists(st.sampled_from(("GA", "VIP", "KIDS")), min_size=1, max_size=3, unique=True))
    # small prices and deep discounts too: where rounding a minor unit matters most
    prices = {code: TypePrice(code, draw(st.one_of(st.just(0), st.integers(0, 3_000), st.integers(0, 60_000))))
              for code in codes}
    fee_list = []
    for k in range(draw(st.integers(0, 2))):
        per = draw(st.sampled_from(("ticket", "order")))
        if draw(st.booleans()):
            fee_list.append(Fee(f"F{k}", per, amount_minor=draw(st.integers(0, 5_000))))
        else:
            fee_list.append(Fee(f"F{k}", per, percent_bp=draw(bps)))
    tax = draw(st.one_of(st.none(), st.builds(Tax, st.just("VAT"), bps, st.booleans())))
    promo = draw(st.one_of(
        st.none(),
        st.builds(Promo, st.just("P"), percent_off_bp=st.one_of(st.integers(1, pricing.bp_per_whole),
                                                                st.integers(9_900, pricing.bp_per_whole))),
        st.builds(Promo, st.just("P"), amount_off_minor=st.integers(1, 100_000)),
    ))
    price_list = PriceList(currency, MappingProxyType(prices), tuple(fee_list), tax)
    items = [Item(code, draw(st.integers(1, 4))) for code in codes]
    return pricing.quote(price_list, items, NOW, promo)


def refund_sequences(quote: Quote) -> st.SearchStrategy[list[dict[str, int]]]:
    """A random split of all of an order's tickets into successive refunds (each of at least one ticket)."""
    tickets = [code for line in quote.lines if line.kind == LineKind.TICKET for code in [line.code] * line.quantity]

    @st.composite
    def split(draw: st.DrawFn) -> list[dict[str, int]]:
        order = draw(st.permutations(tickets))
        cuts = sorted(draw(st.sets(st.integers(1, len(order) - 1), max_size=len(order) - 1))) if len(order) > 1 else []
        bounds = [0, *cuts, len(order)]
        refunds = []
        for lo, hi in itertools.pairwise(bounds):
            chunk: dict[str, int] = {}
            for code in order[lo:hi]:
                chunk[code] = chunk.get(code, 0) + 1
            refunds.append(chunk)
        return refunds

    return split()


# ---- transactions --------------------------------------------------------------------------------------------


def _txn(*entries: tuple[Account, str, int], kind: TransactionKind = TransactionKind.PAYOUT,
         corrects: str | None = None) -> Transaction:
    return Transaction("ltx_" + "a" * 32, kind, "test", tuple(Entry(a, c, m) for a, c, m in entries),
                       corrects=corrects)


def test_a_balanced_transaction_is_accepted_per_currency() -> None:
    txn = _txn((A.ORGANIZER_PAYABLE, "ZAR", 100), (A.PAYOUTS, "ZAR", -100),
               (A.ORGANIZER_PAYABLE, "USD", 5), (A.PAYOUTS, "USD", -5))
    assert txn.currencies() == ("USD", "ZAR")


@pytest.mark.parametrize(
    ("entries", "problem"),
    [
        (((A.ORGANIZER_PAYABLE, "ZAR", 100), (A.PAYOUTS, "ZAR", -99)), "sum to 1"),
        # balanced in total, not per currency
        (((A.ORGANIZER_PAYABLE, "ZAR", 100), (A.PAYOUTS, "USD", -100)), "sum to"),
        (((A.ORGANIZER_PAYABLE, "ZAR", 0), (A.PAYOUTS, "ZAR", 0)), "non-zero"),
        (((A.ORGANIZER_PAYABLE, "ZAR", 100),), "2..32 entries"),
        (((A.ORGANIZER_PAYABLE, "zar", 1), (A.PAYOUTS, "zar", -1)), "three capital letters"),
        (((A.ORGANIZER_PAYABLE, "ZAR", 1.0), (A.PAYOUTS, "ZAR", -1.0)), "integer minor units"),
        (((A.ORGANIZER_PAYABLE, "ZAR", 10**16), (A.PAYOUTS, "ZAR", -(10**16))), "at most"),
    ],
)
def test_a_transaction_breaking_a_rule_is_never_built(entries: tuple, problem: str) -> None:
    with pytest.raises(UnbalancedTransaction, match=problem):
        _txn(*entries)


def test_a_transaction_needs_a_well_formed_id_and_a_source() -> None:
    entries = (Entry(A.ORGANIZER_PAYABLE, "ZAR", 1), Entry(A.PAYOUTS, "ZAR", -1))
    with pytest.raises(UnbalancedTransaction, match="the id"):
        Transaction("ltx_1", TransactionKind.PAYOUT, "s", entries)
    with pytest.raises(UnbalancedTransaction, match="the source"):
        Transaction("ltx_" + "a" * 32, TransactionKind.PAYOUT, "", entries)
    with pytest.raises(UnbalancedTransaction, match="names the transaction it corrects"):
        Transaction("ltx_" + "a" * 32, TransactionKind.CORRECTION, "s", entries)


def test_the_accounts_sides_are_the_documented_ones() -> None:
    assert {a.value: s.value for a, s in NORMAL_SIDE.items()} == {
        "provider_clearing": "debit", "refunds": "credit", "payouts": "credit", "organizer_revenue": "credit",
        "organizer_payable": "credit", "platform_fees": "credit", "tax_payable": "credit",
    }
    assert {a for a, kinds in MAY_GO_AGAINST_NORMAL.items() if kinds} == {A.ORGANIZER_PAYABLE}
    assert MAY_GO_AGAINST_NORMAL[A.ORGANIZER_PAYABLE] == {TransactionKind.REFUND, TransactionKind.CHARGEBACK}
    assert against_normal(A.PROVIDER_CLEARING, -1) and not against_normal(A.PROVIDER_CLEARING, 0)
    assert against_normal(A.PLATFORM_FEES, 1) and not against_normal(A.PLATFORM_FEES, -1)
    assert NORMAL_SIDE[A.PROVIDER_CLEARING] is Side.DEBIT


def test_post_refuses_a_side_an_account_may_not_take_and_posts_nothing() -> None:
    before = MappingProxyType({("ZAR", A.ORGANIZER_PAYABLE): -50, ("ZAR", A.PAYOUTS): 0})
    over = _txn((A.ORGANIZER_PAYABLE, "ZAR", 60), (A.PAYOUTS, "ZAR", -60))
    with pytest.raises(SignViolation) as raised:
        post(before, over)
    assert raised.value.account is A.ORGANIZER_PAYABLE and raised.value.balance_minor == 10
    assert before[("ZAR", A.ORGANIZER_PAYABLE)] == -50
    # a refund may leave the payable against its side (the organizer owes it); not the platform's fees
    refund = _txn((A.ORGANIZER_PAYABLE, "ZAR", 60), (A.REFUNDS, "ZAR", -60), kind=TransactionKind.REFUND)
    assert post(before, refund)[("ZAR", A.ORGANIZER_PAYABLE)] == 10
    fees = _txn((A.PLATFORM_FEES, "ZAR", 1), (A.REFUNDS, "ZAR", -1), kind=TransactionKind.REFUND)
    with pytest.raises(SignViolation):
        post(before, fees)


def test_moving_back_toward_the_normal_side_is_always_allowed() -> None:
    owing = MappingProxyType({("ZAR", A.ORGANIZER_PAYABLE): 40, ("ZAR", A.ORGANIZER_REVENUE): -100})
    release = _txn((A.ORGANIZER_REVENUE, "ZAR", 30), (A.ORGANIZER_PAYABLE, "ZAR", -30), kind=TransactionKind.RELEASE)
    assert post(owing, release)[("ZAR", A.ORGANIZER_PAYABLE)] == 10


def test_a_correction_is_a_new_transaction_negating_the_original() -> None:
    ids = Ids()
    original = _txn((A.ORGANIZER_PAYABLE, "ZAR", 70), (A.PAYOUTS, "ZAR", -70))
    fixed = book.correction(original, memo="the bank returned the transfer", **ids())
    assert fixed.kind is TransactionKind.CORRECTION and fixed.corrects == original.id and fixed.id != original.id
    assert [e.amount_minor for e in fixed.entries] == [-70, 70]
    assert [e.amount_minor for e in original.entries] == [70, -70]  # untouched
    balances = post(post({("ZAR", A.ORGANIZER_PAYABLE): -70}, original), fixed)
    assert balances[("ZAR", A.ORGANIZER_PAYABLE)] == -70 and balances[("ZAR", A.PAYOUTS)] == 0


# ---- a worked example (docs/architecture.md "Checkout: the ledger") ------------------------------------------------

EXAMPLE_PRICES = PriceList(
    "ZAR",
    MappingProxyType({"GA": TypePrice("GA", 15_000), "VIP": TypePrice("VIP", 40_000)}),
    fees=(Fee("BOOKING", "ticket", amount_minor=1_000),),
    tax=Tax("VAT", 1_500, included=False),
)


def test_the_worked_example() -> None:
    """2 GA at R150 and 1 VIP at R400, 10 % off, R10 booking fee per ticket, 15 % VAT added."""
    ids = Ids()
    quote = pricing.quote(EXAMPLE_PRICES, [Item("GA", 2), Item("VIP", 1)], NOW, Promo("TEN", percent_off_bp=1_000))
    assert (quote.subtotal_minor, quote.discount_minor, quote.fees_minor, quote.tax_minor, quote.total_minor) == (
        70_000, 7_000, 3_000, 9_900, 75_900)
    paid = flows.capture("ord_1", quote, **ids())
    assert paid.transaction is not None
    assert _amounts(paid.transaction) == {
        A.PROVIDER_CLEARING: 75_900, A.ORGANIZER_REVENUE: -63_000, A.PLATFORM_FEES: -3_000, A.TAX_PAYABLE: -9_900}
    balances = post({}, paid.transaction)

    # one GA back: its share of the ticket value is 15,000 / 70,000 = 3/14
    one = flows.refund(paid.money, {"GA": 1}, **ids())
    assert one.transaction is not None
    assert [(line.code, line.amount_minor) for line in one.lines] == [
        ("GA", 15_000), ("VIP", 0), ("TEN", -1_500), ("TEN", 0), ("BOOKING", 643), ("VAT", 2_121)]
    # the 10 % off goes back with its own line's tickets (half the GA one); the fee 3,000 x 3/14 = 642.86 -> 643;
    # VAT 9,900 x 3/14 = 2,121.43 -> 2,121
    assert _amounts(one.transaction) == {
        A.REFUNDS: -16_264, A.ORGANIZER_REVENUE: 13_500, A.PLATFORM_FEES: 643, A.TAX_PAYABLE: 2_121}
    balances = post(balances, one.transaction)

    released = flows.release(one.money, **ids())
    assert released.transaction is not None
    assert _amounts(released.transaction) == {A.ORGANIZER_REVENUE: 49_500, A.ORGANIZER_PAYABLE: -49_500}
    balances = post(balances, released.transaction)
    with pytest.raises(Refused) as too_much:
        flows.payout(balances, "ZAR", 49_501, **ids())
    assert too_much.value.refusal is Refusal.PAYOUT_EXCEEDS_PAYABLE
    assert too_much.value.details["available_minor"] == 49_500
    balances = post(balances, flows.payout(balances, "ZAR", 40_000, **ids()))

    # the rest back: exactly what is left of every line (the remainder rule)
    rest = flows.refund_all(released.money, **ids())
    assert rest.transaction is not None
    assert _amounts(rest.transaction) == {
        A.REFUNDS: -59_636, A.ORGANIZER_PAYABLE: 49_500, A.PLATFORM_FEES: 2_357, A.TAX_PAYABLE: 7_779}
    balances = post(balances, rest.transaction)
    assert dict(_nonzero(balances)) == {
        ("ZAR", A.PROVIDER_CLEARING): 75_900, ("ZAR", A.REFUNDS): -75_900, ("ZAR", A.PAYOUTS): -40_000,
        ("ZAR", A.ORGANIZER_PAYABLE): 40_000,  # paid out, then refunded: the organizer owes R400
    }
    assert trial_balance(balances) == {"ZAR": 0}
    assert held_at_provider(_of(balances, "ZAR")) == -40_000
    assert payable_minor(_of(balances, "ZAR")) == 0


def test_included_tax_is_split_between_the_tickets_and_the_fees() -> None:
    prices = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 11_500)}),
                       fees=(Fee("BOOKING", "order", amount_minor=2_300),), tax=Tax("VAT", 1_500, included=True))
    quote = pricing.quote(prices, [Item("GA", 1)], NOW)
    assert (quote.total_minor, quote.tax_minor) == (13_800, 1_800)  # 13,800 x 15/115
    paid = flows.capture("ord_1", quote, release=True, **Ids()())
    assert paid.transaction is not None
    # the tax inside the fee: 1,800 x 2,300 / 13,800 = 300
    assert _amounts(paid.transaction) == {
        A.PROVIDER_CLEARING: 13_800, A.ORGANIZER_PAYABLE: -10_000, A.PLATFORM_FEES: -2_000, A.TAX_PAYABLE: -1_800}


def test_free_tickets_move_no_money() -> None:
    prices = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 0)}))
    quote = pricing.quote(prices, [Item("GA", 2)], NOW)
    paid = flows.capture("ord_1", quote, **Ids()())
    assert paid.transaction is None
    back = flows.refund(paid.money, {"GA": 1}, **Ids()())
    assert back.transaction is None and back.money.remaining() == {"GA": 1}


def test_a_refund_beyond_the_tickets_left_or_of_a_closed_order_is_a_programming_error() -> None:
    ids = Ids()
    quote = pricing.quote(EXAMPLE_PRICES, [Item("GA", 2)], NOW)
    paid = flows.capture("ord_1", quote, **ids())
    with pytest.raises(ValueError, match="left to refund"):
        flows.refund(paid.money, {"GA": 3}, **ids())
    with pytest.raises(ValueError, match="left to refund"):
        flows.refund(paid.money, {"VIP": 1}, **ids())
    gone = flows.chargeback(paid.money, **ids())
    assert gone.money.closed and gone.transaction is not None
    assert gone.transaction.kind is TransactionKind.CHARGEBACK
    with pytest.raises(ValueError, match="closed"):
        flows.refund(gone.money, {}, **ids())


def test_release_held_moves_what_the_orders_entries_leave_held_as_release_does() -> None:
    """The shell's release (from the order's stored entries) posts what ``release`` (from its OrderMoney) would:
    after a capture, after a partial refund, and nothing after a full refund or for a free order."""
    ids = Ids()

    def next_ids() -> tuple[str, str]:
        drawn = ids()
        return drawn["transaction_id"], drawn["source"]

    quote = pricing.quote(EXAMPLE_PRICES, [Item("GA", 2), Item("VIP", 1)], NOW, Promo("TEN", percent_off_bp=1_000))
    tid, src = next_ids()
    paid = flows.capture("ord_1", quote, transaction_id=tid, source=src)
    assert paid.transaction is not None
    tid, src = next_ids()
    one = flows.refund(paid.money, {"GA": 1}, transaction_id=tid, source=src)
    assert one.transaction is not None
    for money, entries in ((paid.money, paid.transaction.entries),
                           (one.money, paid.transaction.entries + one.transaction.entries)):
        held = flows.held_revenue_minor(entries, "ZAR")
        assert held == money.left().revenue_minor
        assert flows.held_revenue_minor(entries, "USD") == 0  # another currency's entries are not this one's
        made = flows.release_held("ord_1", "ZAR", held, transaction_id="ltx_" + "a" * 32, source="release:ord_1")
        reference = flows.release(money, transaction_id="ltx_" + "a" * 32, source="release:ord_1").transaction
        assert made == reference
        assert made is not None and made.kind is TransactionKind.RELEASE and made.order_id == "ord_1"
        assert _amounts(made) == {A.ORGANIZER_REVENUE: held, A.ORGANIZER_PAYABLE: -held}
        balances = post(post({}, paid.transaction), made)  # posting it keeps every side
        assert balances[("ZAR", A.ORGANIZER_PAYABLE)] == -held
    tid, src = next_ids()
    everything = flows.refund_all(paid.money, transaction_id=tid, source=src)
    assert everything.transaction is not None
    gone = flows.held_revenue_minor(paid.transaction.entries + everything.transaction.entries, "ZAR")
    assert gone == 0
    tid, src = next_ids()
    assert flows.release_held("ord_1", "ZAR", gone, transaction_id=tid, source=src) is None
    with pytest.raises(ValueError, match="debit side"):
        flows.release_held("ord_1", "ZAR", -1, transaction_id=tid, source=src)


def test_a_payout_of_everything_and_of_nothing() -> None:
    ids = Ids()
    balances = MappingProxyType({("ZAR", A.ORGANIZER_PAYABLE): -1_234, ("USD", A.ORGANIZER_PAYABLE): -5})
    everything = flows.payout(balances, "ZAR", None, **ids())
    assert _amounts(everything) == {A.ORGANIZER_PAYABLE: 1_234, A.PAYOUTS: -1_234}
    after = post(balances, everything)
    with pytest.raises(Refused) as nothing:
        flows.payout(after, "ZAR", None, **ids())
    assert nothing.value.details == {"available_minor": 0, "currency": "ZAR"}
    assert _amounts(flows.payout(after, "USD", 5, **ids())) == {A.ORGANIZER_PAYABLE: 5, A.PAYOUTS: -5}
    with pytest.raises(ValueError):
        flows.payout(after, "USD", 0, **ids())


# ---- the refund rule, over any quote -----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_refunds_are_pro_rata_by_line_and_sum_to_exactly_what_was_paid(data: st.DataObject) -> None:
    quote = data.draw(quotes())
    sequence = data.draw(refund_sequences(quote))
    ids = Ids()
    posting = flows.capture("ord_1", quote, release=data.draw(st.booleans()), **ids())
    balances = post({}, posting.transaction) if posting.transaction else MappingProxyType({})
    money = posting.money
    back_by_line = [0] * len(quote.lines)
    cash_back = 0
    for refund in sequence:
        posting = flows.refund(money, refund, **ids())
        cumulative = {t: money.refunded.get(t, 0) + refund.get(t, 0) for t in money.ticket_counts()}
        for n, (line, refunded) in enumerate(zip(quote.lines, posting.lines, strict=True)):
            back_by_line[n] += refunded.amount_minor
            assert back_by_line[n] == _reference_line(quote, line, cumulative)
            assert abs(back_by_line[n]) <= abs(line.amount_minor)
        assert -posting.amount_minor >= 0  # a refund never takes money from the buyer
        cash_back -= posting.amount_minor
        assert cash_back <= quote.total_minor
        if posting.transaction is not None:
            balances = post(balances, posting.transaction)
        money = posting.money
    # the remainder rule: after the last ticket, every line and the cash are back exactly
    assert back_by_line == [line.amount_minor for line in quote.lines]
    assert cash_back == quote.total_minor
    assert money.left() == flows.Split(0, 0, 0)
    assert _nonzero(balances) == ({} if quote.total_minor == 0 else {
        ("ZAR", A.PROVIDER_CLEARING): quote.total_minor, ("ZAR", A.REFUNDS): -quote.total_minor})


def _reference_line(quote: Quote, line: pricing.Line, refunded: dict[str, int]) -> int:
    """The documented rule, computed independently with fractions: ticket lines and the percent discounts off them
    by their own count, every other line by the refunded share of the ticket value (of the ticket count when
    free), rounded half-even."""
    counts: dict[str, int] = {}
    for ticket in quote.lines:
        if ticket.kind == LineKind.TICKET:
            counts[ticket.code] = ticket.quantity
    if line.kind == LineKind.TICKET:
        return int(Fraction(line.amount_minor * refunded[line.code], line.quantity))
    if line.kind == LineKind.DISCOUNT and line.ticket_type is not None:  # a percent off one ticket line
        return round(Fraction(line.amount_minor * refunded[line.ticket_type], counts[line.ticket_type]))
    if quote.subtotal_minor:
        value = sum(Fraction(t.amount_minor * refunded[t.code], t.quantity)
                    for t in quote.lines if t.kind == LineKind.TICKET)
        share = value / quote.subtotal_minor
    else:
        share = Fraction(sum(refunded.values()), sum(counts.values()))
    return round(line.amount_minor * share)  # round() of a Fraction is half-even


@settings(max_examples=300, deadline=None)
@given(quote=quotes())
def test_a_capture_splits_the_total_into_revenue_fees_and_tax(quote: Quote) -> None:
    posting = flows.capture("ord_1", quote, **Ids()())
    paid = posting.money.paid()
    assert paid.cash_minor == quote.total_minor
    assert paid.tax_minor == quote.tax_minor
    assert min(paid.revenue_minor, paid.fees_minor, paid.tax_minor) >= 0
    tax_added = quote.tax_minor and all(line.counted for line in quote.lines if line.kind == LineKind.TAX)
    if tax_added or quote.tax_minor == 0:
        assert paid.fees_minor == quote.fees_minor
        assert paid.revenue_minor == quote.subtotal_minor - quote.discount_minor
    else:  # included: the tax comes out of both, the fees' share rounded half-even
        base = quote.subtotal_minor - quote.discount_minor + quote.fees_minor
        assert quote.fees_minor - paid.fees_minor == round(Fraction(quote.tax_minor * quote.fees_minor, base))
    if posting.transaction is not None:
        assert trial_balance(post({}, posting.transaction)) == {"ZAR": 0}


# ---- helpers -----------------------------------------------------------------------------------------------------


def _amounts(transaction: Transaction) -> dict[Account, int]:
    return {entry.account: entry.amount_minor for entry in transaction.entries}


def _nonzero(balances: book.Balances) -> dict[tuple[str, Account], int]:
    return {key: value for key, value in balances.items() if value}


def _of(balances: book.Balances, currency: str) -> dict[Account, int]:
    return {account: balance for (c, account), balance in balances.items() if c == currency}


def test_a_nearly_free_order_with_tax_included_keeps_every_account_within_what_it_was_paid() -> None:
    """Found by a random search: 99.94 % off, a fee, 33.18 % VAT included. Rounded on its own, the revenue of two
    refunded tickets came to 2 of the 1 paid; the parts are kept within 0..paid, the cash unchanged."""
    prices = PriceList("ZAR", MappingProxyType({"GA": TypePrice("GA", 211), "VIP": TypePrice("VIP", 1_951)}),
                       fees=(Fee("F", "order", amount_minor=314),), tax=Tax("VAT", 3_318, included=True))
    quote = pricing.quote(prices, [Item("GA", 5), Item("VIP", 1)], NOW, Promo("P", percent_off_bp=9_994))
    ids = Ids()
    for order in (["GA", "VIP", "GA", "GA", "GA", "GA"], ["VIP", "GA", "GA", "GA", "GA", "GA"]):
        money = flows.capture("ord_1", quote, **ids()).money
        paid = money.paid()
        cash = 0
        for ticket_type in order:
            posting = flows.refund(money, {ticket_type: 1}, **ids())
            money = posting.money
            back = money.refunded_so_far()
            assert 0 <= back.revenue_minor <= paid.revenue_minor and 0 <= back.fees_minor <= paid.fees_minor
            assert 0 <= back.tax_minor <= paid.tax_minor
            cash -= posting.amount_minor
            assert back.cash_minor == cash
        assert money.refunded_so_far() == paid and cash == quote.total_minor
