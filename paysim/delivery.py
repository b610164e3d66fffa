"""Webhook deliveries: a bounded backlog, delivered asynchronously with bounded retries, signed at each attempt.

At least once, like a real processor: an attempt counts as delivered on a 2xx; anything else (another status, a
refused connection, a timeout) is retried with backoff until `webhook_attempts_max` attempts or
`webhook_retry_s_max` have passed, then given up and counted. The backlog (waiting, in flight, and promised by
slow cards) is bounded: when full, the API refuses state changes with 503 instead of dropping an outcome.
Only the ``drop_webhooks`` fault drops one, on purpose (counted in ``dropped``): a lost webhook for the
platform's reconciler to find.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import aiohttp

from paysim.faults import Faults
from paysim.signing import SIGNATURE_HEADER, signature_header

webhook_backlog_max = 100_000
webhook_concurrency_max = 64
webhook_attempts_max = 8
webhook_retry_s_max = 120.0
webhook_attempt_s_max = 5.0
webhook_backoff_s_first = 0.1
webhook_backoff_s_max = 5.0
reorder_gather_s_max = 1.0  # a reorder batch that does not fill leaves after this long, as it is
stop_s_max = 5.0


@dataclass
class Delivery:
    event_id: str
    body: bytes
    due_at: float  # monotonic time of the first attempt
    attempts: int = 0


@dataclass
class DeliveryStats:
    queued: int = 0  # deliveries enqueued (duplicates counted)
    delivered: int = 0  # deliveries that got a 2xx
    attempts: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    dropped: int = 0  # events never delivered, by the drop_webhooks fault
    last_error: str = ""

    def as_json(self, backlog: int) -> dict[str, Any]:
        return {
            "backlog": backlog,
            "queued": self.queued,
            "delivered": self.delivered,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "given_up": self.given_up,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }


class Deliverer:
    def __init__(self, url: str, secret: bytes, faults: Faults) -> None:
        self._url = url
        self._secret = secret
        self._faults = faults
        self._waiting: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._promised = 0
        self._in_flight = 0
        self._slots = asyncio.Semaphore(webhook_concurrency_max)
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self.stats = DeliveryStats()

    @property
    def backlog(self) -> int:
        return len(self._waiting) + self._in_flight + self._promised

    def has_room(self, deliveries: int = 2) -> bool:
        return self.backlog + deliveries <= webhook_backlog_max

    def promise(self) -> None:
        """A delivery that will be enqueued later (a slow card) holds its place in the backlog now."""
        self._promised += 1

    def enqueue(self, body: dict[str, Any], copies: int, *, promised: bool = False) -> None:
        if promised:
            self._promised -= 1
        if self._faults.take_dropped_webhook():
            self.stats.dropped += 1
            return
        raw = json.dumps(body, separators=(",", ":")).encode()
        if self._faults.duplicate_webhooks:
            copies *= 2
        due_at = time.monotonic() + self._faults.webhook_delay_s
        for _ in range(copies):
            self._waiting.append(Delivery(event_id=body["id"], body=raw, due_at=due_at))
            self.stats.queued += 1
        self._wake.set()

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=webhook_attempt_s_max)
        self._session = aiohttp.ClientSession(timeout=timeout)
        self._dispatcher = asyncio.create_task(self._dispatch())

    async def stop(self) -> None:
        tasks = [t for t in (self._dispatcher, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), stop_s_max)
        if self._session is not None:
            await self._session.close()

    async def _dispatch(self) -> None:
        while True:
            batch = await self._next_batch()
            if len(batch) > 1:
                # a reordered batch goes one at a time, last first, so the order is the one intended
                for delivery in reversed(batch):
                    await self._wait_due(delivery)
                    await self._attempt_or_retry_later(delivery)
                continue
            await self._wait_due(batch[0])
            await self._slots.acquire()
            self._spawn(self._deliver(batch[0]))

    async def _next_batch(self) -> list[Delivery]:
        while not self._waiting:
            self._wake.clear()
            await self._wake.wait()
        batch = [self._take()]
        size = self._faults.reorder_webhooks
        if size < 2:
            return batch
        deadline = time.monotonic() + reorder_gather_s_max
        while len(batch) < size and time.monotonic() < deadline:
            if self._waiting:
                batch.append(self._take())
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
        return batch

    def _take(self) -> Delivery:
        self._in_flight += 1
        return self._waiting.popleft()

    async def _wait_due(self, delivery: Delivery) -> None:
        delay = delivery.due_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            await self._with_retries(delivery)
        finally:
            self._slots.release()

    async def _attempt_or_retry_later(self, delivery: Delivery) -> None:
        started = time.monotonic()
        if await self._attempt(delivery):
            self._done(delivery)
            return
        self._spawn(self._with_retries(delivery, started=started))

    async def _with_retries(self, delivery: Delivery, started: float | None = None) -> None:
        started = time.monotonic() if started is None else started
        backoff = webhook_backoff_s_first
        try:
            while delivery.attempts == 0 or time.monotonic() - started < webhook_retry_s_max:
                if delivery.attempts > 0:
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, webhook_backoff_s_max)
                if await self._attempt(delivery):
                    return
                if delivery.attempts >= webhook_attempts_max:
                    break
            self.stats.given_up += 1
        finally:
            self._done(delivery)

    def _done(self, delivery: Delivery) -> None:
        self._in_flight -= 1

    async def _attempt(self, delivery: Delivery) -> bool:
        assert self._session is not None, "start() first"
        delivery.attempts += 1
        self.stats.attempts += 1
        signed_at = int(time.time()) - self._faults.signature_age_s
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, delivery.body, signed_at),
            "Voelgoed-Delivery-Attempt": str(delivery.attempts),
        }
        try:
            async with self._session.post(self._url, data=delivery.body, headers=headers) as response:
                await response.read()
                ok = 200 <= response.status < 300
                if not ok:
                    self.stats.last_error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            ok = False
            self.stats.last_error = f"{type(error).__name__}: {error}"
        if ok:
            self.stats.delivered += 1
        else:
            self.stats.failed_attempts += 1
        return ok
