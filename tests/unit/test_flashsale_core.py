"""The flash-sale harness's pure parts: the buyer plan, the seat map buyers pick from, the audit's arithmetic."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

import pytest

from loadtests.flashsale.audit import Counts, Facts, InventoryView, LiveTicket, audit, lost_acknowledged
from loadtests.flashsale.generator import GeneratorJob, _Sale, answer_attempts_max, answer_time_s_max
from loadtests.flashsale.plan import ABANDON, CONFIRM, RELEASE, plan_buyers, share
from loadtests.flashsale.samples import AckedSale, AckedTicket
from loadtests.flashsale.scenario import Scenario, check, event_body, parser, seating_sections
from loadtests.flashsale.seatview import SeatView


def test_the_plan_is_reproducible_and_arrives_within_the_window() -> None:
    scenario = Scenario(buyers=5_000, seats=100, ga=100, arrival_seconds=4.0, confirm_ratio=0.6, abandon_ratio=0.3)
    plans = plan_buyers(scenario)
    assert plans == plan_buyers(scenario)
    assert plans != plan_buyers(Scenario(buyers=5_000, seats=100, ga=100, arrival_seconds=4.0, seed=2))
    arrivals = [p.arrival_s for p in plans]
    assert arrivals == sorted(arrivals) and arrivals[0] >= 0 and arrivals[-1] <= 4.0
    fates = [p.fate for p in plans]
    assert 0.55 < fates.count(CONFIRM) / 5_000 < 0.65
    assert 0.25 < fates.count(ABANDON) / 5_000 < 0.35
    assert 0.05 < fates.count(RELEASE) / 5_000 < 0.15
    assert 0.4 < sum(p.ga for p in plans) / 5_000 < 0.6
    assert {p.quantity for p in plans} == {1, 2}


def test_poisson_arrivals_are_bursty_and_uniform_ones_are_not() -> None:
    def busiest_tenth(arrivals: str) -> int:
        plans = plan_buyers(Scenario(buyers=10_000, arrival_seconds=10.0, arrivals=arrivals))
        counts = [0] * 100
        for p in plans:
            counts[min(99, int(p.arrival_s * 10))] += 1
        return max(counts)

    assert busiest_tenth("uniform") <= 101
    assert busiest_tenth("poisson") > 115  # mean 100 a tenth of a second; Poisson spreads about +-10


def test_sharing_buyers_keeps_every_one_once() -> None:
    plans = plan_buyers(Scenario(buyers=101, seats=10))
    parts = share(plans, 3)
    assert sorted(p.number for part in parts for p in part) == list(range(101))


def test_the_seat_map_picks_free_neighbours_in_one_row() -> None:
    seats = [f"A-1-{n}" for n in range(1, 6)] + [f"A-2-{n}" for n in range(1, 6)]
    view = SeatView(seats)
    bitmap = bytes([0b01110000, 0b01000000])  # free: A-1-2, A-1-3, A-1-4 and A-2-5
    view.refresh(bitmap)
    rng = random.Random(3)
    picks = [view.choose(2, rng) for _ in range(2)]
    for pick in picks:
        assert all(s in {"A-1-2", "A-1-3", "A-1-4", "A-2-5"} for s in pick)
        assert len({s.rsplit("-", 1)[0] for s in pick}) == 1
    assert not set(picks[0]) & set(picks[1])  # a pick is marked taken for the process's next buyer


def test_the_seat_map_learns_taken_seats_and_falls_back_when_it_shows_none() -> None:
    view = SeatView(["A-1-1", "A-1-2"])
    view.mark_taken(["A-1-1", "unknown"])
    assert view.choose(1, random.Random(1)) == ["A-1-2"]
    view.refresh(bytes([0]))
    assert view.believed_free == 0
    assert view.choose(1, random.Random(1))[0] in {"A-1-1", "A-1-2"}


def test_seating_splits_into_rows_and_sections_within_the_api_limits() -> None:
    sections = seating_sections(20_025)
    assert sum(r["seats"] for s in sections for r in s["rows"]) == 20_025
    assert len(sections) == 5 and all(len(s["rows"]) <= 100 for s in sections)
    body = event_body(Scenario(seats=10, ga=5))
    assert [t["code"] for t in body["ticket_types"]] == ["SEAT", "GA"] and body["dedicated"] is True


@pytest.mark.parametrize("argv", [["--seats", "0"], ["--confirm-ratio", "0.8", "--abandon-ratio", "0.3"],
                                  ["--target", "http://x"], ["--mode", "postgres", "--kill-actor-every", "2"]])
def test_scenarios_that_cannot_run_are_refused_up_front(argv: list[str]) -> None:
    from loadtests.flashsale.scenario import from_args

    with pytest.raises(SystemExit):
        from_args(parser().parse_args(argv))


def test_a_default_scenario_is_the_headline() -> None:
    scenario = Scenario()
    check(scenario)
    assert (scenario.buyers, scenario.seats, scenario.arrival_seconds) == (100_000, 20_000, 10.0)


SEATS = ["A-1-1", "A-1-2", "A-1-3", "A-1-4"]


def _ticket(sale: str, seat: str | None = None, unit: int | None = None) -> LiveTicket:
    return LiveTicket(sale, "hld" + sale[3:], "GA" if unit else "SEAT", seat, unit)


def _facts(tickets: list[LiveTicket], store: InventoryView, acked: list[AckedSale] | None = None) -> Facts:
    return Facts(SEATS, {"GA": 3}, tickets, acked or [], store, store, store_is_redis=True)


def _view(free_bits: int, seated: Counts, ga: Counts) -> InventoryView:
    return InventoryView(bytes([free_bits]), seated, {"GA": ga})


def test_a_clean_sale_audits_clean() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1"), _ticket("sal_2", unit=1), _ticket("sal_2", unit=2)]
    store = _view(0b01110000, Counts(4, 3, 0, 1), Counts(3, 1, 0, 2))
    acked = [AckedSale("sal_1", "hld_1", (AckedTicket("t", "SEAT", "A-1-1", None),))]
    result = audit(_facts(tickets, store, acked))
    assert (result["oversold"], result["lost_acknowledged"], result["redis_pg_mismatch"]) == (0, 0, 0)
    assert (result["sold_seats_pg"], result["sold_ga_pg"], result["orphaned_holds"]) == (1, 2, 0)


def test_the_audit_counts_oversell_of_seats_and_units() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1"), _ticket("sal_2", seat="A-1-1"),
               _ticket("sal_3", unit=1), _ticket("sal_4", unit=1), _ticket("sal_5", unit=4), _ticket("sal_6", unit=2)]
    result = audit(_facts(tickets, _view(0b01110000, Counts(4, 3, 0, 1), Counts(3, 0, 0, 3))))
    detail = result["oversold_detail"]
    assert detail == {"seats_sold_twice": 1, "ga_units_sold_twice": 1, "ga_units_out_of_range": 1,
                      "ga_over_capacity": 1}
    assert result["oversold"] == 4


def test_the_audit_finds_a_store_that_disagrees_with_postgres() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1")]
    # the store shows the sold seat free, and A-1-4 taken though nobody holds or bought it
    store = _view(0b11100000, Counts(4, 3, 0, 1), Counts(3, 3, 0, 0))
    assert audit(_facts(tickets, store))["redis_pg_mismatch"] == 2
    held = _view(0b01100000, Counts(4, 2, 1, 1), Counts(3, 2, 1, 0))  # A-1-4 held: not a mismatch, an orphan
    result = audit(_facts(tickets, held))
    assert result["redis_pg_mismatch"] == 0 and result["orphaned_holds"] == 2


def test_an_acknowledged_sale_missing_or_different_in_postgres_is_lost() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1")]
    acked = [AckedSale("sal_1", "hld_1", (AckedTicket("t", "SEAT", "A-1-1", None),)),
             AckedSale("sal_2", "hld_2", (AckedTicket("t", "SEAT", "A-1-2", None),)),
             AckedSale("sal_1", "hld_1", (AckedTicket("t", "SEAT", "A-1-3", None),))]
    assert lost_acknowledged(acked, tickets) == 2


def test_the_postgres_baseline_has_no_redis_to_compare() -> None:
    store = _view(0b11110000, Counts(4, 4, 0, 0), Counts(3, 3, 0, 0))
    facts = Facts(SEATS, {"GA": 3}, [], [], store, store, store_is_redis=False)
    result = audit(facts)
    assert result["redis_pg_mismatch"] is None and result["store_pg_mismatch"] == 0


def test_a_sale_of_a_released_or_abandoned_hold_is_caught() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1"), _ticket("sal_2", unit=1)]
    store = _view(0b01110000, Counts(4, 3, 0, 1), Counts(3, 2, 0, 1))
    facts = Facts(SEATS, {"GA": 3}, tickets, [], store, store, store_is_redis=True,
                  released_hold_ids=["hld_1"], abandoned_hold_ids=["hld_2", "hld_9"])
    assert audit(facts)["sold_unconfirmed"] == 2


def test_an_acknowledged_sale_under_another_hold_is_lost() -> None:
    tickets = [_ticket("sal_1", seat="A-1-1")]
    acked = [AckedSale("sal_1", "hld_other", (AckedTicket("t", "SEAT", "A-1-1", None),))]
    assert lost_acknowledged(acked, tickets) == 1


class _ScriptedSale(_Sale):
    """The generator's buyer logic with the HTTP call replaced by a script of statuses."""

    def __init__(self, statuses: list[int]) -> None:
        job = GeneratorJob(0, "http://unused", "vk_x", "evt_x", (), [], time.monotonic(), retry=2, connections=1)
        super().__init__(job, queue=None)
        self.statuses, self.sent = statuses, 0

    async def _call(self, kind: str, method: str, path: str, due: float, units: int,
                    body: dict[str, Any] | None, key: str | None, *, card: bool = False) -> tuple[int, bytes]:
        self.sent += 1
        return self.statuses.pop(0) if self.statuses else 503, b"{}"


