"""A refund's seats or GA units back to the event's inventory, through its actor (fenced, like every write).

Idempotent by the refund: the command's id is ``return:<refund id>``, and a ticket already given back is skipped
by the inventory, so the request's own try and the outbox's retries give each ticket back once.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine import ids
from engine.inventory.commands import CancelTickets
from engine.refusals import Refusal, Refused
from services.inventory.commands import submit
from services.orders.ports import Checkout

_INFRASTRUCTURE = frozenset({Refusal.INVENTORY_UNAVAILABLE, Refusal.PERSISTENCE_UNAVAILABLE})
# the sale is gone already (cancelled whole), or its event sells nothing any more (cancelled): nothing to give back
_GONE = frozenset({Refusal.HOLD_NOT_FOUND, Refusal.TICKET_NOT_FOUND, Refusal.NOT_ON_SALE})


async def return_tickets_of(
    deps: Checkout, org_id: str, order_id: str, refund_id: str, ticket_ids: Sequence[str]
) -> None:
    if not ticket_ids:
        return
    hold_id = ids.hold_id_of_order(order_id)
    event_id = ids.event_id_of_hold(hold_id)
    assert event_id is not None, order_id
    dedicated = await deps.placements.dedicated(org_id, event_id)
    command = CancelTickets(f"return:{refund_id}", hold_id, tuple(ticket_ids))
    try:
        await submit(deps.inventory, org_id, event_id, command, dedicated=dedicated)
    except Refused as refusal:
        if refusal.refusal in _INFRASTRUCTURE or refusal.refusal not in _GONE:
            raise
