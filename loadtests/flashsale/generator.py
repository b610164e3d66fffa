"""A load-generator process: plays its share of the buyers against the platform over keep-alive HTTP (aiohttp).

Open loop: each buyer starts at its planned arrival time whatever the platform is doing, so when the platform
falls behind, requests wait in this process's connection pool and the wait counts as latency (a request's clock
starts when it was due). Everything is bounded: connections, journeys in flight, each request's time, retries.
The process reports progress on a queue every ``progress_interval_s`` and its whole outcome at the end.

Buyers behave like people on a checkout page that polls availability: they pick seats the page shows free, and
a buyer whose page shows nothing left for them (no free seat, fewer GA units than wanted) leaves without asking,
before the first try and before each new choice after a 409. So once a sale is sold out, arrivals stop costing
hold requests, as on a real sold-out page; the report counts them as buyers_saw_sold_out.

With ``--buyers-pick best`` a seated buyer names no seats: it asks for the best ``quantity`` seats of a zone
(``best_available``; its zone drawn from its own seed, the other zones as fallbacks, most free on its map first),
and the inventory picks them. The seats of a 201 are marked taken on this process's map like a picked seat.

With ``--checkout`` a confirming buyer checks out instead, posts its card to the simulator (on a session without
the platform's key) and polls its order, gently and bounded, until it is paid with its tickets or has ended
(docs/loadtests.md "Checkout sales").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import uvloop

from engine.ids import sale_id_of_hold
from loadtests.flashsale.cards import card_of
from loadtests.flashsale.plan import ABANDON, CONFIRM, BuyerPlan
from loadtests.flashsale.samples import (
    AVAILABILITY,
    CHECKOUT,
    HOLD,
    NO_ANSWER,
    ORDER,
    PAY,
    RELEASE,
    AckedSale,
    AckedTicket,
    CardPosted,
    GeneratorOutcome,
    Sample,
)
from loadtests.flashsale.samples import CONFIRM as CONFIRM_KIND
from loadtests.flashsale.scenario import GA_CODE, PICKS
from loadtests.flashsale.seatview import SeatView

request_timeout_s_max = 60.0  # includes the wait for a pooled connection: the open loop's queue
journeys_in_flight_max = 100_000
availability_refresh_s = 0.25  # how stale a buyer's seat map may be, like a page on the live websocket
progress_interval_s = 0.5
# a request that got 503 or no answer is sent again (same Idempotency-Key): 12 tries span ~7.5 s of pauses, past a
# store's restart (the harness's --fault runs)
answer_attempts_max = 12
answer_time_s_max = 150.0  # past one request_timeout_s_max: a confirm stuck behind a backlog is sent again
retry_pause_s_first = 0.05
retry_pause_s_max = 1.0
drain_s_max = 300.0  # after the last arrival, how long this process waits for its journeys to end
tickets_wait_s_max = 90.0  # --checkout: how long a buyer waits for its tickets after posting its card
order_poll_s_first = 0.25  # then each pause half as long again, up to order_poll_s_max: a page polling gently
order_poll_s_max = 1.0
RETRYABLE = frozenset({NO_ANSWER, 429, 503})
_ENDED_UNSOLD = frozenset({"failed", "expired", "cancelled"})  # order statuses that never had tickets


@dataclass(frozen=True)
class GeneratorJob:
    index: int
    target: str
    key: str
    event_id: str
    seat_ids: tuple[str, ...]
    plans: list[BuyerPlan]
    t0: float  # time.monotonic() of the sale's start: the same clock in every process of this machine
    retry: int
    connections: int
    hold_keys: bool = True
    buyers_pick: str = PICKS[0]
    checkout: bool = False
    declined_ratio: float = 0.0
    slow_ratio: float = 0.0


@dataclass
class _Progress:
    """Running counts the outcome does not already keep (it keeps buyers, sales and leavers)."""

    holds_ok: int = 0
    holds_answered: int = 0
    errors: int = 0
    done: bool = False


def run_generator(job: GeneratorJob, queue: Any) -> None:
    """The process entry point: the outcome goes on ``queue`` as ("done", index, outcome)."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        outcome = runner.run(_Sale(job, queue).run())
    queue.put(("done", job.index, outcome))


