"""The simulator's HTTP shell (Starlette): parse, apply one processor step, deliver its events, answer.

Every state-changing call of the platform needs an `Idempotency-Key`: the same key with the same request replays
the first answer (`Idempotent-Replayed: true`) and changes nothing; with another request it is a 422.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from paysim.cards import card_outcome, slow_card_s
from paysim.delivery import Deliverer
from paysim.faults import Faults
from paysim.processor import Emitted, Processor, SimRefused

request_body_bytes_max = 16 * 1024
idempotency_records_max = 200_000  # the oldest answers are forgotten first beyond this
idempotency_key_chars_max = 200
card_number_chars_max = 19

Step = Callable[[Request, Any], tuple[int, dict[str, Any], list[Emitted]]]


@dataclass(frozen=True)
class SimConfig:
    public_url: str  # where buyers reach the simulator: the base of every confirm_url
    webhook_url: str
    secret: bytes
    api_key: str | None = None  # when set, the platform's calls need `Authorization: Bearer <api_key>`
    slow_card_s: float = slow_card_s


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    fingerprint: str
    status: int
    body: dict[str, Any]


class Simulator:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.faults = Faults()
        self.processor = Processor(config.public_url, clock=time.time)
        self.deliverer = Deliverer(config.webhook_url, config.secret, self.faults)
        self._answers: OrderedDict[str, StoredAnswer] = OrderedDict()
        self._timers: set[asyncio.TimerHandle] = set()
        self.replays = 0
        self.failed_by_fault = 0
        self.lost_answers = 0

    # -- the steps -----------------------------------------------------------------------------------------

    def create(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        fields = _fields(body, required={"amount_minor", "currency"}, optional={"metadata"})
        intent = self.processor.create(fields["amount_minor"], fields["currency"], fields.get("metadata", {}))
        return 201, intent, []

    def capture(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        _fields(body, required=set(), optional=set())
        intent, events = self.processor.capture(request.path_params["intent_id"])
        return 200, intent, events

    def cancel(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        _fields(body, required=set(), optional=set())
        intent, events = self.processor.cancel(request.path_params["intent_id"])
        return 200, intent, events

    def refund(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        fields = _fields(body, required={"amount_minor", "currency"}, optional={"reason"})
        refund, events = self.processor.refund(
            request.path_params["intent_id"], fields["amount_minor"], fields["currency"], fields.get("reason", "")
        )
        return 201, refund, events

    def chargeback(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        _fields(body, required=set(), optional=set())
        intent, events = self.processor.chargeback(request.path_params["intent_id"])
        return 200, intent, events

    def confirm(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        fields = _fields(body, required={"card_number"}, optional=set())
        card = fields["card_number"]
        if not isinstance(card, str) or not card.isdigit() or not 12 <= len(card) <= card_number_chars_max:
            raise SimRefused(422, "invalid_card_number", "'card_number' is 12 to 19 digits")
        outcome = card_outcome(card, self.config.slow_card_s)
        if outcome is None:
            raise SimRefused(422, "unknown_test_card", "the simulator takes its test cards only (docs/api.md)")
        intent_id = request.path_params["intent_id"]
        intent, events = self.processor.confirm(intent_id, outcome)
        if outcome.settle_after_s > 0:
            self.deliverer.promise()
            self._later(outcome.settle_after_s, lambda: self._settle(intent_id))
        return 200, intent, events

    def _settle(self, intent_id: str) -> None:
        _, events = self.processor.settle(intent_id)
        for event in events:
            self.deliverer.enqueue(event.body, event.deliveries, promised=True)

    def _later(self, delay_s: float, work: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.discard(handle)
            work()

        handle = asyncio.get_running_loop().call_later(delay_s, run)
        self._timers.add(handle)

    # -- the shell around each step ------------------------------------------------------------------------

    def endpoint(self, step: Step, *, platform: bool, changes_state: bool) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            status, payload, headers = await self._answer(request, step, platform=platform, changes_state=changes_state)
            if self.faults.response_delay_s > 0:
                await asyncio.sleep(self.faults.response_delay_s)
            return JSONResponse(payload, status_code=status, headers=headers)

        return handle

    async def _answer(
        self, request: Request, step: Step, *, platform: bool, changes_state: bool
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if platform and not self._authorized(request):
            return _error(401, "unauthorized", "Authorization: Bearer <api key> is required")
        if self.faults.take_failure():
            self.failed_by_fault += 1
            return _error(500, "simulated_failure", "a fault asked for this 500; nothing was done")
        raw = await request.body()
        if len(raw) > request_body_bytes_max:
            return _error(413, "body_too_large", f"bodies are at most {request_body_bytes_max} bytes")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "malformed_json", "the body is not JSON")
        key = request.headers.get("idempotency-key")
        if changes_state and platform and key is None:
            return _error(400, "idempotency_key_required", "state-changing calls need an Idempotency-Key header")
        fingerprint = ""
        if key is not None:
            if not 0 < len(key) <= idempotency_key_chars_max or not key.isascii() or not key.isprintable():
                return _error(422, "invalid_idempotency_key", "1 to 200 printable ASCII characters")
            fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\0".encode() + raw).hexdigest()
            stored = self._answers.get(key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    return _error(422, "idempotency_key_reused", "this key was used for another request")
                self.replays += 1
                return stored.status, stored.body, {"Idempotent-Replayed": "true"}
        if changes_state and not self.deliverer.has_room():
            return _error(503, "webhook_backlog_full", "too many webhooks waiting; try again later")
        try:
            status, payload, events = step(request, body)
        except SimRefused as refused:
            status, payload, _ = _error(refused.status, refused.code, refused.message)
            events = []
        for event in events:
            self.deliverer.enqueue(event.body, event.deliveries)
        if key is not None and status < 500:
            self._remember(key, StoredAnswer(fingerprint, status, payload))
        if changes_state and status < 400 and self.faults.take_lost_answer():
            self.lost_answers += 1
            return _error(500, "simulated_lost_answer", "a fault asked for this 500; the call DID take effect")
        return status, payload, {}

    def _authorized(self, request: Request) -> bool:
        if self.config.api_key is None:
            return True
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.config.api_key}".encode())

    def _remember(self, key: str, answer: StoredAnswer) -> None:
        self._answers[key] = answer
        while len(self._answers) > idempotency_records_max:
            self._answers.popitem(last=False)

    # -- the test switch and the audit ---------------------------------------------------------------------

    async def stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                **self.processor.audit(),
                "webhooks": self.deliverer.stats.as_json(self.deliverer.backlog),
                "idempotent_replays": self.replays,
                "failed_by_fault": self.failed_by_fault,
                "lost_answers": self.lost_answers,
            }
        )

    async def faults_route(self, request: Request) -> Response:
        if request.method == "DELETE":
            fresh = Faults()
            for name, value in fresh.as_json().items():
                setattr(self.faults, name, value)
        elif request.method == "POST":
            try:
                changes = json.loads(await request.body())
            except ValueError:
                return JSONResponse(_error(400, "malformed_json", "the body is not JSON")[1], status_code=400)
            problem = self.faults.update(changes)
            if problem is not None:
                return JSONResponse(_error(422, "invalid_faults", problem)[1], status_code=422)
        return JSONResponse(self.faults.as_json())

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def get_intent(self, request: Request, body: Any) -> tuple[int, dict[str, Any], list[Emitted]]:
        return 200, self.processor.get(request.path_params["intent_id"]), []

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.deliverer.start()
        try:
            yield
        finally:
            for handle in self._timers:
                handle.cancel()
            await self.deliverer.stop()


def create_app(config: SimConfig) -> Starlette:
    sim = Simulator(config)
    intent = "/v1/intents/{intent_id:str}"
    routes = [
        Route("/v1/intents", sim.endpoint(sim.create, platform=True, changes_state=True), methods=["POST"]),
        Route(intent, sim.endpoint(sim.get_intent, platform=True, changes_state=False), methods=["GET"]),
        Route(f"{intent}/confirm", sim.endpoint(sim.confirm, platform=False, changes_state=True), methods=["POST"]),
        Route(f"{intent}/capture", sim.endpoint(sim.capture, platform=True, changes_state=True), methods=["POST"]),
        Route(f"{intent}/cancel", sim.endpoint(sim.cancel, platform=True, changes_state=True), methods=["POST"]),
        Route(f"{intent}/refunds", sim.endpoint(sim.refund, platform=True, changes_state=True), methods=["POST"]),
        # the buyer's bank, as a test's switch: the payment is taken back and payment.charged_back delivered
        Route("/_sim/intents/{intent_id:str}/chargeback", sim.endpoint(sim.chargeback, platform=True,
                                                                      changes_state=True), methods=["POST"]),
        Route("/_sim/stats", sim.stats, methods=["GET"]),
        Route("/_sim/faults", sim.faults_route, methods=["GET", "POST", "DELETE"]),
        Route("/_sim/health", sim.health, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=sim.lifespan)
    app.state.simulator = sim
    return app


def _fields(body: Any, *, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SimRefused(422, "invalid_request", "the body is a JSON object")
    missing = required - body.keys()
    unknown = body.keys() - required - optional
    if missing or unknown:
        raise SimRefused(422, "invalid_request", f"missing {sorted(missing)}, unknown {sorted(unknown)}")
    return body


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return status, {"error": {"code": code, "message": message}}, {}
