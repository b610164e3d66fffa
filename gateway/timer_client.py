"""The gateway's way to the catalog timer (actors/catalog_timer.py): tell it an event's schedule or status changed,
and make sure the one timer actor exists (it recovers its plan from Postgres on its own).

A ``changed`` that fails is logged, not raised: the change is committed, and the timer's rescan (every
``rescan_interval_s``) plans the event anyway, only later.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from voelgoed.settings import Settings

log = logging.getLogger(__name__)

timer_call_s_max = 2.0
handle_lookup_s_max = 10.0


class TimerLink:
    """The process's catalog timer, registered in ``Services.domains`` (services.catalog.lifecycle.Schedules)."""

    def __init__(self, schedules: Any) -> None:
        self.schedules = schedules


class NullSchedules:
    """No timer in this process (tests that do not exercise timed moves)."""

    async def changed(self, org_id: str, event_id: str) -> None:
        return None


class RayTimerClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._handle: Any = None

    async def changed(self, org_id: str, event_id: str) -> None:
        try:
            handle = await self._timer()
            await asyncio.wait_for(asyncio.wrap_future(handle.changed.remote(org_id, event_id).future()),
                                   timer_call_s_max)
        except Exception as error:
            self._handle = None
            log.warning("the catalog timer did not hear of %s (its rescan will): %r", event_id, error)

    async def ensure_started(self) -> None:
        """Create the timer actor if no process has yet (after the platform starts)."""
        try:
            await self._timer()
        except Exception as error:
            log.warning("could not start the catalog timer: %r", error)

    async def _timer(self) -> Any:
        if self._handle is None:
            self._handle = await asyncio.wait_for(asyncio.to_thread(self._get_or_create), handle_lookup_s_max)
        return self._handle

    def _get_or_create(self) -> Any:
        from actors.catalog_timer import (  # Ray is heavy: imported only where the timer is used
            TIMER_ACTOR_NAME,
            TIMER_ACTOR_OPTIONS,
            CatalogTimer,
        )

        settings = self._settings
        return CatalogTimer.options(  # type: ignore[attr-defined]
            name=TIMER_ACTOR_NAME, namespace=settings.ray_namespace, get_if_exists=True, **TIMER_ACTOR_OPTIONS
        ).remote(settings.database_url, settings.redis_url, settings.inventory_hosts)
