"""The flows of money, as pure functions: each builds one transaction from its inputs and the order's money so
far, and returns the order's money after it. None of them reads a balance but ``payout``.

**Capture.** A payment of a quote's total T posts: debit ``provider_clearing`` T; credit revenue (tickets less
discounts, less the tax inside them when tax is included) to ``organizer_revenue`` (held) or, released at once,
``organizer_payable``; credit the fee lines to ``platform_fees``; credit the tax to ``tax_payable``. Tax added
on top is its own line. Tax included is inside the tickets and fees: its share in the fees is
``round_half_even(tax x fees / (tickets less discounts + fees))`` and the rest is in the tickets.

**Release.** The order's revenue not yet refunded moves from ``organizer_revenue`` to ``organizer_payable``
(``release`` from an ``OrderMoney``; ``release_held`` from what the order's entries leave held). The policy (when)
is the shell's: services/ledger.py releases an order's revenue once its event has started, at the next payout.

**Refund (full, or some tickets).** Pro rata by line, on cumulative amounts. After the refund, ``k_t`` of a ticket
line's ``Q_t`` tickets are refunded in all, and ``s`` is the share of the order's ticket value that is refunded
(sum of ``amount_t x k_t / Q_t`` over the subtotal; by ticket count when the subtotal is 0). Each ticket line has
then refunded ``amount x k_t / Q_t``, as has the percent discount taken off it, and every other line (an amount
off, fees, tax) ``round_half_even(amount x s)``,
the pricing's rounding rule, per line; the tax inside the fees, when included, likewise. This refund is the
difference between those cumulative amounts after and before it. Rounding never accumulates, and the remainder
rule falls out: the refund of the last ticket has ``s = 1`` and returns exactly what is left of every line, so the
refunds of an order sum to what was paid, never more. The refund debits revenue where it sits (held or
payable), fees and tax, and credits ``refunds`` with the cash returned.

**Chargeback.** The buyer's bank takes what is left of the payment back: posted like a refund of every ticket
left, and the order's money is closed (nothing more moves).

**Payout.** Debit ``organizer_payable``, credit ``payouts``: at most what is payable, refused otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from engine.catalog.pricing import LineKind, Quote, round_half_even
from engine.ledger.accounts import Account, TransactionKind, payable_minor
from engine.ledger.book import Balances, Entry, Transaction, entries_of
from engine.refusals import Refusal, Refused


@dataclass(frozen=True, slots=True)
class Split:
    """An amount of an order's money by where it goes; ``cash`` is their sum (what the buyer paid or got back)."""

    revenue_minor: int
    fees_minor: int
    tax_minor: int

    @property
    def cash_minor(self) -> int:
        return self.revenue_minor + self.fees_minor + self.tax_minor

    def minus(self, other: Split) -> Split:
        return Split(self.revenue_minor - other.revenue_minor, self.fees_minor - other.fees_minor,
                     self.tax_minor - other.tax_minor)


@dataclass(frozen=True, slots=True)
class RefundLine:
    """What a refund returns of one quote line (a discount line's is negative; an included tax line is shown,
    not counted, as in the quote)."""

    kind: str  # a pricing.LineKind
    code: str
    amount_minor: int
    counted: bool = True


@dataclass(frozen=True, slots=True)
class OrderMoney:
    """An order's money as the ledger knows it: the quote it was paid with, how many tickets of each type are
    refunded so far, whether its revenue was released to the organizer, whether a chargeback closed it."""

    order_id: str
    quote: Quote
    refunded: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # ticket type -> tickets
    released: bool = False
    closed: bool = False

    @property
    def currency(self) -> str:
        return self.quote.currency

    def ticket_counts(self) -> dict[str, int]:
        return ticket_counts(self.quote)

    def remaining(self) -> dict[str, int]:
        """Ticket type -> tickets not refunded."""
        return {t: n - self.refunded.get(t, 0) for t, n in self.ticket_counts().items()}

    def paid(self) -> Split:
        return split_refunded(self.quote, self.ticket_counts())

    def refunded_so_far(self) -> Split:
        return split_refunded(self.quote, self.refunded)

    def left(self) -> Split:
        """What the order still holds, by account: paid less refunded (zero after a chargeback)."""
        return self.paid().minus(self.refunded_so_far())


