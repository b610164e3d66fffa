"""An event's sale schedule (sale_opens_at, sale_closes_at, presales) and the one rule deciding whether a hold may
be placed now: the gateway asks it for every hold, from the event's cached meta, on its own clock.

Times are epoch seconds here (floats), so the check on the hot path is a few comparisons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine import limits
from engine.catalog.lifecycle import EventStatus
from engine.catalog.rules import Problem


@dataclass(frozen=True, slots=True)
class Presale:
    """A window before the general sale when only holders of ``code`` may hold; ``buyer_ids`` (when given) narrows
    it further to the listed buyers."""

    code: str
    opens_at: float
    closes_at: float
    buyer_ids: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class SaleSchedule:
    sale_opens_at: float | None = None
    sale_closes_at: float | None = None
    presales: tuple[Presale, ...] = ()


def schedule_problems(schedule: SaleSchedule) -> list[Problem]:
    """Every rule the schedule breaks, each naming its request field; empty when it is accepted."""
    problems = []
    opens, closes = schedule.sale_opens_at, schedule.sale_closes_at
    if opens is not None and closes is not None and closes <= opens:
        problems.append(Problem("sale_closes_at", "must be after sale_opens_at"))
    if len(schedule.presales) > limits.presales_per_event_max:
        problems.append(Problem("presales", f"at most {limits.presales_per_event_max} presales per event"))
    seen: set[str] = set()
    for i, presale in enumerate(schedule.presales):
        if presale.closes_at <= presale.opens_at:
            problems.append(Problem(f"presales.{i}.closes_at", "must be after opens_at"))
        if closes is not None and presale.opens_at >= closes:
            problems.append(Problem(f"presales.{i}.opens_at", "must be before sale_closes_at"))
        if presale.code in seen:
            problems.append(Problem(f"presales.{i}.code", "repeats a presale code"))
        seen.add(presale.code)
        if presale.buyer_ids is not None and len(presale.buyer_ids) > limits.presale_buyer_ids_max:
            problems.append(Problem(f"presales.{i}.buyer_ids", f"at most {limits.presale_buyer_ids_max} buyer ids"))
    return problems


def open_presales(schedule: SaleSchedule, now: float) -> list[Presale]:
    return [p for p in schedule.presales if p.opens_at <= now < p.closes_at]


def hold_refusal(
    status: str, schedule: SaleSchedule, presale_code: str | None, buyer_id: str, now: float
) -> str | None:
    """Why a hold may not be placed now (answered 409 not_on_sale), or None when it may.

    - on sale (or sold out: the inventory answers what is left): yes, until ``sale_closes_at``;
    - published: once ``sale_opens_at`` has passed (the timer moves the status within a second; the gateway does
      not wait for it), or inside an open presale window with that presale's code (and, when the presale lists
      buyers, a listed buyer id);
    - any other status: no.
    """
    closes = schedule.sale_closes_at
    if closes is not None and now >= closes:
        return "the sale has closed"
    if status in (EventStatus.ON_SALE, EventStatus.SOLD_OUT):
        return None
    if status != EventStatus.PUBLISHED:
        return f"the event is {status}"
    opens = schedule.sale_opens_at
    if opens is not None and now >= opens:
        return None
    windows = open_presales(schedule, now)
    if not windows:
        return "the sale has not opened yet"
    if presale_code is None:
        return "a presale is running: the hold needs its presale_code"
    presale = _by_code(windows, presale_code)
    if presale is None:
        return "no presale running now has this code"
    if presale.buyer_ids is not None and buyer_id not in presale.buyer_ids:
        return "the buyer is not on this presale's list"
    return None


def _by_code(presales: Sequence[Presale], code: str) -> Presale | None:
    return next((p for p in presales if p.code == code), None)
