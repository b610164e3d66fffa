"""Venue use cases: create and read venues, import and read their seating layouts, create an event on one.

A layout arrives already read and checked (engine/catalog/layouts.py, layout_csv.py: the gateway refuses a bad
one with every problem before anything is written); here it is stored under its venue, audited in the same
transaction. An event made on a layout copies the layout's seats (engine/catalog/layout_events.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine import ids, limits
from engine.catalog import layout_events
from engine.catalog import rules as catalog
from engine.catalog.layouts import Layout
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.catalog import events as pg_events
from persistence.catalog import layouts as pg_layouts
from persistence.catalog import venues as pg_venues
from services.catalog.events import EVENT_CREATE, SharedEvents, SharedPrices, share_new_event, write_new_event
from services.unit_of_work import Tenants, UnitsOfWork

VENUE_CREATE = "venue.create"
LAYOUT_CREATE = "layout.create"


class EventProblems(ValueError):
    """An event definition the catalog refuses once its layout is known (a zone it lacks, an unknown layout):
    nothing was written. The gateway answers 422 naming each field."""

    def __init__(self, problems: Sequence[catalog.Problem]) -> None:
        super().__init__(catalog.describe(problems))
        self.problems = list(problems)


def venue_not_found(venue_id: str) -> Refused:
    return Refused(Refusal.VENUE_NOT_FOUND, "no such venue", {"venue_id": venue_id})


def layout_not_found(layout_id: str) -> Refused:
    return Refused(Refusal.LAYOUT_NOT_FOUND, "no such layout", {"layout_id": layout_id})


async def create_venue(
    units: UnitsOfWork, org_id: str, actor: audit.Actor, new: pg_venues.NewVenue
) -> pg_venues.VenueRecord:
    async with units.begin(org_id, actor) as uow:
        venue = await pg_venues.create_venue(uow.db, new)
        uow.record(audit.Change(VENUE_CREATE, "venue", venue.id, after=pg_venues.audit_view(venue)))
    return venue


async def list_venues(tenants: Tenants, org_id: str) -> list[pg_venues.VenueRecord]:
    async with tenants.tenant(org_id) as db:
        return await pg_venues.list_venues(db)


async def get_venue(
    tenants: Tenants, org_id: str, venue_id: str
) -> tuple[pg_venues.VenueRecord, list[pg_layouts.LayoutSummary]]:
    """The org's venue and its layouts (without seats)."""
    if not ids.is_venue_id(venue_id):
        raise venue_not_found(venue_id)
    async with tenants.tenant(org_id) as db:
        venue = await pg_venues.get_venue(db, venue_id)
        if venue is None:
            raise venue_not_found(venue_id)
        return venue, await pg_layouts.list_layouts(db, venue_id)


async def create_layout(
    units: UnitsOfWork, org_id: str, actor: audit.Actor, venue_id: str, layout: Layout
) -> pg_layouts.LayoutRecord:
    """Store a checked layout under the org's venue (404 venue_not_found for an unknown or other org's one)."""
    if not ids.is_venue_id(venue_id):
        raise venue_not_found(venue_id)
    async with units.begin(org_id, actor) as uow:
        if await pg_venues.get_venue(uow.db, venue_id) is None:
            raise venue_not_found(venue_id)
        record = await pg_layouts.create_layout(uow.db, venue_id, layout)
        uow.record(audit.Change(LAYOUT_CREATE, "layout", record.id, after=pg_layouts.audit_view(record)))
    return record


async def get_layout(tenants: Tenants, org_id: str, layout_id: str) -> pg_layouts.LayoutRecord:
    if not ids.is_layout_id(layout_id):
        raise layout_not_found(layout_id)
    async with tenants.tenant(org_id) as db:
        record = await pg_layouts.get_layout(db, layout_id)
    if record is None:
        raise layout_not_found(layout_id)
    return record


async def create_event_on_layout(
    units: UnitsOfWork,
    shared: SharedEvents,
    org_id: str,
    actor: audit.Actor,
    definition: catalog.EventDefinition,
    *,
    schedule: Mapping[str, Any] | None = None,
    prices: SharedPrices | None = None,
) -> pg_events.EventRecord:
    """The new draft on ``definition.layout_id`` (the org's layout, else 422 naming layout_id), its seats the
    layout's. Raises ``EventProblems`` for what the layout refuses (an unknown zone), before anything is written."""
    layout_id = definition.layout_id
    assert layout_id is not None, "an event on a layout names it"
    async with units.begin(org_id, actor) as uow:
        found = await pg_layouts.get_layout(uow.db, layout_id) if ids.is_layout_id(layout_id) else None
        if found is None:
            raise EventProblems([catalog.Problem("layout_id", "no such layout")])
        problems = layout_event_problems(definition, found.layout)
        if problems:
            raise EventProblems(problems)
        stocked = layout_events.stocked_on(definition, found.layout)
        new = pg_events.new_event(stocked, None, layout_id)
        pg_events.check_new_event(new)
        record, version = await write_new_event(uow.db, new, stocked, schedule)
        after = {**pg_events.audit_view(record), "layout_id": layout_id}
        uow.record(audit.Change(EVENT_CREATE, "event", record.id, after=after))
    await share_new_event(shared, prices, record, stocked, version)
    return record


def layout_event_problems(definition: catalog.EventDefinition, layout: Layout) -> list[catalog.Problem]:
    problems = layout_events.layout_event_problems(definition, layout)
    if len(layout.seats) > limits.seats_per_event_max:
        problems.append(catalog.Problem("layout_id", "the layout has more seats than an event may"))
    return problems
