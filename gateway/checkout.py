"""Checkout's process objects in the gateway: the payment providers and the ticket master key, registered under
``Payments`` in ``Services.domains``, and ``checkout_of(svc)``, the use cases' ports (services/orders/ports.py)
built from this process's services."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.payments.reconcile import ReconcilePolicy
from engine.tickets.sealing import MasterKey
from gateway.context import Services
from gateway.event_cache import EventCache
from gateway.price_cache import PriceCache
from persistence.payments.provider import PaymentProvider
from services.inventory.holds import HoldCopies
from services.orders.ports import Checkout


@dataclass(frozen=True)
class Payments:
    providers: Mapping[str, PaymentProvider] = field(default_factory=dict)
    master: MasterKey | None = field(default=None, repr=False)
    reconcile: ReconcilePolicy = field(default_factory=ReconcilePolicy)  # the defaults; tests make them small

    @property
    def fulfils(self) -> bool:
        """Whether this process has a part in the orders worker (runs it, or makes sure the fulfilment actor does:
        VOELGOED_ORDERS_WORKER): it can take payments and sign tickets."""
        return bool(self.providers) and self.master is not None


class EventPlacements:
    """An event's placement as this process's event cache has it (no Postgres read once cached)."""

    def __init__(self, events: EventCache) -> None:
        self._events = events

    async def dedicated(self, org_id: str, event_id: str) -> bool:
        return (await self._events.get(org_id, event_id)).dedicated


def checkout_of(svc: Services) -> Checkout:
    payments = svc.domain(Payments)
    return Checkout(
        units=svc.units, redis=svc.redis, prices=svc.domain(PriceCache), inventory=svc.inventory,
        holds=svc.domain(HoldCopies), placements=EventPlacements(svc.events), providers=payments.providers,
        master=payments.master, reconcile=payments.reconcile,
    )  # fmt: skip
