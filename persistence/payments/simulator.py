"""`PaymentProvider` over HTTP to the simulator (paysim/), with bounded time and bounded retries.

Each call is retried on what may be transient (a refused or broken connection, a timeout, 429, 5xx) with the
same Idempotency-Key, so a retry after a lost answer replays the provider's first answer instead of charging
again. A retry ends at `attempts_max` attempts or `total_s_max` seconds, whichever comes first, then
`ProviderUnavailable`. A 4xx is the provider's answer and is not retried (`ProviderRefused`).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from engine.payments.provider import (
    CreateIntent,
    Intent,
    ProviderError,
    ProviderRefused,
    ProviderUnavailable,
    Refund,
    RefundRequest,
    WebhookEvent,
)
from engine.payments.webhooks import read_webhook
from engine.payments.wire import MalformedProviderData, intent_from_json, refund_from_json

PROVIDER_NAME = "simulator"
answer_bytes_max = 64 * 1024
_RETRIED_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts_max: int = 5
    total_s_max: float = 10.0  # the whole call, every attempt and backoff included
    attempt_s_max: float = 3.0  # one request, connect to last byte
    backoff_s_first: float = 0.05
    backoff_s_max: float = 1.0

    def __post_init__(self) -> None:
        assert self.attempts_max >= 1 and 0 < self.attempt_s_max <= self.total_s_max, self
        assert 0 < self.backoff_s_first <= self.backoff_s_max, self


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: Any


class SimulatorProvider:
    def __init__(
        self,
        base_url: str,
        webhook_secret: bytes,
        *,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._secret = webhook_secret
        self._api_key = api_key
        self._retry = retry or RetryPolicy()
        self._monotonic = monotonic
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SimulatorProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the port ------------------------------------------------------------------------------------------

    async def create_intent(self, request: CreateIntent) -> Intent:
        body = {"amount_minor": request.amount_minor, "currency": request.currency, "metadata": dict(request.metadata)}
        return _intent(await self._call("POST", "/v1/intents", body, request.idempotency_key))

    async def confirm(self, intent_id: str, card_number: str) -> Intent:
        # the buyer's call carries a key too, drawn once here, so this client's own retries stay one confirm
        key = "confirm-" + secrets.token_hex(16)
        path = f"/v1/intents/{_path_id(intent_id)}/confirm"
        return _intent(await self._call("POST", path, {"card_number": card_number}, key))

    async def capture(self, intent_id: str, idempotency_key: str) -> Intent:
        path = f"/v1/intents/{_path_id(intent_id)}/capture"
        return _intent(await self._call("POST", path, {}, idempotency_key))

    async def cancel(self, intent_id: str, idempotency_key: str) -> Intent:
        path = f"/v1/intents/{_path_id(intent_id)}/cancel"
        return _intent(await self._call("POST", path, {}, idempotency_key))

    async def refund(self, request: RefundRequest) -> Refund:
        path = f"/v1/intents/{_path_id(request.intent_id)}/refunds"
        body = {"amount_minor": request.amount_minor, "currency": request.currency, "reason": request.reason}
        answer = await self._call("POST", path, body, request.idempotency_key)
        try:
            return refund_from_json(answer)
        except MalformedProviderData as error:
            raise ProviderError(f"the provider's refund is malformed: {error}") from error

    async def get_intent(self, intent_id: str) -> Intent:
        return _intent(await self._call("GET", f"/v1/intents/{_path_id(intent_id)}", None, None))

    def parse_webhook(self, body: bytes, signature_header: str, now_s: float) -> WebhookEvent:
        return read_webhook(self._secret, body, signature_header, now_s)

    # -- one call, retried within bounds -------------------------------------------------------------------

    async def _call(self, method: str, path: str, body: dict[str, Any] | None, key: str | None) -> Any:
        policy = self._retry
        started = self._monotonic()
        backoff = policy.backoff_s_first
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = self._headers(key)
        last = "no attempt"
        for attempt in range(1, policy.attempts_max + 1):
            remaining = policy.total_s_max - (self._monotonic() - started)
            if remaining <= 0:
                break
            try:
                answer = await self._attempt(method, path, data, headers, min(policy.attempt_s_max, remaining))
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:  # ValueError: an answer not JSON
                last = f"{type(error).__name__}: {error}"
            else:
                if 200 <= answer.status < 300:
                    return answer.body
                if answer.status < 500 and answer.status not in _RETRIED_STATUSES:
                    code, message = _error_of(answer.body)
                    raise ProviderRefused(answer.status, code, message)
                last = f"HTTP {answer.status} {_error_of(answer.body)[0]}"
            if attempt == policy.attempts_max:
                break
            pause = min(backoff, policy.total_s_max - (self._monotonic() - started))
            if pause <= 0:
                break
            await self._sleep(pause)
            backoff = min(backoff * 2, policy.backoff_s_max)
        raise ProviderUnavailable(f"{method} {path}: no answer within the retry bounds ({last})")

    async def _attempt(
        self, method: str, path: str, data: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> _Answer:
        session = self._open_session()
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with session.request(method, self._base_url + path, data=data, headers=headers, timeout=timeout) as r:
            raw = await r.content.read(answer_bytes_max + 1)
            if len(raw) > answer_bytes_max:
                raise ValueError(f"the answer is longer than {answer_bytes_max} bytes")
            return _Answer(status=r.status, body=json.loads(raw) if raw else None)

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        return headers


def _intent(answer: Any) -> Intent:
    try:
        return intent_from_json(answer)
    except MalformedProviderData as error:
        raise ProviderError(f"the provider's intent is malformed: {error}") from error


def _error_of(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "unknown")), str(error.get("message", ""))
    return "unknown", ""


def _path_id(intent_id: str) -> str:
    # ids go into the path as they are: refuse anything that could change the path instead of escaping it
    if (
        not intent_id
        or len(intent_id) > 64
        or not intent_id.isascii()
        or not all(c.isalnum() or c in "_-" for c in intent_id)
    ):
        raise ProviderRefused(404, "intent_not_found", "not an intent id")
    return intent_id