async def test_a_confirm_is_resent_after_503_at_most_answer_attempts_max_times() -> None:
    sale = _ScriptedSale([])
    status, _ = await sale._answered("confirm", "POST", "/x", {}, "k", 1, sale.now())
    assert (status, sale.sent) == (503, answer_attempts_max)


async def test_a_confirm_is_not_resent_after_a_refusal_or_past_the_time_bound() -> None:
    refused = _ScriptedSale([410])
    assert (await refused._answered("confirm", "POST", "/x", {}, "k", 1, refused.now()))[0] == 410
    assert refused.sent == 1
    late = _ScriptedSale([])
    await late._answered("confirm", "POST", "/x", {}, "k", 1, late.now() - answer_time_s_max)
    assert late.sent == 1


async def test_a_hold_retried_after_503_resends_the_same_body_under_the_same_key() -> None:
    sent: list[tuple[Any, str | None]] = []

    class Recording(_ScriptedSale):
        async def _call(self, kind: str, method: str, path: str, due: float, units: int,
                        body: dict[str, Any] | None, key: str | None, *, card: bool = False) -> tuple[int, bytes]:
            sent.append((dict(body or {}), key))
            return await super()._call(kind, method, path, due, units, body, key)

    sale = Recording([503, 409, 503])
    sale.view = SeatView([f"A-1-{n}" for n in range(1, 11)])
    plan = plan_buyers(Scenario(buyers=1, seats=10, tickets_max=2))[0]
    assert await sale._hold(plan, random.Random(1)) is None  # 3 tries, none a 201
    assert sent[0] == sent[1] and sent[0][1] is not None  # after the 503: the same body under the same key
    assert sent[2][1] != sent[1][1]  # after the 409: a new request under another key