@dataclass(frozen=True, slots=True)
class Posting:
    """A flow's outcome: the transaction to post (None when nothing moves: a free ticket, nothing left) and the
    order's money after it."""

    transaction: Transaction | None
    money: OrderMoney
    lines: tuple[RefundLine, ...] = ()  # a refund's or chargeback's lines

    @property
    def amount_minor(self) -> int:
        """The cash the transaction moves to or from the buyer (0 for a release)."""
        if self.transaction is None:
            return 0
        return sum(e.amount_minor for e in self.transaction.entries
                   if e.account in (Account.PROVIDER_CLEARING, Account.REFUNDS))


# ---- the arithmetic -------------------------------------------------------------------------------------------


def ticket_counts(quote: Quote) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in quote.lines:
        if line.kind == LineKind.TICKET:
            counts[line.code] = counts.get(line.code, 0) + line.quantity
    return counts


def _refunded_share(quote: Quote, refunded: Mapping[str, int]) -> tuple[int, int]:
    """The share of the order's tickets refunded, as (numerator, denominator): by value, or by count when the
    tickets are free."""
    counts = ticket_counts(quote)
    if quote.subtotal_minor > 0:
        value = sum(_ticket_line_refunded(line.amount_minor, line.quantity, refunded.get(line.code, 0))
                    for line in quote.lines if line.kind == LineKind.TICKET)
        return value, quote.subtotal_minor
    return sum(refunded.get(t, 0) for t in counts), sum(counts.values())


def _ticket_line_refunded(amount_minor: int, quantity: int, refunded: int) -> int:
    # unit price x quantity, so exact; rounded the house way should a line ever not divide
    return round_half_even(amount_minor * refunded, quantity) if quantity else 0


def refunded_lines(quote: Quote, refunded: Mapping[str, int]) -> tuple[RefundLine, ...]:
    """What each of the quote's lines has returned once ``refunded`` tickets (ticket type -> count, in all) are
    refunded: ticket lines, and the percent discount taken off each, by that line's count; every other line by the
    refunded share of the ticket value; half-even per line."""
    numerator, denominator = _refunded_share(quote, refunded)
    counts = ticket_counts(quote)
    lines = []
    for line in quote.lines:
        if line.kind == LineKind.TICKET:
            amount = _ticket_line_refunded(line.amount_minor, line.quantity, refunded.get(line.code, 0))
        elif line.kind == LineKind.DISCOUNT and line.ticket_type in counts:
            # a percent off one ticket line goes back with that line's tickets
            amount = round_half_even(line.amount_minor * refunded.get(line.ticket_type, 0), counts[line.ticket_type])
        else:
            amount = round_half_even(line.amount_minor * numerator, denominator)
        lines.append(RefundLine(line.kind, line.code, amount, line.counted))
    return tuple(lines)


def split_refunded(quote: Quote, refunded: Mapping[str, int]) -> Split:
    """Where the money of ``refunded`` tickets (in all) sits, by account; with every ticket it is what was paid.

    The cash is the counted lines' refunded amounts. Each account's part is its lines' (with included tax, less the
    tax inside them), rounded on its own; rounding can then put an account a minor unit outside 0..what it was paid
    (a nearly free order with tax included), so the parts are kept within those bounds, the cash unchanged: what
    one account would return beyond its own goes to the next (revenue, then fees, then tax)."""
    return _within(_split_raw(quote, refunded), _split_raw(quote, ticket_counts(quote)))


def _split_raw(quote: Quote, refunded: Mapping[str, int]) -> Split:
    numerator, denominator = _refunded_share(quote, refunded)
    lines = refunded_lines(quote, refunded)
    revenue = sum(x.amount_minor for x in lines if x.kind in (LineKind.TICKET, LineKind.DISCOUNT))
    fees = sum(x.amount_minor for x in lines if x.kind == LineKind.FEE)
    tax = sum(x.amount_minor for x in lines if x.kind == LineKind.TAX)
    if tax and not _tax_added(quote):
        tax_in_fees = round_half_even(_tax_in_fees(quote) * numerator, denominator)
        revenue -= tax - tax_in_fees
        fees -= tax_in_fees
    return Split(revenue, fees, tax)


