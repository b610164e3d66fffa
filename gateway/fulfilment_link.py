"""The gateway's part in the fulfilment actor (actors/fulfilment.py): with VOELGOED_ORDERS_WORKER=actor (as
`voelgoed up` sets it) a gateway process runs no orders worker of its own and instead makes sure the one actor
exists, created from this process's settings, as the catalog timer's client does for the timer.

Every gateway process tries at start-up; the name makes one actor of them all (``get_if_exists``). A failure is
logged and tried again a little later, bounded: paid orders wait in the outbox meanwhile, nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.outbox import DrainPolicy
from voelgoed.settings import Settings
from voelgoed.ticket_master_key import read_ticket_master_secret

log = logging.getLogger(__name__)

actor_start_s_max = 40.0  # creating the actor and its worker's first connections (the actor waits up to 30 s)
start_attempts_max = 5
start_retry_s = 5.0


class FulfilmentLink:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def ensure_started(self) -> bool:
        """Whether the actor's worker runs (created if no process has made it yet); never raises."""
        for attempt in range(start_attempts_max):
            try:
                return await asyncio.wait_for(self._start(), actor_start_s_max)
            except Exception as error:
                log.warning("could not start the fulfilment actor (attempt %d): %r", attempt + 1, error)
            await asyncio.sleep(start_retry_s)
        log.error("the fulfilment actor did not start: paid orders wait in the outbox until it does")
        return False

    async def _start(self) -> bool:
        handle = await asyncio.to_thread(self._get_or_create)
        started: bool = await asyncio.wrap_future(handle.start.remote().future())
        return started

    def _get_or_create(self) -> Any:
        from actors.fulfilment import FulfilmentConfig, get_or_create  # Ray is heavy: imported only when used

        settings = self._settings
        payments = settings.payments
        master = read_ticket_master_secret(settings.data_dir)
        if payments is None or master is None:
            raise RuntimeError("the fulfilment actor needs the payment provider's settings and the ticket master key")
        config = FulfilmentConfig(
            database_url=settings.database_url, redis_url=settings.redis_url, hosts_count=settings.inventory_hosts,
            provider_url=payments.provider_url, webhook_secret=payments.webhook_secret.encode(),
            master_secret=master, api_key=payments.api_key, drain=DrainPolicy.for_lease(settings.outbox_lease_s),
        )  # fmt: skip
        return get_or_create(config, settings.ray_namespace)
