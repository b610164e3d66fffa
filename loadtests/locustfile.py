"""Locust journeys for the realistic flash-sale mix: buyers and seat-map watchers on ONE on-sale event.

    .venv/bin/locust -f loadtests/locustfile.py --headless -u 200 -r 50 -t 30s \\
        --host http://127.0.0.1:8000 --key vk_...

Against `make up` that is all it needs: without ``--event-id`` the test_start listener creates and publishes an
event through the API (``--event-seats`` seats in rows of 50, plus ``--event-ga`` GA units, holds living
120 s, 10 tickets per buyer) and every user shares it. In a distributed run (``--master``/``--worker``) only the
master creates it; the workers receive its id with the master's options. In the web UI the first start creates
it and later starts reuse it.

Options (environment fallbacks in brackets):

- ``--key`` [VOELGOED_KEY]: the API key (needs events:read, inventory:read/hold/confirm; events:write to create).
- ``--event-id`` [VOELGOED_EVENT_ID]: an event already on sale; otherwise one is created.
- ``--confirm-ratio 0.6 --release-ratio 0.2 --abandon-ratio 0.2``: what a buyer does with a hold (relative
  weights): confirm it, release it, or abandon it (do nothing; it expires after its TTL).
- ``--ga-share 0.3``: the share of buy journeys that ask for GA units when both seats and GA are available.
- ``--tickets-per-hold-max 4``: a hold asks for 1..N seats (neighbours in bitmap order) or GA units.
- ``--hold-ttl-s 0``: the ``ttl_s`` of each hold (0: the event's own); short TTLs make abandons recycle fast.

Users and their task mix (weights), with think times:

- ``Buyer`` (weight 10), ``wait_time = between(0.5, 2.0)`` s between journeys. Fetches the seat ids once.
  - ``buy`` (7): read the availability, pick seats (a random available seat and its available neighbours, at
    most ``seat_gap_max`` positions apart) or a GA quantity, think 0.1-0.5 s, hold, then think 0.5-2.5 s (the
    checkout) and confirm / release / abandon. A sold-out event ends the journey after the availability read.
  - ``browse`` (3): read the availability only (a refreshing seat map).
- ``Watcher`` (weight 1): keeps the live websocket open and checks that deltas follow their snapshot with
  consecutive versions; on a gap it reconnects for a fresh snapshot.

Each buyer is one ``buyer_id``; once its held-or-bought tickets would pass the event's ``max_tickets_per_buyer``
it continues as a fresh buyer id (a new person in the queue), so the limit's 422 never comes up. A confirm carries
an Idempotency-Key and is retried with the same key (and order_ref) after a 503 or a lost answer, at most
``confirm_attempts_max`` times, sleeping the ``Retry-After`` (capped).

Stats names. HTTP: ``availability``, ``seats``, ``hold seats``, ``hold ga``, ``confirm``, ``release``; an
expected refusal is a success under its own name with the status: ``hold seats (409)`` (seats taken),
``hold ga (409)`` (sold out), ``confirm (410)`` / ``release (410)`` (the hold expired during checkout). Everything
else (5xx, timeouts, other codes) is a failure, so Locust's failure count means real failures and its exit code is
0 exactly when there were none. Each confirm attempt is its own request: a 503 that a retry then cures still
counts as one failure (the platform was unable once).
Websocket (type ``WS``): ``ws connect`` (handshake time), ``ws snapshot`` (the first one timed from the start of the
connect, server-sent resyncs 0 ms), ``ws delta`` (0 ms), and as failures ``ws gap`` (the server promises
consecutive versions after each snapshot, so a gap a client sees is a broken promise), ``ws closed`` and
``ws message`` (not JSON or an unknown type). A setup failure (bad key, unknown event) exits with code 2.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote, urlsplit

import gevent
import locust  # noqa: F401  # before requests: locust monkey-patches with gevent, which must precede ssl's import
import requests
import websocket
from locust import HttpUser, User, between, constant, events, task
from locust.argument_parser import LocustArgumentParser
from locust.clients import ResponseContextManager
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

logger = logging.getLogger(__name__)

request_timeout_s = 10.0
confirm_attempts_max = 4
retry_after_s_max = 2.0  # a server asking for longer would stall a buyer past a short test; retry sooner
seat_gap_max = 3  # "adjacent-ish": a picked seat is at most this many bitmap positions after the previous one
pick_think_s = (0.1, 0.5)  # looking at the seat map before holding
checkout_think_s = (0.5, 2.5)  # entering payment details before confirming (or changing one's mind)
ws_receive_timeout_s = 5.0  # a quiet feed is normal: after this long the task just returns and listens again
ws_close_timeout_s = 1.0  # waiting for the server's close frame must not hold up the end of a run
ws_reconnect_pause_s = 1.0  # after a failed connect, so a down gateway is not hammered by watchers
created_event_seats_per_row = 50
created_event_rows_per_section_max = 500  # the API's limit on rows per section
created_event_hold_ttl_s = 120
created_event_max_per_buyer = 10
created_event_starts_in_days = 30
setup_failed_exit_code = 2  # distinct from Locust's 1 (the run had failures)


class SetupError(Exception):
    """The run cannot start: a missing option, or the event cannot be created or read."""


class VersionGap(Exception):
    """A delta whose version is not the one after the last snapshot or delta."""


@dataclass(frozen=True)
class Mix:
    confirm: float
    release: float
    abandon: float
    ga_share: float
    tickets_per_hold_max: int
    hold_ttl_s: int  # 0: the event's own


@dataclass(frozen=True)
class Plan:
    """What every user needs to know about the sale, built once per process in test_start."""

    host: str
    key: str
    event_id: str
    ga_codes: tuple[str, ...]
    seated: bool
    max_per_buyer: int
    mix: Mix


_plan: Plan | None = None


@events.init_command_line_parser.add_listener
def _add_arguments(parser: LocustArgumentParser) -> None:
    # On the parser itself, not a group: only LocustArgumentParser.add_argument knows is_secret.
    parser.add_argument("--key", env_var="VOELGOED_KEY", default="", is_secret=True, help="API key (vk_...)")
    parser.add_argument("--event-id", env_var="VOELGOED_EVENT_ID", default="",
                       help="An on-sale event; without it one is created and published")
    parser.add_argument("--confirm-ratio", type=float, default=0.6, help="Weight of confirming a hold")
    parser.add_argument("--release-ratio", type=float, default=0.2, help="Weight of releasing a hold")
    parser.add_argument("--abandon-ratio", type=float, default=0.2, help="Weight of letting a hold expire")
    parser.add_argument("--ga-share", type=float, default=0.3, help="Share of buy journeys asking for GA")
    parser.add_argument("--tickets-per-hold-max", type=int, default=4, help="A hold asks for 1..N tickets")
    parser.add_argument("--hold-ttl-s", type=int, default=0, help="ttl_s of each hold (0: the event's)")
    parser.add_argument("--event-seats", type=int, default=2000, help="Seats of a created event")
    parser.add_argument("--event-ga", type=int, default=5000, help="GA capacity of a created event")


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_kwargs: Any) -> None:
    global _plan
    options = environment.parsed_options
    try:
        if options is None:
            raise SetupError("the locustfile's options are missing (run it with the locust command)")
        if not options.event_id and not isinstance(environment.runner, WorkerRunner):
            # Set on the options so that a master hands the id to its workers with the spawn message.
            options.event_id = _create_event(environment.host or "", options.key, options)
        if not isinstance(environment.runner, MasterRunner):
            _plan = _load_plan(environment.host or "", options)
    except (SetupError, requests.RequestException) as error:
        logger.error("flash-sale setup failed: %s", error)
        environment.process_exit_code = setup_failed_exit_code
        if environment.runner is not None:
            # Quit once the runner's start() (which fired this event) has returned.
            gevent.spawn_later(0, environment.runner.quit)


def _api(host: str, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A set-up call, outside Locust's stats."""
    if not host:
        raise SetupError("--host is required")
    if not key:
        raise SetupError("--key (or VOELGOED_KEY) is required")
    response = requests.request(method, host.rstrip("/") + path, json=body, timeout=request_timeout_s,
                                headers={"Authorization": f"Bearer {key}"})
    if response.status_code >= 300:
        raise SetupError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    return cast(dict[str, Any], response.json())


