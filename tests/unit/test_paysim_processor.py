"""The simulator's books (paysim/processor.py) under any sequence of calls: each call either changes state as a
card processor would or is refused with a 4xx; nothing is captured twice, refunds never exceed captures, and the
audit's counters agree with the intents recomputed."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from paysim.cards import CARDS, card_outcome
from paysim.processor import PROCESSING, Processor, SimRefused

cards = st.sampled_from(sorted(CARDS))


class ProcessorMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        counter = iter(range(10**9))
        self.processor = Processor(
            "http://sim", clock=lambda: 1_790_000_000.0, new_token=lambda: f"{next(counter):024x}"
        )
        self.ids: list[str] = []
        self.captured: dict[str, int] = {}  # the model: what each intent captured
        self.refunded: dict[str, int] = {}
        self.charged_back: set[str] = set()
        self.events: list[dict] = []

    @rule(amount=st.integers(1, 10_000))
    def create(self, amount: int) -> None:
        intent = self.processor.create(amount, "ZAR", {})
        self.ids.append(intent["id"])

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), card=cards)
    def confirm(self, data: st.DataObject, card: str) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        before = self.processor.get(intent_id)["status"]
        outcome = card_outcome(card)
        assert outcome is not None
        try:
            intent, events = self.processor.confirm(intent_id, outcome)
        except SimRefused as refused:
            assert before != "requires_payment" and refused.code == "already_confirmed"
            return
        assert before == "requires_payment"
        self.events += [e.body for e in events]
        if outcome.settle_after_s > 0:
            assert intent["status"] == PROCESSING and not events
        else:
            assert intent["status"] == ("authorized" if outcome.failure_code is None else "failed")
            assert [e.deliveries for e in events] == [outcome.outcome_deliveries]

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def settle_slow(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        if self.processor.get(intent_id)["status"] == PROCESSING:
            intent, events = self.processor.settle(intent_id)
            assert intent["status"] == "authorized" and len(events) == 1

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def capture(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        before = self.processor.get(intent_id)
        try:
            intent, _ = self.processor.capture(intent_id)
        except SimRefused as refused:
            assert before["status"] != "authorized" and refused.status == 409
            return
        assert before["status"] == "authorized" and intent_id not in self.captured
        self.captured[intent_id] = intent["captured_minor"]
        assert intent["captured_minor"] == before["amount_minor"]

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        before = self.processor.get(intent_id)["status"]
        try:
            self.processor.cancel(intent_id)
        except SimRefused:
            assert before not in ("requires_payment", "authorized")
            return
        assert before in ("requires_payment", "authorized")

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), amount=st.integers(1, 12_000))
    def refund(self, data: st.DataObject, amount: int) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        left = self.captured.get(intent_id, 0) - self.refunded.get(intent_id, 0)
        try:
            refund, _ = self.processor.refund(intent_id, amount, "ZAR", "")
        except SimRefused as refused:
            assert (intent_id not in self.captured or amount > left or refused.code == "too_many_refunds"
                    or intent_id in self.charged_back), refused.code
            return
        assert intent_id not in self.charged_back
        assert amount <= left and refund["amount_minor"] == amount
        self.refunded[intent_id] = self.refunded.get(intent_id, 0) + amount

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def chargeback(self, data: st.DataObject) -> None:
        intent_id = data.draw(st.sampled_from(self.ids))
        left = self.captured.get(intent_id, 0) - self.refunded.get(intent_id, 0)
        try:
            _, events = self.processor.chargeback(intent_id)
        except SimRefused as refused:
            assert refused.code == "not_disputable" and (left == 0 or intent_id in self.charged_back)
            return
        assert left > 0 and intent_id not in self.charged_back
        assert [e.body["type"] for e in events] == ["payment.charged_back"]
        self.charged_back.add(intent_id)
        self.events += [e.body for e in events]

    @invariant()
    def books_agree(self) -> None:
        if not hasattr(self, "processor"):
            return
        audit = self.processor.audit()
        assert audit["captures"] == audit["captured_intents"] == len(self.captured)
        assert audit["captured_minor"].get("ZAR", 0) == sum(self.captured.values())
        assert audit["refunded_minor"].get("ZAR", 0) == sum(self.refunded.values())
        assert audit["chargebacks"] == len(self.charged_back)
        for intent_id in self.ids:
            intent = self.processor.get(intent_id)
            assert intent["captured_minor"] == self.captured.get(intent_id, 0)
            assert intent["refunded_minor"] == self.refunded.get(intent_id, 0) <= intent["captured_minor"]
        assert len({e["id"] for e in self.events}) == len(self.events)  # every event has its own id


TestProcessor = ProcessorMachine.TestCase