@pytest.mark.parametrize("argv", [["--mode", "postgres", "--buyers-pick", "best"],
                                  ["--mode", "redis-lua", "--buyers-pick", "best"],
                                  ["--seats", "0", "--ga", "10", "--buyers-pick", "best"]])
def test_best_available_buyers_need_the_engine_and_seats(argv: list[str]) -> None:
    from loadtests.flashsale.scenario import from_args

    with pytest.raises(SystemExit):
        from_args(parser().parse_args(argv))
    assert from_args(parser().parse_args(["--buyers-pick", "best"])).buyers_pick == "best"
    assert from_args(parser().parse_args([])).buyers_pick == "seats"


def test_a_best_available_buyer_asks_its_zone_first_and_the_others_most_free_first() -> None:
    view = SeatView(["S1-1-1", "S1-1-2", "S1-1-3", "S2-1-1", "S3-1-1", "S3-1-2"])
    assert view.zones == ("S1", "S2", "S3")
    assert view.best_zones("S2", 1) == (["S2", "S1", "S3"], 1)
    assert view.best_zones("S2", 4) == (["S2", "S1", "S3"], 4)
    assert view.best_zones("S2", 7) == (["S2", "S1", "S3"], 6), "the zones show 6 in all: 6"
    view.mark_taken(["S1-1-1", "S1-1-2", "S1-1-1"])
    assert (view.free_in("S1"), view.believed_free) == (1, 4)
    assert view.best_zones("S1", 2) == (["S1", "S3", "S2"], 2)
    view.refresh(bytes([0b00010000]))  # only S2-1-1 free
    assert (view.free_in("S1"), view.free_in("S2")) == (0, 1)
    view.mark_taken(["S2-1-1"])
    assert view.best_zones("S1", 1) is None


