"""Inventory use cases: send one command to the event's inventory and answer its result or its refusal.

Holds, releases and confirms are decided by the event's inventory actor (engine/inventory/machine.py behind
actors/event_inventory.py), which writes its own changes through (sales and their audit entries in its group
commit): so these use cases open no unit of work of their own.
"""

from __future__ import annotations

from typing import Protocol

from engine.inventory.commands import Command, Ok, Rejected, Result
from engine.refusals import Refused


class Inventory(Protocol):
    """The way to events' inventories (gateway/inventory_client.py: Ray actors, or the tests' fake). ``dedicated``:
    the event's placement (its own actor, or a shared host), as the caller's copy of the event says."""

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result: ...


async def submit(inventory: Inventory, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Ok:
    """The command's answer; its refusal raised as ``Refused``."""
    result = await inventory.submit(org_id, event_id, command, dedicated=dedicated)
    if isinstance(result, Rejected):
        raise Refused(result.code, result.message, result.details)
    return result