def _within(raw: Split, paid: Split) -> Split:
    """``raw``'s cash, split so that no account's part leaves 0..its part of ``paid`` (equal to ``raw`` whenever
    ``raw`` already is within them, as the whole payment always is)."""
    cash = raw.cash_minor
    assert 0 <= cash <= paid.cash_minor, "a refund's cash stays within the payment"
    tax = min(max(raw.tax_minor, 0), paid.tax_minor)
    fees = min(max(raw.fees_minor, 0), paid.fees_minor)
    revenue = cash - fees - tax
    if revenue > paid.revenue_minor:
        excess = revenue - paid.revenue_minor
        into_fees = min(excess, paid.fees_minor - fees)
        fees, tax, revenue = fees + into_fees, tax + excess - into_fees, paid.revenue_minor
    elif revenue < 0:
        from_fees = min(-revenue, fees)
        fees, tax, revenue = fees - from_fees, tax + revenue + from_fees, 0
    return Split(revenue, fees, tax)


def _tax_added(quote: Quote) -> bool:
    return all(line.counted for line in quote.lines if line.kind == LineKind.TAX)


def _tax_in_fees(quote: Quote) -> int:
    """The included tax's share inside the fees, of the whole order."""
    base = quote.subtotal_minor - quote.discount_minor + quote.fees_minor
    return round_half_even(quote.tax_minor * quote.fees_minor, base) if base > 0 else 0


def _check_order_money(money: OrderMoney) -> None:
    """The invariants of an order's money, kept on: nothing refunded beyond what was paid, by ticket and by
    account; a closed order holds nothing."""
    counts = money.ticket_counts()
    assert set(money.refunded) <= set(counts), "only the order's ticket types are refunded"
    assert all(0 <= money.refunded[t] <= counts[t] for t in money.refunded), "never more tickets than bought"
    paid, back = money.paid(), money.refunded_so_far()
    assert paid.cash_minor == money.quote.total_minor, "the split of a payment is the payment"
    for name in ("revenue_minor", "fees_minor", "tax_minor"):
        assert getattr(paid, name) >= 0, f"a payment's {name} is >= 0"
        assert 0 <= getattr(back, name) <= getattr(paid, name), f"refunded {name} stays within what was paid"
    assert not money.closed or money.remaining() == {t: 0 for t in counts}


# ---- the flows ------------------------------------------------------------------------------------------------


def capture(
    order_id: str, quote: Quote, *, transaction_id: str, source: str, release: bool = False
) -> Posting:
    """The buyer paid ``quote.total_minor``: post it split into revenue, fees and tax. ``release``: the revenue
    is payable at once (no holding until the event)."""
    money = OrderMoney(order_id, quote, released=release)
    _check_order_money(money)
    paid = money.paid()
    if paid.cash_minor == 0:
        return Posting(None, money)  # free tickets: no money moved
    revenue_account = Account.ORGANIZER_PAYABLE if release else Account.ORGANIZER_REVENUE
    amounts = {
        Account.PROVIDER_CLEARING: paid.cash_minor,
        revenue_account: -paid.revenue_minor,
        Account.PLATFORM_FEES: -paid.fees_minor,
        Account.TAX_PAYABLE: -paid.tax_minor,
    }
    transaction = Transaction(
        transaction_id, TransactionKind.CAPTURE, source, entries_of(quote.currency, amounts), order_id=order_id,
    )
    return Posting(transaction, money)


def release(money: OrderMoney, *, transaction_id: str, source: str) -> Posting:
    """The order's held revenue, less what was refunded, becomes payable to the organizer. Again: nothing."""
    if money.released:
        return Posting(None, money)
    released = replace(money, released=True)
    amount = money.left().revenue_minor
    if amount == 0:
        return Posting(None, released)
    amounts = {Account.ORGANIZER_REVENUE: amount, Account.ORGANIZER_PAYABLE: -amount}
    transaction = Transaction(
        transaction_id, TransactionKind.RELEASE, source, entries_of(money.currency, amounts),
        order_id=money.order_id,
    )
    return Posting(transaction, released)


def held_revenue_minor(entries: Iterable[Entry], currency: str) -> int:
    """What of an order's revenue is still held (in ``organizer_revenue``, >= 0 unless the ledger is broken): minus
    the sum of its entries there in ``currency``, given every entry of the order's transactions."""
    return -sum(e.amount_minor for e in entries
                if e.account is Account.ORGANIZER_REVENUE and e.currency == currency)