def _create_event(host: str, key: str, options: Any) -> str:
    starts_at = datetime.now(UTC) + timedelta(days=created_event_starts_in_days)
    types: list[dict[str, Any]] = []
    body: dict[str, Any] = {"name": f"locust flash sale {datetime.now(UTC):%Y-%m-%d %H:%M:%S}",
                            "starts_at": starts_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            "hold_ttl_s": created_event_hold_ttl_s,
                            "max_tickets_per_buyer": created_event_max_per_buyer, "ticket_types": types}
    if options.event_seats > 0:
        body["seating"] = _seating(options.event_seats)
        types.append({"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}})
    if options.event_ga > 0:
        types.append({"code": "GA", "kind": "ga", "capacity": options.event_ga,
                      "price": {"amount_minor": 15000, "currency": "ZAR"}})
    event_id = str(_api(host, key, "POST", "/v1/events", body)["id"])
    _api(host, key, "POST", f"/v1/events/{event_id}/publish")
    logger.info("created and published event %s", event_id)
    return event_id


def _seating(seats: int) -> dict[str, Any]:
    """Rows of `created_event_seats_per_row` (the last one shorter), split over sections S1, S2, ..."""
    row_count = math.ceil(seats / created_event_seats_per_row)
    rows = [{"label": str(n + 1), "seats": min(created_event_seats_per_row, seats - n * created_event_seats_per_row)}
            for n in range(row_count)]
    step = created_event_rows_per_section_max
    return {"sections": [{"name": f"S{i // step + 1}", "rows": rows[i:i + step]} for i in range(0, row_count, step)]}


def _load_plan(host: str, options: Any) -> Plan:
    mix = Mix(confirm=options.confirm_ratio, release=options.release_ratio, abandon=options.abandon_ratio,
              ga_share=options.ga_share, tickets_per_hold_max=options.tickets_per_hold_max,
              hold_ttl_s=options.hold_ttl_s)
    if min(mix.confirm, mix.release, mix.abandon) < 0 or mix.confirm + mix.release + mix.abandon <= 0:
        raise SetupError("the confirm/release/abandon ratios must be >= 0 with a positive sum")
    if not 0 <= mix.ga_share <= 1 or mix.tickets_per_hold_max < 1 or mix.hold_ttl_s < 0:
        raise SetupError("--ga-share must be in [0, 1], --tickets-per-hold-max >= 1, --hold-ttl-s >= 0")
    event = _api(host, options.key, "GET", f"/v1/events/{options.event_id}")
    if event["status"] != "on_sale":
        raise SetupError(f"event {options.event_id} is {event['status']}, not on_sale")
    kinds = {str(t["code"]): str(t["kind"]) for t in event["ticket_types"]}
    return Plan(host=host, key=options.key, event_id=options.event_id,
                ga_codes=tuple(code for code, kind in kinds.items() if kind == "ga"),
                seated="seated" in kinds.values(), max_per_buyer=int(event["max_tickets_per_buyer"]), mix=mix)


def _require_plan() -> Plan:
    if _plan is None:
        raise StopUser()  # set-up failed (already logged); the runner is quitting
    return _plan


def available_indices(bitmap_b64: str, total: int) -> list[int]:
    """Bit i of the bitmap (MSB first in each byte) is 1 when seat i is available."""
    indices: list[int] = []
    for byte_index, byte in enumerate(base64.b64decode(bitmap_b64)):
        if byte:  # skipping empty bytes keeps a mostly sold-out map cheap
            base = byte_index * 8
            indices.extend(base + bit for bit in range(8) if byte & (0x80 >> bit) and base + bit < total)
    return indices


def pick_neighbours(available: list[int], count: int) -> list[int]:
    """A random available seat and the available seats after it, while they stay close together."""
    start = random.randrange(max(1, len(available) - count + 1))
    picked = [available[start]]
    for index in available[start + 1:start + count]:
        if index - picked[-1] > seat_gap_max:
            break
        picked.append(index)
    return picked


def _error_code(response: ResponseContextManager) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


class Buyer(HttpUser):
    weight = 10
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.plan = _require_plan()
        self.client.headers["Authorization"] = f"Bearer {self.plan.key}"
        self.buyer_base = f"lb-{uuid.uuid4().hex[:16]}"
        self.buyer_generation = 0
        self.tickets_spent = 0  # held-or-bought under the current buyer id, counted conservatively
        self.seat_ids: list[str] = []

    @task(3)
    def browse(self) -> None:
        self._availability()

    @task(7)
    def buy(self) -> None:
        availability = self._availability()
        if availability is None:
            return
        request = self._choose_hold(availability)
        if request is None:
            return  # sold out: the buyer leaves
        gevent.sleep(random.uniform(*pick_think_s))
        hold = self._hold(*request)
        if hold is None:
            return
        gevent.sleep(random.uniform(*checkout_think_s))
        self._finish(hold)

    def _send(self, method: str, path: str, name: str, ok: int, expected: frozenset[int] = frozenset(),
              body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> ResponseContextManager:
        """One request; an expected refusal is a success named with its status, anything else a failure."""
        with self.client.request(method, path, name=name, json=body, headers=headers, timeout=request_timeout_s,
                                 catch_response=True) as response:
            if response.status_code == ok:
                response.success()
            elif response.status_code in expected:
                cast(dict[str, Any], response.request_meta)["name"] = f"{name} ({response.status_code})"
                response.success()
            elif response.status_code == 0:
                response.failure(response.error or "no answer")
            else:
                response.failure(f"{response.status_code} {_error_code(response)}")
        return response

    def _availability(self) -> dict[str, Any] | None:
        response = self._send("GET", f"/v1/events/{self.plan.event_id}/availability", "availability", 200)
        return cast(dict[str, Any], response.json()) if response.status_code == 200 else None

    def _seat_ids(self) -> list[str]:
        """Fetched once per user (seat ids never change); retried on a later journey if it failed."""
        if not self.seat_ids:
            response = self._send("GET", f"/v1/events/{self.plan.event_id}/seats", "seats", 200)
            if response.status_code == 200:
                self.seat_ids = list(response.json()["seat_ids"])
        return self.seat_ids

    def _choose_hold(self, availability: dict[str, Any]) -> tuple[str, dict[str, Any], int] | None:
        """(stats name, body, tickets) of the next hold, or None when nothing is left."""
        wanted = random.randint(1, min(self.plan.mix.tickets_per_hold_max, self.plan.max_per_buyer))
        ga_open = [t["code"] for t in availability["ticket_types"]
                   if t["code"] in self.plan.ga_codes and t["available"] > 0]
        seats = availability.get("seats") or {}
        seats_open = self.plan.seated and seats.get("available", 0) > 0
        if ga_open and (not seats_open or random.random() < self.plan.mix.ga_share):
            body: dict[str, Any] = {"ticket_type": random.choice(ga_open), "quantity": wanted}
            return "hold ga", self._with_buyer(body, wanted), wanted
        if not seats_open:
            return None
        seat_ids = self._seat_ids()
        picked = [seat_ids[i] for i in pick_neighbours(available_indices(seats["bitmap"], seats["total"]), wanted)
                  if i < len(seat_ids)]
        if not picked:
            return None
        return "hold seats", self._with_buyer({"seats": picked}, len(picked)), len(picked)

    def _with_buyer(self, body: dict[str, Any], tickets: int) -> dict[str, Any]:
        """Adds buyer_id (a fresh one once this buyer's limit would be passed) and the configured ttl_s."""
        if self.tickets_spent + tickets > self.plan.max_per_buyer:
            self.buyer_generation += 1
            self.tickets_spent = 0
        body["buyer_id"] = f"{self.buyer_base}-{self.buyer_generation}"
        if self.plan.mix.hold_ttl_s:
            body["ttl_s"] = self.plan.mix.hold_ttl_s
        return body

    def _hold(self, name: str, body: dict[str, Any], tickets: int) -> tuple[str, int] | None:
        """(hold id, tickets) of a new hold, or None."""
        response = self._send("POST", f"/v1/events/{self.plan.event_id}/holds", name, 201, frozenset({409}), body)
        if response.status_code == 201:
            self.tickets_spent += tickets
            return str(response.json()["hold_id"]), tickets
        if response.status_code != 409:
            self.tickets_spent += tickets  # a lost answer may hide a hold that counts toward the limit
        return None

    def _finish(self, hold: tuple[str, int]) -> None:
        mix = self.plan.mix
        outcome = random.choices(("confirm", "release", "abandon"), (mix.confirm, mix.release, mix.abandon))[0]
        hold_id, tickets = hold
        if outcome == "confirm":
            self._confirm(hold_id)
        elif outcome == "release" and self._release(hold_id):
            self.tickets_spent -= tickets
        # abandon: nothing to send; the hold keeps counting toward the limit until it expires

    def _confirm(self, hold_id: str) -> None:
        """Retries a 503 or a lost answer with the same Idempotency-Key and order_ref: the retry finds the sale."""
        body = {"order_ref": f"ord-{uuid.uuid4().hex}"}
        headers = {"Idempotency-Key": f"confirm-{uuid.uuid4().hex}"}
        for _ in range(confirm_attempts_max):
            response = self._send("POST", f"/v1/holds/{hold_id}/confirm", "confirm", 201, frozenset({410}), body,
                                  headers)
            if response.status_code not in (0, 503):
                return
            gevent.sleep(_retry_after_s(response))

    def _release(self, hold_id: str) -> bool:
        return self._send("DELETE", f"/v1/holds/{hold_id}", "release", 204, frozenset({410})).status_code == 204


def _retry_after_s(response: ResponseContextManager) -> float:
    try:
        return min(float(response.headers.get("Retry-After", 1)), retry_after_s_max)
    except ValueError:
        return retry_after_s_max


class Watcher(User):
    """A seat-map page kept open: one live websocket, reconnected after a gap or a close."""

    weight = 1
    wait_time = constant(0)  # recv() blocks for up to ws_receive_timeout_s, so no think time is needed

    def on_start(self) -> None:
        self.plan = _require_plan()
        self.socket: websocket.WebSocket | None = None
        self.version: int | None = None  # of the last snapshot or delta on this connection
        self.connect_started = 0.0

    def on_stop(self) -> None:
        self._close()

    @task
    def watch(self) -> None:
        if self.socket is None:
            self._connect()
        if self.socket is not None:
            self._receive()

    def _fire(self, name: str, response_time_ms: float, length: int = 0, error: Exception | None = None) -> None:
        self.environment.events.request.fire(request_type="WS", name=name, response_time=response_time_ms,
                                             response_length=length, exception=error, context={})

    def _url(self) -> str:
        parts = urlsplit(self.plan.host)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}/v1/events/{self.plan.event_id}/live?key={quote(self.plan.key, safe='')}"

    def _connect(self) -> None:
        self.connect_started = time.perf_counter()
        try:
            self.socket = websocket.create_connection(self._url(), timeout=request_timeout_s)
        except (websocket.WebSocketException, OSError) as error:
            self._fire("ws connect", self._elapsed_ms(), error=error)
            gevent.sleep(ws_reconnect_pause_s)
            return
        self.socket.settimeout(ws_receive_timeout_s)
        self.version = None
        self._fire("ws connect", self._elapsed_ms())

    def _receive(self) -> None:
        assert self.socket is not None
        try:
            text = self.socket.recv()
        except websocket.WebSocketTimeoutException:
            return  # nothing changed for a while
        except (websocket.WebSocketException, OSError) as error:
            self._fire("ws closed", 0, error=error)
            self._close()
            return
        self._handle(text)

    def _handle(self, text: str | bytes) -> None:
        try:
            message = json.loads(text)
            kind, version = message["type"], int(message["version"])
        except (ValueError, KeyError, TypeError) as error:
            self._fire("ws message", 0, len(text), error)
            return
        if kind == "snapshot":
            # The first snapshot answers the connect; later ones are server-sent resyncs.
            self._fire("ws snapshot", self._elapsed_ms() if self.version is None else 0, len(text))
            self.version = version
        elif kind == "delta" and self.version is not None and version == self.version + 1:
            self._fire("ws delta", 0, len(text))
            self.version = version
        elif kind == "delta":
            self._fire("ws gap", 0, len(text), VersionGap(f"after version {self.version} came {version}"))
            self._close()  # the next watch() reconnects, and a new connection starts with a fresh snapshot
        else:
            self._fire("ws message", 0, len(text), ValueError(f"unknown message type {kind!r}"))

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self.connect_started) * 1000.0

    def _close(self) -> None:
        if self.socket is not None:
            self.socket.close(timeout=ws_close_timeout_s)
            self.socket = None