def run_ceiling(target: str, connections: int, seconds: float, queue: Any, index: int) -> None:
    """Closed loop GET /healthz on every connection for ``seconds``: the most this process can send."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        answered = runner.run(_ceiling(target, connections, seconds))
    queue.put(("ceiling", index, answered / seconds))


async def _ceiling(target: str, connections: int, seconds: float) -> int:
    connector = aiohttp.TCPConnector(limit=connections)
    answered = 0
    async with aiohttp.ClientSession(target, connector=connector) as http:
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal answered
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError, aiohttp.ClientError):
                    async with http.get("/healthz") as answer:
                        await answer.read()
                        answered += answer.status == 200

        await asyncio.gather(*(worker() for _ in range(connections)))
    return answered


class _Sale:
    def __init__(self, job: GeneratorJob, queue: Any) -> None:
        self.job = job
        self.queue = queue
        self.outcome = GeneratorOutcome()
        self.view = SeatView(job.seat_ids)
        self.ga_free: int | None = None  # GA units the page shows; None until the first availability answer
        self.progress = _Progress()
        self.http: aiohttp.ClientSession | None = None
        self.card_http: aiohttp.ClientSession | None = None

    def now(self) -> float:
        return time.monotonic() - self.job.t0

    async def run(self) -> GeneratorOutcome:
        connector = aiohttp.TCPConnector(limit=self.job.connections, force_close=False)
        headers = {"Authorization": f"Bearer {self.job.key}"}
        timeout = aiohttp.ClientTimeout(total=request_timeout_s_max)
        # the cards go to the simulator on a session of their own: it never sees the platform's API key
        async with (aiohttp.ClientSession(self.job.target, connector=connector, headers=headers,
                                          timeout=timeout) as http,
                    aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self.job.connections),
                                          timeout=timeout) as card_http):
            self.http, self.card_http = http, card_http
            helpers = [asyncio.ensure_future(self._report_progress()),
                       asyncio.ensure_future(self._refresh_seat_map())]
            try:
                await self._arrive_all()
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)
        self.progress.done = True
        self._put_progress()
        return self.outcome

    async def _arrive_all(self) -> None:
        journeys: set[asyncio.Task[None]] = set()
        for plan in self.job.plans:
            delay = plan.arrival_s - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(journeys) >= journeys_in_flight_max:
                self.outcome.buyers_dropped += 1
                continue
            self.outcome.buyers_started += 1
            task = asyncio.ensure_future(self._journey(plan))
            journeys.add(task)
            task.add_done_callback(journeys.discard)
        if journeys:
            _, late = await asyncio.wait(journeys, timeout=drain_s_max)
            self.outcome.journeys_cut_short += len(late)
            for task in late:
                task.cancel()

    async def _journey(self, plan: BuyerPlan) -> None:
        held = await self._hold(plan, random.Random(plan.seed))
        if held is None:
            return
        hold_id, units, answered_s = held
        due = answered_s + plan.think_s  # the buyer's next click is due then, however late this loop runs
        await asyncio.sleep(max(0.0, due - self.now()))
        if plan.fate == CONFIRM and self.job.checkout:
            await self._buy(plan, hold_id, units, due)
        elif plan.fate == CONFIRM:
            await self._confirm(plan, hold_id, units, due)
        elif plan.fate == ABANDON:
            self.outcome.abandoned_hold_ids.append(hold_id)
        else:
            status, _ = await self._answered(RELEASE, "DELETE", f"/v1/holds/{hold_id}", None,
                                             f"fs-release-{hold_id}", units, due)
            if status == 204:
                self.outcome.released_hold_ids.append(hold_id)

    async def _hold(self, plan: BuyerPlan, rng: random.Random) -> tuple[str, int, float] | None:
        """(hold id, units, when answered), or None. A retry after 503 or no answer resends the same body under
        the same Idempotency-Key (the first may have been applied); a retry after 409 asks for other seats."""
        due, quantity, choice = plan.arrival_s, plan.quantity, 0
        path = f"/v1/events/{self.job.event_id}/holds"
        body: dict[str, Any] | None = None
        units = 0
        for attempt in range(1 + self.job.retry):
            if body is None:
                if self._looks_sold_out(plan.ga, quantity):
                    self.outcome.buyers_saw_sold_out += 1
                    return None
                body, units = self._hold_body(plan, quantity, rng)
            key = f"fs-hold-{self.job.event_id[-12:]}-{plan.number}-{choice}" if self.job.hold_keys else None
            status, payload = await self._call(HOLD, "POST", path, due, units, body, key)
            self.progress.holds_answered += 1
            if status == 201:
                hold_id = _hold_id(payload)
                if hold_id is None:
                    self.outcome.unreadable_answers += 1
                    return None
                if "best_available" in body:
                    self.view.mark_taken(_held_seats(payload))
                self.progress.holds_ok += 1
                return hold_id, units, self.now()
            if status == 409:
                if "best_available" in body:
                    left = _seats_left(payload)
                    if left == 0:
                        self.outcome.buyers_saw_sold_out += 1  # the inventory said none left in any zone asked
                        return None
                    self.outcome.best_refused_seats_left += left is not None
                self.view.mark_taken(_taken_seats(payload))
                quantity, body, choice, due = 1, None, choice + 1, self.now()  # fewer tickets: likelier found
            elif status in RETRYABLE:
                due = self.now() + _pause(attempt)
                await asyncio.sleep(_pause(attempt))
            else:
                return None
        return None

    def _hold_body(self, plan: BuyerPlan, quantity: int, rng: random.Random) -> tuple[dict[str, Any], int]:
        body: dict[str, Any] = {"buyer_id": plan.buyer_id}
        if plan.ga:
            if self.ga_free is not None:
                self.ga_free -= quantity  # this process's next buyers see these units gone
            return body | {"ticket_type": GA_CODE, "quantity": quantity}, quantity
        if self.job.buyers_pick == "best":
            zones = self.view.zones
            preferred = zones[rng.randrange(len(zones))] if zones else ""
            (zone, *fallback), quantity = self.view.best_zones(preferred, quantity) or ([preferred], quantity)
            return body | {"best_available": {"quantity": quantity, "zone": zone, "fallback_zones": fallback}}, quantity
        body["seats"] = self.view.choose(quantity, rng)
        return body, len(body["seats"])

    def _looks_sold_out(self, ga: bool, quantity: int) -> bool:
        if ga:
            return self.ga_free is not None and self.ga_free < quantity
        return self.view.believed_free <= 0

    async def _confirm(self, plan: BuyerPlan, hold_id: str, units: int, due: float) -> None:
        body = {"order_ref": f"fs-order-{plan.number}"}
        status, payload = await self._answered(CONFIRM_KIND, "POST", f"/v1/holds/{hold_id}/confirm", body,
                                               f"fs-confirm-{hold_id}", units, due)
        if 400 <= status < 500:
            self.outcome.refused_hold_ids.append(hold_id)  # told "no sale": the audit checks there is none
        if status != 201:
            return
        try:
            sale = json.loads(payload)
            tickets = tuple(AckedTicket(t["ticket_id"], t["ticket_type"], t.get("seat_id"), t.get("unit"))
                            for t in sale["tickets"])
            acked = AckedSale(sale["sale_id"], sale["hold_id"], tickets)
        except (ValueError, KeyError, TypeError):
            self.outcome.unreadable_answers += 1  # a 201 the audit cannot check: reported, never ignored
            return
        self.outcome.sales.append(acked)

    async def _buy(self, plan: BuyerPlan, hold_id: str, units: int, due: float) -> None:
        """Checkout, the card, then the order polled until its tickets are issued or it failed (bounded)."""
        body = {"buyer": {"email": f"{plan.buyer_id}@example.com", "name": f"Buyer {plan.number}"}}
        status, payload = await self._answered(CHECKOUT, "POST", f"/v1/holds/{hold_id}/checkout", body,
                                               f"fs-checkout-{hold_id}", units, due)
        if 400 <= status < 500:
            self.outcome.refused_hold_ids.append(hold_id)  # no order, so no sale
        if status != 201:
            return
        order = _order_made(payload)
        if order is None:
            self.outcome.unreadable_answers += 1
            return
        order_id, confirm_url = order
        card = card_of(plan.number, self.job.declined_ratio, self.job.slow_ratio)
        self.outcome.cards.append(CardPosted(order_id, hold_id, card, time.time()))
        status, _ = await self._answered(PAY, "POST", confirm_url, {"card_number": card}, f"fs-pay-{order_id}",
                                         units, self.now(), card=True)
        if status not in (200, 409):  # 409: the card of an earlier try was taken already
            self.outcome.orders_unsettled += 1
            return
        await self._await_tickets(order_id, hold_id)

    async def _await_tickets(self, order_id: str, hold_id: str) -> None:
        deadline, pause = self.now() + tickets_wait_s_max, order_poll_s_first
        while self.now() < deadline:
            await asyncio.sleep(pause)
            pause = min(order_poll_s_max, pause * 1.5)
            status, payload = await self._call(ORDER, "GET", f"/v1/orders/{order_id}", self.now(), 0, None, None)
            if status != 200:
                continue
            try:
                order = json.loads(payload)
                state, tickets = order["status"], order["tickets"]
                if state == "paid" and tickets:  # paid with its tickets: as binding as a 201 confirm
                    self.outcome.sales.append(AckedSale(sale_id_of_hold(hold_id), hold_id, tuple(
                        AckedTicket(t["ticket_id"], t["ticket_type"], t.get("seat_id"), t.get("unit"))
                        for t in tickets)))
                    return
            except (ValueError, KeyError, TypeError):
                self.outcome.unreadable_answers += 1
                return
            if state in _ENDED_UNSOLD or state == "refunded":
                self.outcome.refused_hold_ids.append(hold_id)  # never a live sale of it
                (self.outcome.orders_refunded if state == "refunded" else self.outcome.orders_failed).append(order_id)
                return
        self.outcome.orders_unsettled += 1

    async def _answered(self, kind: str, method: str, path: str, body: dict[str, Any] | None, key: str,
                        units: int, due: float, *, card: bool = False) -> tuple[int, bytes]:
        """Sends until answered 2xx, again after 503 or no answer (same Idempotency-Key); the last answer.
        Each try's latency runs from when it was due: the first from ``due``, a retry from the end of its pause."""
        first_due, status, payload = due, NO_ANSWER, b""
        for attempt in range(answer_attempts_max):
            status, payload = await self._call(kind, method, path, due, units, body, key, card=card)
            if 200 <= status < 300 or status not in RETRYABLE:
                break
            if self.now() + _pause(attempt) - first_due > answer_time_s_max:
                break
            due = self.now() + _pause(attempt)
            await asyncio.sleep(_pause(attempt))
        return status, payload

    async def _call(self, kind: str, method: str, path: str, due: float, units: int, body: dict[str, Any] | None,
                    key: str | None, *, card: bool = False) -> tuple[int, bytes]:
        http = self.card_http if card else self.http
        assert http is not None
        headers = {"Idempotency-Key": key} if key else None
        try:
            async with http.request(method, path, json=body, headers=headers) as answer:
                payload = await answer.read()
                status = answer.status
                if status == 503 and not card and "Retry-After" not in answer.headers:
                    self.outcome.unavailable_without_retry_after += 1
        except (TimeoutError, aiohttp.ClientError):
            status, payload = NO_ANSWER, b""
        ok = 200 <= status < 300
        self.outcome.samples.append(Sample(kind, due, self.now(), status, units if ok else 0))
        self.progress.errors += status >= 500 or status == NO_ANSWER
        return status, payload

    async def _refresh_seat_map(self) -> None:
        path = f"/v1/events/{self.job.event_id}/availability"
        while True:
            status, payload = await self._call(AVAILABILITY, "GET", path, self.now(), 0, None, None)
            try:
                if status == 200:
                    self._refresh(json.loads(payload))
            except (ValueError, KeyError, TypeError, IndexError):
                self.outcome.unreadable_answers += 1  # the map stays as it was until the next good answer
            await asyncio.sleep(availability_refresh_s)

    def _refresh(self, availability: dict[str, Any]) -> None:
        if self.job.seat_ids:
            self.view.refresh(base64.b64decode(availability["seats"]["bitmap"]))
        ga = [t["available"] for t in availability["ticket_types"] if t["code"] == GA_CODE]
        self.ga_free = ga[0] if ga else None

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(progress_interval_s)
            self._put_progress()

    def _put_progress(self) -> None:
        with contextlib.suppress(Exception):  # progress is best effort; a full queue must not stop the sale
            self.queue.put_nowait(("progress", self.job.index, dict(
                vars(self.progress), buyers_started=self.outcome.buyers_started, confirms_ok=len(self.outcome.sales),
                saw_sold_out=self.outcome.buyers_saw_sold_out,
            )))


def _taken_seats(payload: bytes) -> list[str]:
    try:
        seats = json.loads(payload)["error"]["details"].get("seats", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return []
    return [s for s in seats if isinstance(s, str)]


def _seats_left(payload: bytes) -> int | None:
    """A best-available refusal's count of free seats in the zones asked (all of them: its fallbacks)."""
    try:
        available = json.loads(payload)["error"]["details"]["available"]
    except (ValueError, KeyError, TypeError):
        return None
    return available if isinstance(available, int) else None


def _held_seats(payload: bytes) -> list[str]:
    try:
        seats = json.loads(payload)["seats"]
    except (ValueError, KeyError, TypeError):
        return []
    return [s for s in seats if isinstance(s, str)] if isinstance(seats, list) else []


def _order_made(payload: bytes) -> tuple[str, str] | None:
    """A checkout's 201: the order's id and where its card goes."""
    try:
        order = json.loads(payload)
        return str(order["order_id"]), str(order["payment"]["confirm_url"])
    except (ValueError, KeyError, TypeError):
        return None


def _hold_id(payload: bytes) -> str | None:
    try:
        return str(json.loads(payload)["hold_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _pause(attempt: int) -> float:
    return float(min(retry_pause_s_max, retry_pause_s_first * 2**attempt))