async def test_a_best_available_buyer_names_no_seats_and_marks_what_it_got() -> None:
    sent: list[dict[str, Any]] = []

    class Recording(_ScriptedSale):
        async def _call(self, kind: str, method: str, path: str, due: float, units: int,
                        body: dict[str, Any] | None, key: str | None, *, card: bool = False) -> tuple[int, bytes]:
            sent.append(dict(body or {}))
            if len(sent) == 1:
                return 409, b'{"error": {"code": "insufficient_inventory", "details": {"available": 2}}}'
            seats = [f"S2-1-{n}" for n in range(1, body["best_available"]["quantity"] + 1)] if body else []
            return 201, json.dumps({"hold_id": "hld_1", "seats": seats}).encode()

    sale = Recording([])
    sale.job = dataclasses.replace(sale.job, buyers_pick="best")
    sale.view = SeatView([f"S{z}-1-{n}" for z in (1, 2) for n in range(1, 6)])
    plan = dataclasses.replace(plan_buyers(Scenario(buyers=1, seats=10, tickets_max=3))[0], quantity=3)
    held = await sale._hold(plan, random.Random(1))
    assert held is not None and held[:2] == ("hld_1", 1)
    assert all("seats" not in body and body["best_available"]["zone"] in {"S1", "S2"} for body in sent)
    assert all(len(body["best_available"]["fallback_zones"]) == 1 for body in sent), "the other zone, to fall back"
    assert [body["best_available"]["quantity"] for body in sent] == [3, 1]  # after the 409: fewer seats
    assert sale.outcome.best_refused_seats_left == 1, "refused with 2 left: counted as before the sell-out"
    assert sale.view.believed_free == 9 and sale.view.free_in("S2") == 4


async def test_a_best_available_buyer_told_no_seats_are_left_goes_home() -> None:
    sent: list[dict[str, Any]] = []

    class SoldOut(_ScriptedSale):
        async def _call(self, kind: str, method: str, path: str, due: float, units: int,
                        body: dict[str, Any] | None, key: str | None, *, card: bool = False) -> tuple[int, bytes]:
            sent.append(dict(body or {}))
            return 409, b'{"error": {"code": "insufficient_inventory", "details": {"available": 0}}}'

    sale = SoldOut([])
    sale.job = dataclasses.replace(sale.job, buyers_pick="best", retry=2)
    sale.view = SeatView([f"S{z}-1-{n}" for z in (1, 2) for n in range(1, 6)])
    plan = dataclasses.replace(plan_buyers(Scenario(buyers=1, seats=10, tickets_max=3))[0], quantity=3)
    assert await sale._hold(plan, random.Random(1)) is None
    assert len(sent) == 1, "no second try: the inventory said no zone asked has a seat left"
    assert sale.outcome.buyers_saw_sold_out == 1
