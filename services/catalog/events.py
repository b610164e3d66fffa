"""Catalog use cases: create a draft event, publish it, read it.

What every gateway process must learn at once (an event's meta, shared through Redis) and the inventory to bring
live are ports (``SharedEvents``, ``Activations``): the use case calls them after its commit, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine import ids
from engine.catalog import rules as catalog
from engine.catalog.lifecycle import Change, EventAction, EventStatus, outcome, visible_to_buyers
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.catalog import events as pg_events
from persistence.catalog import lifecycle as pg_lifecycle
from persistence.catalog import prices as pg_prices
from persistence.tenancy import OrgDb
from services.catalog.pricing import SharedPrices
from services.unit_of_work import Tenants, UnitsOfWork

EVENT_CREATE = "event.create"
EVENT_PUBLISH = "event.publish"
# Statuses only move forward, so a publish that loses the race once finds the event moved when it reads again.
publish_attempts_max = 2


class SharedEvents(Protocol):
    """Who must see a new or just-published event at once, so reads of it never reach Postgres (every gateway
    process's event cache: gateway/event_cache.py)."""

    async def share_record(self, record: pg_events.EventRecord) -> None: ...


class Activations(Protocol):
    """The events' inventories (gateway/inventory_client.py), brought live once an event is on sale."""

    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None: ...


def event_not_found(event_id: str) -> Refused:
    return Refused(Refusal.EVENT_NOT_FOUND, "no such event", {"event_id": event_id})


async def create_event(
    units: UnitsOfWork,
    shared: SharedEvents,
    org_id: str,
    actor: audit.Actor,
    definition: catalog.EventDefinition,
    seating: dict[str, Any] | None,
    *,
    schedule: Mapping[str, Any] | None = None,
    prices: SharedPrices | None = None,
) -> pg_events.EventRecord:
    """The new draft (``seating``: the layout as the organizer gave it, kept as JSON; ``schedule``: its sale
    window and presales, as pg_lifecycle.EDITABLE_COLUMNS, checked by the gateway). A definition the catalog's
    rules refuse raises ``pg_events.EventRejected`` before anything is written (the gateway refuses it first).
    Its price rules (tiers, fees, tax) are stored with it and its price list shared with ``prices``."""
    stocked = catalog.stocked(definition)
    new = pg_events.new_event(stocked, seating)
    pg_events.check_new_event(new)
    async with units.begin(org_id, actor) as uow:
        record, version = await write_new_event(uow.db, new, stocked, schedule)
        # In the same transaction: the event exists if and only if its creation is in the log.
        uow.record(audit.Change(EVENT_CREATE, "event", record.id, after=pg_events.audit_view(record)))
    await share_new_event(shared, prices, record, stocked, version)
    return record


async def write_new_event(
    db: OrgDb, new: pg_events.NewEvent, stocked: catalog.StockedEvent, schedule: Mapping[str, Any] | None
) -> tuple[pg_events.EventRecord, int]:
    """The new event with its sale window and presales (``schedule``) and its price rules written in, in the
    creating transaction; and its price list's version."""
    record = await pg_events.create_event(db, new)
    if schedule:
        patched = await pg_lifecycle.patch(db, record.id, pg_lifecycle.EventPatch(schedule))
        assert patched is not None, "the event was created in this transaction"
        record = patched
    return record, await pg_prices.put_price_rules(db, record.id, stocked)


async def share_new_event(
    shared: SharedEvents,
    prices: SharedPrices | None,
    record: pg_events.EventRecord,
    stocked: catalog.StockedEvent,
    version: int,
) -> None:
    """After the commit: every gateway process sees the new event and its prices at once."""
    await shared.share_record(record)
    if prices is not None:
        await prices.share_prices(record.org_id, record.id, pg_prices.price_list_of(stocked, version))


async def publish_event(
    units: UnitsOfWork,
    shared: SharedEvents,
    activations: Activations,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    *,
    schedules: Any = None,
) -> pg_events.EventRecord:
    """Put the draft on sale (again: it stays on sale, nothing is audited), then share it and bring its
    inventory live (both again too: a retry also repairs a publish whose after-commit steps failed)."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    async with units.begin(org_id, actor) as uow:
        record, before = await _published(uow.db, event_id)
        if before is not None:
            after = {"status": record.status, "published_at": pg_events.audit_time(record.published_at)}
            uow.record(audit.Change(EVENT_PUBLISH, "event", event_id, before={"status": before.value}, after=after))
    await shared.share_record(record)
    await activations.activate(org_id, event_id, dedicated=record.dedicated)
    if schedules is not None:  # the catalog timer (services/catalog_lifecycle.Schedules): a sale_closes_at to plan
        await schedules.changed(org_id, event_id)
    return record


async def _published(db: OrgDb, event_id: str) -> tuple[pg_events.EventRecord, EventStatus | None]:
    """The event once published, and the status it moved from (None: it did not move)."""
    for _ in range(publish_attempts_max):
        record = await pg_events.get_event(db, event_id)
        if record is None:
            raise event_not_found(event_id)
        status = EventStatus(record.status)
        decision = outcome(status, EventAction.PUBLISH)
        if decision.change is Change.REFUSED:
            raise Refused(
                Refusal.INVALID_TRANSITION,
                f"an event that is {status.value} cannot be published",
                {"event_id": event_id, "status": status.value},
            )
        if decision.change is Change.UNCHANGED:
            return record, None
        moved = await pg_events.move_status(db, record, decision.status)
        if moved is not None:
            return moved, status
    raise Refused(Refusal.CONCURRENT_CHANGE, "the event changed a moment ago; retry", {"event_id": event_id})


async def get_event(tenants: Tenants, org_id: str, event_id: str, *, on_sale_only: bool) -> pg_events.EventRecord:
    """The org's event; ``on_sale_only`` (a publishable key): a draft is as unknown as a made-up id, so drafts
    cannot be probed from a browser (every status after it is the buyers' to see: lifecycle.visible_to_buyers)."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    async with tenants.tenant(org_id) as db:
        record = await pg_events.get_event(db, event_id)
    if record is None or (on_sale_only and not visible_to_buyers(record.status)):
        raise event_not_found(event_id)
    return record
