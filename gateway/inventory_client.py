"""The gateway's way to an event's inventory actor: placement, cached handles, coalescing, bounded retries.

A Ray actor call is delivered at most once and a failed call may have run, so a batch that fails because the actor
died is sent again, unchanged, to the restarted incarnation: every command carries an id and hold ids are drawn
before the first send, so a replay is answered from the recovered state and never applied twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError

from actors.event_inventory import BatchReply
from actors.inventory_host import INVENTORY_ACTOR_OPTIONS, InventoryHost
from actors.placement import HOST_NAME_PREFIX, actor_name
from actors.wire import decode_results, encode_commands
from engine.inventory.commands import Command, Result
from gateway.coalescer import Coalescer, forget_idle
from gateway.inventory_errors import InventoryUnavailable
from gateway.metrics import ACTOR_CALL_SECONDS, ACTOR_RETRIES, COMMIT_SECONDS
from voelgoed.settings import Settings

log = logging.getLogger(__name__)

actor_call_s_max = 10.0
actor_retry_attempts_max = 40
actor_retry_time_s_max = 30.0
actor_retry_backoff_s_first = 0.02
actor_retry_backoff_s_max = 0.5
ready_probe_s_max = 2.0
handle_lookup_s_max = 10.0
events_cached_max = 10_000


class InventoryClient(Protocol):
    """What routes need from the inventory: the real client below, or tests/fakes' in-process one.

    ``dedicated`` is the event's placement, from the meta the caller has already read (gateway/event_cache.py): a
    hot event has an actor of its own, the others share the hosts. It is fixed when the event is created.
    """

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result: ...

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None: ...

    async def close(self) -> None: ...


class RayInventoryClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._handles: dict[str, Any] = {}
        self._coalescers: dict[tuple[str, str], Coalescer[Command, Result]] = {}

    async def start(self) -> None:
        if not ray.is_initialized():
            await asyncio.to_thread(
                ray.init,
                address=self._settings.ray_address,
                namespace=self._settings.ray_namespace,
                log_to_driver=False,
                ignore_reinit_error=True,
            )

    async def close(self) -> None:
        pass  # the Ray connection is the process's: it ends with it

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        key = (org_id, event_id)
        coalescer = self._coalescers.get(key)
        if coalescer is None:
            forget_idle(self._coalescers, events_cached_max)
            # Named once per coalescer: an event's placement never changes, so its batches all go to one actor.
            name = self._actor_name(org_id, event_id, dedicated)
            coalescer = Coalescer(lambda commands: self._send(name, org_id, event_id, commands))
            self._coalescers[key] = coalescer
        return await coalescer.submit(command)

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        await self._call_with_retries(self._actor_name(org_id, event_id, dedicated), "activate", org_id, event_id)

    async def ready(self) -> bool:
        try:
            handle = await self._handle(f"{HOST_NAME_PREFIX}0")
            await asyncio.wait_for(asyncio.wrap_future(handle.ping.remote().future()), ready_probe_s_max)
            return True
        except Exception:
            return False

    async def _send(self, name: str, org_id: str, event_id: str, commands: Sequence[Command]) -> list[Result]:
        started = time.perf_counter()
        rows = encode_commands(commands)
        reply: BatchReply = await self._call_with_retries(name, "apply", org_id, event_id, rows)
        ACTOR_CALL_SECONDS.observe(time.perf_counter() - started)
        if reply.commit_s:
            COMMIT_SECONDS.observe(reply.commit_s)
        return decode_results(reply.results)

    async def _call_with_retries(self, name: str, method: str, *args: Any) -> Any:
        deadline = time.monotonic() + actor_retry_time_s_max
        backoff_s = actor_retry_backoff_s_first
        for attempt in range(actor_retry_attempts_max):
            try:
                handle = await self._handle(name)
                ref = getattr(handle, method).remote(*args)
                return await asyncio.wait_for(asyncio.wrap_future(ref.future()), actor_call_s_max)
            except (TimeoutError, RayActorError, GetTimeoutError) as error:
                ACTOR_RETRIES.inc()
                log.info("inventory %s %s failed (attempt %d): %r", name, method, attempt + 1, error)
                # Look the actor up again: a restarting actor keeps its name, one killed for good is re-created.
                self._handles.pop(name, None)
            except RayTaskError as error:
                log.error("inventory %s %s raised: %s", name, method, error)
                raise InventoryUnavailable() from error
            except RayError as error:  # e.g. the cluster unreachable while looking the actor up: retry, bounded
                ACTOR_RETRIES.inc()
                log.warning("inventory %s %s: Ray error (attempt %d): %r", name, method, attempt + 1, error)
                self._handles.pop(name, None)
            if time.monotonic() + backoff_s > deadline:
                break
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, actor_retry_backoff_s_max)
        raise InventoryUnavailable()

    def _actor_name(self, org_id: str, event_id: str, dedicated: bool) -> str:
        return actor_name(org_id, event_id, dedicated=dedicated, hosts_count=self._settings.inventory_hosts)

    async def _handle(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            handle = await asyncio.wait_for(asyncio.to_thread(self._get_or_create, name), handle_lookup_s_max)
            self._handles[name] = handle
        return handle

    def _get_or_create(self, name: str) -> Any:
        return InventoryHost.options(  # type: ignore[attr-defined]
            name=name, namespace=self._settings.ray_namespace, get_if_exists=True, **INVENTORY_ACTOR_OPTIONS
        ).remote(self._settings.database_url, self._settings.redis_url)

