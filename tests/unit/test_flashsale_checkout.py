"""The flash-sale harness's --checkout mode without services: its audit (pure), the card mix, the scenario's
checks, the report's checkout figures, and a buyer's journey against scripted answers."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest

from loadtests.flashsale.cards import card_of
from loadtests.flashsale.checkout_audit import CheckoutFacts, OrderRow, audit_checkout
from loadtests.flashsale.generator import GeneratorJob, _Sale
from loadtests.flashsale.plan import plan_buyers
from loadtests.flashsale.report import build_report
from loadtests.flashsale.samples import CardPosted
from loadtests.flashsale.scenario import Scenario, from_args, parser
from paysim.cards import DECLINED, SLOW, SUCCEEDS
from tests.unit.test_flashsale_report import CLEAN_AUDIT, facts, mixed_samples

T0 = 1_800_000_000.0


def clean_facts(**changes: Any) -> CheckoutFacts:
    cards = [CardPosted(f"ord_{n}", f"hld_{n}", SUCCEEDS, T0 + n) for n in range(3)]
    cards.append(CardPosted("ord_d", "hld_d", DECLINED, T0 + 1))
    orders = [OrderRow(f"ord_{n}", "paid", None, 30_000, T0 + n + 0.5) for n in range(3)]
    orders.append(OrderRow("ord_d", "failed", "payment_declined", 30_000, None))
    base = CheckoutFacts(cards=cards, orders=orders, live_sale_orders=["ord_0", "ord_1", "ord_2"], captures=3,
                         refunds=0, ledger_unbalanced=0, capture_mismatch=0, outbox_undone=0)
    return dataclasses.replace(base, **changes)


def test_a_clean_checkout_sale_audits_clean_with_its_rate_and_latency() -> None:
    checked = audit_checkout(clean_facts())
    assert checked["checkout_mismatch"] == 0 and set(checked["counts"].values()) == {0}
    assert checked["paid_orders"] == 3 and checked["orders_by_status"] == {"paid": 3, "failed": 1}
    assert checked["paid_per_s"] == round(3 / 2.5, 1)  # first card at T0, last tickets at T0 + 2.5
    assert checked["card_to_tickets_ms"] == {"p50": 500.0, "p95": 500.0, "p99": 500.0, "max": 500.0}
    assert checked["slow_card_to_tickets_ms"]["p99"] is None  # nobody paid with the slow card


@pytest.mark.parametrize(("changes", "count"), [
    ({"orders": [OrderRow("ord_0", "paid", None, 30_000, None)], "live_sale_orders": ["ord_0"], "captures": 1},
     "paid_without_tickets"),
    ({"live_sale_orders": ["ord_0", "ord_1"]}, "paid_without_sale"),
    ({"live_sale_orders": ["ord_0", "ord_1", "ord_2", "ord_d"]}, "sales_without_paid_order"),
    ({"live_sale_orders": ["ord_0", "ord_1", "ord_2", "ord_2"]}, "sales_without_paid_order"),
    ({"captures": 4}, "captures_unmatched"),
    ({"refunds": 1}, "refunds_unmatched"),
    ({"ledger_unbalanced": 1}, "ledger_unbalanced"),
    ({"capture_mismatch": 2}, "capture_mismatch"),
    ({"outbox_undone": 1}, "outbox_undone"),
    ({"orders": [], "live_sale_orders": [], "captures": 0}, "no_paid_orders"),
])
def test_every_checkout_flaw_is_counted(changes: dict[str, Any], count: str) -> None:
    checked = audit_checkout(clean_facts(**changes))
    assert checked["counts"][count] > 0 and checked["checkout_mismatch"] > 0


def test_an_order_refunded_because_its_hold_was_lost_matches_its_capture_and_refund() -> None:
    orders = [*clean_facts().orders, OrderRow("ord_late", "refunded", "hold_lost", 30_000, None)]
    checked = audit_checkout(clean_facts(orders=orders, captures=4, refunds=1))
    assert checked["checkout_mismatch"] == 0 and checked["reasons"]["hold_lost"] == 1


def test_the_card_mix_spreads_evenly_over_the_buyers() -> None:
    cards = [card_of(n, 0.1, 0.05) for n in range(1_000)]
    assert abs(cards.count(DECLINED) - 100) <= 2 and abs(cards.count(SLOW) - 50) <= 2
    assert card_of(7, 0.0, 0.0) == SUCCEEDS and card_of(7, 1.0, 0.0) == DECLINED


@pytest.mark.parametrize("argv", [["--declined", "0.1"], ["--slow", "0.1"],
                                  ["--checkout", "--declined", "0.7", "--slow", "0.5"],
                                  ["--checkout", "--target", "http://x", "--key", "k", "--database-url", "pg",
                                   "--redis-url", "r"]])
def test_checkout_scenarios_that_cannot_run_are_refused_up_front(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        from_args(parser().parse_args(argv))
    scenario = from_args(parser().parse_args(["--checkout", "--declined", "0.1", "--slow", "0.05"]))
    assert (scenario.checkout, scenario.declined_ratio, scenario.slow_ratio) == (True, 0.1, 0.05)


def test_the_report_carries_the_checkout_figures_and_its_audit_gates_the_verdict() -> None:
    checked = audit_checkout(clean_facts())
    audit = {**CLEAN_AUDIT, "checkout_mode": True, "checkout_mismatch": 0, "checkout": checked}
    report = build_report(facts(mixed_samples(), audit=audit))
    assert report["audit_passed"] is True and report["paid_orders"] == 3 and report["paid_per_s"] == 1.2
    assert report["card_to_tickets_ms"]["p99"] == 500.0 and report["checkouts_attempted"] == 0
    assert build_report(facts(mixed_samples(), audit={**audit, "checkout_mismatch": 1}))["audit_passed"] is False
    assert build_report(facts(mixed_samples(), audit={**audit, "checkout_mismatch": None}))["audit_passed"] is False
    assert "paid_orders" not in build_report(facts(mixed_samples()))  # a sale without --checkout


class _Buyer(_Sale):
    """A checkout journey against scripted answers: (method, path prefix) -> the answers in turn."""

    def __init__(self, answers: dict[str, list[tuple[int, dict[str, Any]]]]) -> None:
        job = GeneratorJob(0, "http://unused", "vk_x", "evt_x", (), [], time.monotonic(), retry=2, connections=1,
                           checkout=True)
        super().__init__(job, queue=None)
        self.answers, self.calls = answers, []

    async def _call(self, kind: str, method: str, path: str, due: float, units: int, body: dict[str, Any] | None,
                    key: str | None, *, card: bool = False) -> tuple[int, bytes]:
        self.calls.append((kind, path, card, key))
        status, answer = self.answers[kind].pop(0)
        return status, json.dumps(answer).encode()


ORDER_MADE = {"order_id": "ord_1", "payment": {"confirm_url": "http://sim/v1/intents/pi_1/confirm"}}
TICKETS = [{"ticket_id": "tkt_1", "ticket_type": "GA", "unit": 3}]


async def test_a_paying_buyer_checks_out_posts_its_card_to_the_simulator_and_waits_for_its_tickets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("loadtests.flashsale.generator.order_poll_s_first", 0.0)
    buyer = _Buyer({"checkout": [(201, ORDER_MADE)], "pay": [(503, {}), (200, {"status": "authorized"})],
                    "order": [(200, {"status": "pending_payment", "tickets": []}),
                              (200, {"status": "paid", "tickets": TICKETS})]})
    plan = plan_buyers(Scenario(buyers=1, seats=0, ga=5))[0]
    await buyer._buy(plan, "hld_1", 1, buyer.now())
    kinds = [(kind, card) for kind, _, card, _ in buyer.calls]
    assert kinds == [("checkout", False), ("pay", True), ("pay", True), ("order", False), ("order", False)]
    assert buyer.calls[1][3] == buyer.calls[2][3]  # the card resent under the same key
    assert [c.order_id for c in buyer.outcome.cards] == ["ord_1"]
    (sale,) = buyer.outcome.sales
    assert sale.hold_id == "hld_1" and [t.unit for t in sale.tickets] == [3]


async def test_a_declined_or_refused_buyer_leaves_no_sale_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("loadtests.flashsale.generator.order_poll_s_first", 0.0)
    plan = plan_buyers(Scenario(buyers=1, seats=0, ga=5))[0]
    declined = _Buyer({"checkout": [(201, ORDER_MADE)], "pay": [(200, {"status": "failed"})],
                       "order": [(200, {"status": "failed", "tickets": []})]})
    await declined._buy(plan, "hld_1", 1, declined.now())
    assert declined.outcome.orders_failed == ["ord_1"] and declined.outcome.refused_hold_ids == ["hld_1"]
    assert not declined.outcome.sales
    expired = _Buyer({"checkout": [(410, {"error": {"code": "hold_expired"}})]})
    await expired._buy(plan, "hld_2", 1, expired.now())
    assert expired.outcome.refused_hold_ids == ["hld_2"] and not expired.outcome.cards


def test_units_held_for_open_orders_are_not_orphaned_but_any_beyond_them_are() -> None:
    from loadtests.flashsale.audit import Counts, Facts, InventoryView, audit

    view = InventoryView(b"", None, {"GA": Counts(capacity=10, available=7, held=3, sold=0)})
    base = Facts(seat_ids=(), ga_capacity={"GA": 10}, tickets=(), acked=(), store=view, endpoint=view,
                 store_is_redis=True)
    assert audit(dataclasses.replace(base, held_for_open_orders=3))["orphaned_holds"] == 0
    assert audit(dataclasses.replace(base, held_for_open_orders=1))["orphaned_holds"] == 2
    assert audit(base)["orphaned_holds"] == 3
