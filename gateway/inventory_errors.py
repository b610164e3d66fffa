"""The inventory's own 503s: an event's queue of commands is full, or its inventory could not answer in time.
Nothing was applied (a command already sent may still apply; its id makes the retry safe)."""

from __future__ import annotations

from gateway.errors import InfrastructureError


class InventoryBusy(InfrastructureError):
    code = "inventory_busy"
    default_message = "the event's inventory queue is full; retry shortly"


class InventoryUnavailable(InfrastructureError):
    code = "inventory_unavailable"
    default_message = "the event's inventory is temporarily unavailable; retry shortly"
