"""The ledger over random flows (Hypothesis state machine): orders in two currencies are paid (released at once
or held), have revenue released, some tickets or all refunded, are charged back; the organizer asks for payouts
(some beyond what is payable), and a payout now and then bounces (a correction). Orders move through
engine/orders.py's machine as the shell would move them.

After every step: every currency's trial balance is 0; the balances are the sum of every transaction posted; no
account is on a side it may not take (the payable only after a refund or chargeback of released money); a payout
is refused exactly when it exceeds what is payable and never leaves the payable against its side; and the
ledger's totals equal the orders' totals, account by account.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from engine import orders
from engine.ledger import book, flows
from engine.ledger.accounts import NORMAL_SIDE, Account, against_normal, payable_minor
from engine.ledger.book import Transaction, post, trial_balance
from engine.orders import Change, OrderEvent, OrderStatus
from engine.refusals import Refusal, Refused
from tests.unit.test_ledger import quotes

CURRENCIES = ("ZAR", "USD")
A = Account


@dataclass
class Order:
    money: flows.OrderMoney
    status: OrderStatus


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.balances: book.Balances = {}
        self.posted: list[Transaction] = []
        self.orders: dict[str, Order] = {}
        self.payouts: dict[str, Transaction] = {}  # not bounced yet
        self.paid_out: dict[str, int] = dict.fromkeys(CURRENCIES, 0)
        self.n = 0

    def ids(self, what: str) -> dict[str, str]:
        self.n += 1
        return {"transaction_id": f"ltx_{self.n:032x}", "source": f"{what}:{self.n}"}

    def post(self, transaction: Transaction | None) -> None:
        if transaction is None:
            return
        self.balances = post(self.balances, transaction)
        self.posted.append(transaction)

    def move(self, order_id: str, event: OrderEvent) -> orders.Outcome:
        outcome = orders.decide(self.orders[order_id].status, event)
        if outcome.change is not Change.REFUSED:
            self.orders[order_id].status = outcome.status
        return outcome

    def draw_order(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.orders)), label="order")

    # ---- rules ---------------------------------------------------------------------------------------------

    @rule(data=st.data(), currency=st.sampled_from(CURRENCIES), release=st.booleans())
    def pay(self, data: st.DataObject, currency: str, release: bool) -> None:
        quote = data.draw(quotes(currency), label="quote")
        order_id = f"ord_{len(self.orders)}"
        self.orders[order_id] = Order(flows.OrderMoney(order_id, quote), OrderStatus.PENDING_PAYMENT)
        outcome = self.move(order_id, OrderEvent.PAYMENT_SUCCEEDED)
        assert outcome.status is OrderStatus.PAID and outcome.actions == (orders.Action.FULFIL,)
        posting = flows.capture(order_id, quote, release=release, **self.ids("payment"))
        self.post(posting.transaction)
        self.orders[order_id].money = posting.money

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        order = self.orders[self.draw_order(data)]
        if order.money.closed:
            return
        posting = flows.release(order.money, **self.ids("release"))
        self.post(posting.transaction)
        order.money = posting.money

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def refund_some_tickets(self, data: st.DataObject) -> None:
        order_id = self.draw_order(data)
        order = self.orders[order_id]
        left = {t: n for t, n in order.money.remaining().items() if n}
        if not left or order.status not in orders.HOLDS_MONEY:
            assert self.move(order_id, OrderEvent.REFUND_SOME).change is Change.REFUSED
            return
        ticket_type = data.draw(st.sampled_from(sorted(left)), label="ticket type")
        count = data.draw(st.integers(1, left[ticket_type]), label="count")
        event = orders.refund_event(sum(left.values()), count)
        outcome = self.move(order_id, event)
        assert outcome.change is not Change.REFUSED
        posting = flows.refund(order.money, {ticket_type: count}, **self.ids("refund"))
        self.post(posting.transaction)
        order.money = posting.money

    @precondition(lambda self: self.orders)
    @rule(data=st.data(), cancelled=st.booleans())
    def refund_everything_left(self, data: st.DataObject, cancelled: bool) -> None:
        order_id = self.draw_order(data)
        order = self.orders[order_id]
        event = OrderEvent.EVENT_CANCELLED if cancelled else OrderEvent.REFUND_ALL
        before = order.status
        outcome = self.move(order_id, event)
        if orders.Action.REFUND_REST not in outcome.actions:
            assert before not in orders.HOLDS_MONEY
            return
        posting = flows.refund_all(order.money, **self.ids("refund"))
        self.post(posting.transaction)
        order.money = posting.money
        assert order.status is OrderStatus.REFUNDED

    @precondition(lambda self: self.orders)
    @rule(data=st.data())
    def chargeback(self, data: st.DataObject) -> None:
        order_id = self.draw_order(data)
        order = self.orders[order_id]
        outcome = self.move(order_id, OrderEvent.CHARGEBACK)
        if orders.Action.REVOKE_REST not in outcome.actions:
            return
        posting = flows.chargeback(order.money, **self.ids("chargeback"))
        self.post(posting.transaction)
        order.money = posting.money

    @rule(currency=st.sampled_from(CURRENCIES), ask=st.one_of(st.none(), st.integers(1, 200_000)), whole=st.booleans())
    def payout(self, currency: str, ask: int | None, whole: bool) -> None:
        available = payable_minor(self.of(currency))
        amount = available if whole and available else ask
        try:
            transaction = flows.payout(self.balances, currency, amount, **self.ids("payout"))
        except Refused as refused:
            assert refused.refusal is Refusal.PAYOUT_EXCEEDS_PAYABLE
            assert (amount or available) > available or available == 0
            event("payout refused")
            return
        assert (amount or available) <= available
        self.post(transaction)
        self.payouts[transaction.id] = transaction
        self.paid_out[currency] += -sum(e.amount_minor for e in transaction.entries if e.account is A.PAYOUTS)
        assert not against_normal(A.ORGANIZER_PAYABLE, self.of(currency)[A.ORGANIZER_PAYABLE]), "payout > payable"
        event("payout paid")

    @precondition(lambda self: self.payouts)
    @rule(data=st.data())
    def a_payout_bounces(self, data: st.DataObject) -> None:
        original = self.payouts.pop(data.draw(st.sampled_from(sorted(self.payouts)), label="payout"))
        self.post(book.correction(original, memo="returned by the bank", **self.ids("bounce")))
        currency = original.entries[0].currency
        self.paid_out[currency] -= -sum(e.amount_minor for e in original.entries if e.account is A.PAYOUTS)

    # ---- invariants ----------------------------------------------------------------------------------------

    def of(self, currency: str) -> dict[Account, int]:
        return {account: self.balances.get((currency, account), 0) for account in Account}

    @invariant()
    def every_currency_balances(self) -> None:
        assert all(total == 0 for total in trial_balance(self.balances).values())
        for transaction in self.posted[-1:]:
            assert all(total == 0 for total in book.sums_by_currency(transaction.entries).values())

    @invariant()
    def balances_are_the_sum_of_the_transactions(self) -> None:
        recomputed: dict[tuple[str, Account], int] = {}
        for transaction in self.posted:
            for entry in transaction.entries:
                key = (entry.currency, entry.account)
                recomputed[key] = recomputed.get(key, 0) + entry.amount_minor
        assert {k: v for k, v in recomputed.items() if v} == {k: v for k, v in self.balances.items() if v}

    @invariant()
    def no_account_takes_a_side_it_may_not(self) -> None:
        for currency in CURRENCIES:
            for account, balance in self.of(currency).items():
                if account is A.ORGANIZER_PAYABLE:
                    continue
                assert not against_normal(account, balance), (account, NORMAL_SIDE[account], balance)

    @invariant()
    def the_ledger_totals_are_the_orders_totals(self) -> None:
        for currency in CURRENCIES:
            mine = [o.money for o in self.orders.values() if o.money.currency == currency]
            held = [m for m in mine if not m.released]
            released = [m for m in mine if m.released]
            expected = {
                A.PROVIDER_CLEARING: sum(m.paid().cash_minor for m in mine),
                A.REFUNDS: -sum(m.refunded_so_far().cash_minor for m in mine),
                A.PAYOUTS: -self.paid_out[currency],
                A.ORGANIZER_REVENUE: -sum(m.left().revenue_minor for m in held),
                # the payable goes against its side only when refunds of released money exceed what is unpaid
                A.ORGANIZER_PAYABLE: -(sum(m.left().revenue_minor for m in released) - self.paid_out[currency]),
                A.PLATFORM_FEES: -sum(m.left().fees_minor for m in mine),
                A.TAX_PAYABLE: -sum(m.left().tax_minor for m in mine),
            }
            assert self.of(currency) == expected
            if against_normal(A.ORGANIZER_PAYABLE, expected[A.ORGANIZER_PAYABLE]):
                event("the organizer owes a refund of money paid out")

    @invariant()
    def the_orders_status_matches_their_money(self) -> None:
        for order in self.orders.values():
            left = sum(order.money.remaining().values())
            refunded = sum(order.money.refunded.values())
            if order.status is OrderStatus.PAID:
                assert refunded == 0 and left > 0
            elif order.status is OrderStatus.PARTIALLY_REFUNDED:
                assert refunded > 0 and left > 0
            else:
                assert order.status is OrderStatus.REFUNDED and left == 0
            if order.money.closed:  # charged back
                assert order.status is OrderStatus.REFUNDED


LedgerMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)
TestLedgerMachine = LedgerMachine.TestCase