def release_held(
    order_id: str, currency: str, held_minor: int, *, transaction_id: str, source: str
) -> Transaction | None:
    """Release what the order still holds (``held_minor``, what is left in ``organizer_revenue`` after its capture
    and any refund of held revenue): debit ``organizer_revenue``, credit ``organizer_payable``. None when nothing is
    held (a free or fully refunded order). The shell computes ``held_minor`` from the order's stored entries
    (``held_revenue_minor``), so it needs no ``OrderMoney``; ``release`` is the same flow for one it has."""
    if held_minor < 0:
        raise ValueError(f"{order_id} holds {held_minor} {currency}: organizer_revenue is on its debit side")
    if held_minor == 0:
        return None
    amounts = {Account.ORGANIZER_REVENUE: held_minor, Account.ORGANIZER_PAYABLE: -held_minor}
    return Transaction(transaction_id, TransactionKind.RELEASE, source, entries_of(currency, amounts),
                       order_id=order_id)


def refund(
    money: OrderMoney, tickets: Mapping[str, int], *, transaction_id: str, source: str,
    kind: TransactionKind = TransactionKind.REFUND,
) -> Posting:
    """Return the money of ``tickets`` (ticket type -> how many more of it to refund) to the buyer. Raises
    ValueError for tickets the order does not have left, or a closed order (the order's machine refuses those
    first)."""
    if money.closed:
        raise ValueError("a charged-back order's money is closed")
    remaining = money.remaining()
    for ticket_type, count in tickets.items():
        if count < 0 or count > remaining.get(ticket_type, 0):
            raise ValueError(f"the order has {remaining.get(ticket_type, 0)} {ticket_type} tickets left to refund")
    after_refunded = {t: money.refunded.get(t, 0) + tickets.get(t, 0) for t in money.ticket_counts()}
    after = replace(money, refunded=MappingProxyType(after_refunded),
                    closed=money.closed or kind is TransactionKind.CHARGEBACK)
    _check_order_money(after)
    before_lines = refunded_lines(money.quote, money.refunded)
    lines = tuple(
        RefundLine(a.kind, a.code, a.amount_minor - b.amount_minor, a.counted)
        for a, b in zip(refunded_lines(money.quote, after_refunded), before_lines, strict=True)
    )
    back = after.refunded_so_far().minus(money.refunded_so_far())
    assert back.cash_minor == sum(line.amount_minor for line in lines if line.counted)
    revenue_account = Account.ORGANIZER_PAYABLE if money.released else Account.ORGANIZER_REVENUE
    amounts = {
        revenue_account: back.revenue_minor,
        Account.PLATFORM_FEES: back.fees_minor,
        Account.TAX_PAYABLE: back.tax_minor,
        Account.REFUNDS: -back.cash_minor,
    }
    entries = entries_of(money.currency, amounts)
    if not entries:
        return Posting(None, after, lines)  # free tickets: nothing to give back
    transaction = Transaction(transaction_id, kind, source, entries, order_id=money.order_id)
    return Posting(transaction, after, lines)


def refund_all(money: OrderMoney, *, transaction_id: str, source: str) -> Posting:
    """Refund every ticket left: exactly what remains of every line."""
    return refund(money, money.remaining(), transaction_id=transaction_id, source=source)


def chargeback(money: OrderMoney, *, transaction_id: str, source: str) -> Posting:
    """The bank took the rest of the payment back: like refunding every ticket left, and the order is closed."""
    return refund(money, money.remaining(), transaction_id=transaction_id, source=source,
                  kind=TransactionKind.CHARGEBACK)


def payout(
    balances: Balances, currency: str, amount_minor: int | None, *, transaction_id: str, source: str
) -> Transaction:
    """Pay the organizer ``amount_minor`` (None: everything payable) in ``currency``. Refused
    (``payout_exceeds_payable``, details ``available_minor``) beyond what is payable, or when nothing is."""
    if amount_minor is not None and amount_minor < 1:
        raise ValueError("a payout is at least 1 minor unit")
    available = payable_minor({account: balances.get((currency, account), 0) for account in Account})
    amount = available if amount_minor is None else amount_minor
    if amount == 0 or amount > available:
        raise Refused(
            Refusal.PAYOUT_EXCEEDS_PAYABLE,
            f"at most {available} {currency} is payable to the organizer",
            {"available_minor": available, "currency": currency},
        )
    amounts = {Account.ORGANIZER_PAYABLE: amount, Account.PAYOUTS: -amount}
    return Transaction(transaction_id, TransactionKind.PAYOUT, source, entries_of(currency, amounts))
