"""What checkout's use cases need from the process they run in, gathered once: the gateway builds it from its
services (gateway/routes/orders.py), the fulfilment actor from its own connections (actors/fulfilment.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from redis.asyncio import Redis

from engine.payments.reconcile import ReconcilePolicy
from engine.refusals import Refusal, Refused
from engine.tickets.sealing import MasterKey
from persistence import audit
from persistence.payments.provider import PaymentProvider
from services.catalog.pricing import PriceLists
from services.inventory.commands import Inventory
from services.inventory.holds import HoldCopies
from services.unit_of_work import UnitsOfWork

PROVIDER_ACTOR = audit.Actor("system", "payments")
FULFILMENT_ACTOR = audit.Actor("system", "fulfilment")
RECONCILER_ACTOR = audit.Actor("system", "reconciler")  # settles attempts whose webhook never came


class Placements(Protocol):
    """Whether an event's inventory is a dedicated actor or a shared host's (the event's meta says)."""

    async def dedicated(self, org_id: str, event_id: str) -> bool: ...


@dataclass(frozen=True)
class Checkout:
    units: UnitsOfWork
    redis: Redis
    prices: PriceLists
    inventory: Inventory
    holds: HoldCopies  # a live hold read from its store's copy (checkout prices it from there)
    placements: Placements
    providers: Mapping[str, PaymentProvider]
    # the ticket master key (voelgoed/ticket_master_key.py): None where this process issues no tickets
    master: MasterKey | None = None
    provider_name: str = "simulator"  # new payments go to this one
    clock: Callable[[], float] = field(default=time.time)
    # the reconciler's bounds (services/orders/reconciler.py; tests make them small)
    reconcile: ReconcilePolicy = field(default_factory=ReconcilePolicy)

    def now(self) -> datetime:
        """The clock's time as the orders' timestamps take it."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def provider(self, name: str | None = None) -> PaymentProvider:
        found = self.providers.get(name or self.provider_name)
        if found is None:
            raise Refused(Refusal.PROVIDER_NOT_FOUND, "no such payment provider", {"provider": name})
        return found
