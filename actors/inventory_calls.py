"""Calls to the events' inventory actors from any process: placement, cached handles, bounded retries.

A Ray actor call is delivered at most once and a failed call may have run, so a batch that fails because the actor
died is sent again, unchanged, to the restarted incarnation: every command carries an id and hold ids are drawn
before the first send, so a replay is answered from the recovered state and never applied twice.

The gateway's client (gateway/inventory_client.py) adds coalescing and metrics on top; supporting actors (the
fulfilment actor, actors/fulfilment.py) send their own batches through it directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from actors.event_inventory import BatchReply
from actors.inventory_host import INVENTORY_ACTOR_OPTIONS, InventoryHost
from actors.placement import HOST_NAME_PREFIX, actor_name
from actors.wire import decode_results, encode_commands
from engine.inventory.commands import Command, Result

log = logging.getLogger(__name__)

actor_call_s_max = 10.0
actor_retry_attempts_max = 40
actor_retry_time_s_max = 30.0
actor_retry_backoff_s_first = 0.02
actor_retry_backoff_s_max = 0.5
ready_probe_s_max = 2.0
handle_lookup_s_max = 10.0


class InventoryUnreachable(RuntimeError):
    """No answer within the retry bounds, or the actor raised: nothing is known to have applied (the commands'
    ids make a retry safe)."""


@dataclass(frozen=True, slots=True)
class InventoryPlace:
    """Where the inventory actors live and what a new one is started with."""

    namespace: str
    database_url: str
    redis_url: str
    hosts_count: int


def _ignore_retry() -> None:
    return None


class InventoryCalls:
    """``apply`` sends one batch of commands to the event's actor (looked up, or started, by name)."""

    def __init__(self, place: InventoryPlace, on_retry: Callable[[], None] = _ignore_retry) -> None:
        self._place = place
        self._on_retry = on_retry
        self._handles: dict[str, Any] = {}

    def actor_name(self, org_id: str, event_id: str, dedicated: bool) -> str:
        return actor_name(org_id, event_id, dedicated=dedicated, hosts_count=self._place.hosts_count)

    async def apply(self, name: str, org_id: str, event_id: str, commands: Sequence[Command]) -> BatchReply:
        """The actor's reply to the batch (results still encoded: ``results`` decodes them)."""
        reply: BatchReply = await self.call(name, "apply", org_id, event_id, encode_commands(commands))
        return reply

    async def ping_first_host(self) -> bool:
        try:
            handle = await self._handle(f"{HOST_NAME_PREFIX}0")
            await asyncio.wait_for(asyncio.wrap_future(handle.ping.remote().future()), ready_probe_s_max)
            return True
        except Exception:
            return False

    async def call(self, name: str, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + actor_retry_time_s_max
        backoff_s = actor_retry_backoff_s_first
        for attempt in range(actor_retry_attempts_max):
            try:
                handle = await self._handle(name)
                ref = getattr(handle, method).remote(*args)
                return await asyncio.wait_for(asyncio.wrap_future(ref.future()), actor_call_s_max)
            except (TimeoutError, RayActorError, GetTimeoutError) as error:
                self._on_retry()
                log.info("inventory %s %s failed (attempt %d): %r", name, method, attempt + 1, error)
                # Look the actor up again: a restarting actor keeps its name, one killed for good is re-created.
                self._handles.pop(name, None)
            except RayTaskError as error:
                log.error("inventory %s %s raised: %s", name, method, error)
                raise InventoryUnreachable(name) from error
            except RayError as error:  # e.g. the cluster unreachable while looking the actor up: retry, bounded
                self._on_retry()
                log.warning("inventory %s %s: Ray error (attempt %d): %r", name, method, attempt + 1, error)
                self._handles.pop(name, None)
            if time.monotonic() + backoff_s > deadline:
                break
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, actor_retry_backoff_s_max)
        raise InventoryUnreachable(name)

    async def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            handle = await asyncio.wait_for(asyncio.to_thread(self._get_or_create, name), handle_lookup_s_max)
            self._handles[name] = handle
        return handle

    def _get_or_create(self, name: str) -> Any:
        place = self._place
        return InventoryHost.options(  # type: ignore[attr-defined]
            name=name, namespace=place.namespace, get_if_exists=True, **INVENTORY_ACTOR_OPTIONS
        ).remote(place.database_url, place.redis_url)


def results(reply: BatchReply) -> list[Result]:
    return decode_results(reply.results)


def ensure_ray(address: str | None, namespace: str) -> None:
    if not ray.is_initialized():
        ray.init(address=address, namespace=namespace, log_to_driver=False, ignore_reinit_error=True)
