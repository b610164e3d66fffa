"""engine/catalog/presales.py: whether a hold may be placed now, by status, sale window and presale (code, buyer
list); and the schedule's own rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine import limits
from engine.catalog.lifecycle import EventStatus
from engine.catalog.presales import Presale, SaleSchedule, hold_refusal, schedule_problems

T0 = 1_800_000_000.0
S = EventStatus
FANS = Presale("FANS", T0 - 100, T0, frozenset({"b-listed"}))
OPEN = Presale("OPEN", T0 - 50, T0 + 10)
SCHEDULE = SaleSchedule(sale_opens_at=T0, sale_closes_at=T0 + 1_000, presales=(FANS, OPEN))


def test_on_sale_and_sold_out_take_holds_until_the_sale_closes() -> None:
    for status in (S.ON_SALE, S.SOLD_OUT):
        assert hold_refusal(status, SCHEDULE, None, "b", T0 + 999) is None
        assert hold_refusal(status, SCHEDULE, None, "b", T0 + 1_000) == "the sale has closed"


def test_other_statuses_take_none() -> None:
    for status in (S.DRAFT, S.PAUSED, S.CLOSED, S.CANCELLED):
        assert hold_refusal(status, SCHEDULE, "OPEN", "b-listed", T0 - 10) == f"the event is {status}"


def test_published_takes_presale_holds_with_the_code_and_a_listed_buyer() -> None:
    assert hold_refusal(S.PUBLISHED, SCHEDULE, None, "b", T0 - 200) == "the sale has not opened yet"
    assert hold_refusal(S.PUBLISHED, SCHEDULE, None, "b", T0 - 60) == (
        "a presale is running: the hold needs its presale_code"
    )
    assert hold_refusal(S.PUBLISHED, SCHEDULE, "NOPE", "b", T0 - 60) == "no presale running now has this code"
    assert hold_refusal(S.PUBLISHED, SCHEDULE, "FANS", "b", T0 - 60) == "the buyer is not on this presale's list"
    assert hold_refusal(S.PUBLISHED, SCHEDULE, "FANS", "b-listed", T0 - 60) is None
    assert hold_refusal(S.PUBLISHED, SCHEDULE, "OPEN", "anyone", T0 - 40) is None
    assert hold_refusal(S.PUBLISHED, SCHEDULE, "FANS", "b-listed", T0 - 150) == "the sale has not opened yet"


def test_published_takes_every_hold_once_sale_opens_at_has_passed() -> None:
    # The timer moves the status within a second; the gateway does not wait for it.
    assert hold_refusal(S.PUBLISHED, SCHEDULE, None, "b", T0) is None
    assert hold_refusal(S.PUBLISHED, SaleSchedule(), None, "b", T0) == "the sale has not opened yet"


def test_schedule_problems_name_every_field() -> None:
    bad = SaleSchedule(
        sale_opens_at=T0,
        sale_closes_at=T0,
        presales=(
            Presale("A", T0, T0),
            Presale("A", T0 + 5, T0 + 6),
            Presale("B", T0 - 5, T0 + 1, frozenset(str(n) for n in range(limits.presale_buyer_ids_max + 1))),
        ),
    )
    assert [p.field for p in schedule_problems(bad)] == [
        "sale_closes_at", "presales.0.closes_at", "presales.0.opens_at", "presales.1.opens_at", "presales.1.code",
        "presales.2.buyer_ids",
    ]
    assert schedule_problems(SCHEDULE) == []
    many = SaleSchedule(presales=tuple(Presale(f"P{n}", T0, T0 + 1) for n in range(limits.presales_per_event_max + 1)))
    assert [p.field for p in schedule_problems(many)] == ["presales"]


statuses = st.sampled_from(list(EventStatus))
moments = st.floats(min_value=T0 - 300, max_value=T0 + 1_100, allow_nan=False)


@given(statuses, moments, st.sampled_from([None, "FANS", "OPEN", "NOPE"]), st.sampled_from(["b", "b-listed"]))
def test_a_hold_is_let_in_only_when_the_rules_say(
    status: EventStatus, now: float, code: str | None, buyer: str
) -> None:
    allowed = hold_refusal(status, SCHEDULE, code, buyer, now) is None
    if now >= T0 + 1_000 or status not in (S.PUBLISHED, S.ON_SALE, S.SOLD_OUT):
        assert not allowed
    elif status in (S.ON_SALE, S.SOLD_OUT) or now >= T0:
        assert allowed
    else:  # published, before the sale opens: only through a running presale
        running = [p for p in SCHEDULE.presales if p.opens_at <= now < p.closes_at and p.code == code]
        expected = bool(running) and (running[0].buyer_ids is None or buyer in running[0].buyer_ids)
        assert allowed == expected
