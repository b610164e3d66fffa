"""Catalog lifecycle use cases: move an event between statuses (the organizer's moves, the timer's, the
inventory's), edit its schedule, sale limits, fees and tax, change a ticket type's capacity (GA), price and tiers.

Each change commits in one unit of work with its audit entry (who: the person or key, ``system:catalog-timer``,
``system:inventory:<event>``), then, in this order, every gateway process learns the new meta (``SharedEvents``:
Redis, announced), the event's inventory reads its new status and limits (``Activations.activate``: its sale gate)
and the timer looks at the event again (``Schedules``). A failure after the commit leaves the change made; the
call answers 503 and a retry repeats the after-commit steps (they are all idempotent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from engine import ids
from engine.catalog import lifecycle, pricing
from engine.catalog.lifecycle import EventStatus, Mover
from engine.catalog.presales import schedule_problems
from engine.catalog.price_changes import RulesChange, TypePriceChange
from engine.catalog.rules import Problem, TicketKind, sale_limit_problems, settings_problems
from engine.catalog.timed import due_move
from engine.inventory.commands import Command, Rejected, Result, SetCapacity
from engine.refusals import Refusal, Refused
from persistence import audit
from persistence.catalog import events as pg_events
from persistence.catalog import lifecycle as pg_lifecycle
from persistence.db import Connection
from persistence.inventory import sales as pg_sales
from persistence.outbox import Owed
from persistence.tenancy import OrgDb
from services.catalog import price_changes
from services.catalog.events import Activations, SharedEvents, event_not_found
from services.catalog.pricing import SharedPrices
from services.unit_of_work import UnitsOfWork, unit_of_work_on

EVENT_TRANSITION = "event.transition"
EVENT_UPDATE = "event.update"
TICKET_TYPE_CAPACITY = "ticket_type.capacity"
TIMER_ACTOR = audit.Actor("system", "catalog-timer")
# owed when an event is cancelled, in the same transaction: its orders are ended by checkout's worker
EVENT_CANCELLED_TOPIC = "events.cancelled"
move_attempts_max = 2


class Schedules(Protocol):
    """The catalog timer (actors/catalog_timer.py): told when an event's schedule or status changed, so a timed
    move is planned within a second instead of at its next scan."""

    async def changed(self, org_id: str, event_id: str) -> None: ...


class InvalidPatch(ValueError):
    """A patch the rules refuse: each problem names its request field (the gateway answers 422)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems


def inventory_actor(event_id: str) -> audit.Actor:
    return audit.Actor("system", f"inventory:{event_id}")


def invalid_transition(event_id: str, before: EventStatus, to: str) -> Refused:
    return Refused(
        Refusal.INVALID_TRANSITION,
        f"an event that is {before.value} cannot move to {to}",
        {"event_id": event_id, "from": before.value, "to": to, "allowed": list(lifecycle.allowed_targets(before))},
    )


async def after_commit(
    shared: SharedEvents,
    activations: Activations,
    schedules: Schedules | None,
    record: pg_events.EventRecord,
    *,
    had_inventory: bool = True,
) -> None:
    """What follows every committed change of an event: its meta everywhere, its inventory's gate (also when it
    just went back to draft: a loaded inventory closes its gate), its timer."""
    await shared.share_record(record)
    if had_inventory or lifecycle.has_inventory(record.status):
        await activations.activate(record.org_id, record.id, dedicated=record.dedicated)
    if schedules is not None:
        await schedules.changed(record.org_id, record.id)


# ---- the organizer's moves ---------------------------------------------------------------------------------


async def transition(
    units: UnitsOfWork,
    shared: SharedEvents,
    activations: Activations,
    schedules: Schedules | None,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    to: str,
) -> pg_events.EventRecord:
    """Move the event to ``to`` if the table lets the organizer (else 409 invalid_transition naming what is
    allowed), audited with who did it. Cancelling marks every live sale for refund in the same transaction."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    async with units.begin(org_id, actor) as uow:
        record, before, refunds = await _moved(uow.db, event_id, to)
        after: dict[str, Any] = {"status": record.status}
        if refunds is not None:
            after["sales_marked_for_refund"] = refunds
            # its orders end (refunds, cancellations) off the request: services/orders/cancellation.py
            uow.owe(Owed(EVENT_CANCELLED_TOPIC, event_id, {"event_id": event_id}))
        uow.record(audit.Change(EVENT_TRANSITION, "event", event_id, before={"status": before.value}, after=after))
    await after_commit(shared, activations, schedules, record, had_inventory=lifecycle.has_inventory(before))
    return record


async def _moved(db: OrgDb, event_id: str, to: str) -> tuple[pg_events.EventRecord, EventStatus, int | None]:
    for _ in range(move_attempts_max):
        record = await pg_events.get_event(db, event_id)
        if record is None:
            raise event_not_found(event_id)
        before = EventStatus(record.status)
        if to not in tuple(EventStatus) or not lifecycle.may_move(before, EventStatus(to), Mover.ORGANIZER):
            raise invalid_transition(event_id, before, to)
        moved = await pg_lifecycle.move(db, record, EventStatus(to))
        if moved is None:
            continue  # another move came first: decide again on what it left
        # The move to cancelled took a new inventory epoch, waiting for the sales being committed: every sale
        # made before it is visible now, and none can be committed after it.
        refunds = await pg_sales.mark_for_refund(db, event_id) if moved.status == EventStatus.CANCELLED else None
        return moved, before, refunds
    raise Refused(Refusal.CONCURRENT_CHANGE, "the event changed a moment ago; retry", {"event_id": event_id})


# ---- the organizer's edits ---------------------------------------------------------------------------------


def patch_problems(record: pg_events.EventRecord, values: Mapping[str, Any]) -> list[Problem]:
    """What the event would break with ``values`` applied (the rules spanning fields, and the event's state: each
    field's own shape is the gateway's). The stored event was accepted, so every problem comes from the patch.
    Lowering max_tickets_per_buyer once the inventory is live could put held or bought tickets over it, so it may
    then only grow."""
    changed = dataclasses.replace(record, **values)
    problems = [
        *settings_problems(changed.name, changed.starts_at),
        *sale_limit_problems(changed.hold_ttl_s, changed.max_tickets_per_buyer),
        *(_named_as_given(p, values) for p in schedule_problems(changed.schedule())),
    ]
    if changed.max_tickets_per_buyer < record.max_tickets_per_buyer and lifecycle.has_inventory(record.status):
        problems.append(Problem("max_tickets_per_buyer", "once published it may only grow"))
    return problems


def _named_as_given(problem: Problem, values: Mapping[str, Any]) -> Problem:
    # "sale_closes_at must be after sale_opens_at" is broken by whichever of the two the patch gave.
    if problem.field == "sale_closes_at" and "sale_closes_at" not in values:
        return Problem("sale_opens_at", "must be before sale_closes_at")
    return problem


async def patch_event(
    units: UnitsOfWork,
    shared: SharedEvents,
    activations: Activations,
    schedules: Schedules | None,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    values: Mapping[str, Any],
    *,
    prices: RulesChange | None = None,
    shared_prices: SharedPrices | None = None,
) -> pg_events.EventRecord:
    """The event with ``values`` (a subset of pg_lifecycle.EDITABLE_COLUMNS) and ``prices`` (its new fees and tax)
    applied in one transaction, audited in one ``event.update`` entry (before and after of what changed); raises
    InvalidPatch with every problem, nothing written. New prices on a closed or cancelled event: 409 event_ended,
    nothing written. After the commit the new meta and the new price list are shared."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    rules = None if prices is None or prices.empty else prices
    async with units.begin(org_id, actor) as uow:
        record = await pg_lifecycle.lock_event(uow.db, event_id)
        if record is None:
            raise event_not_found(event_id)
        problems = patch_problems(record, values)
        if rules is not None:
            problems += price_changes.rules_problems(rules)
        if problems:
            raise InvalidPatch(problems)
        if rules is not None and lifecycle.has_ended(record.status):
            raise price_changes.prices_ended(event_id, record.status)
        patched = record
        before: dict[str, Any] = {}
        after: dict[str, Any] = {}
        if values:
            found = await pg_lifecycle.patch(uow.db, event_id, pg_lifecycle.EventPatch(values))
            assert found is not None
            patched = found
            before, after = _audit_values(record, values), _audit_values(patched, values)
        written = None
        if rules is not None:
            current = await price_changes.current_prices(uow.db, event_id)
            written = await price_changes.write_rules_change(uow.db, event_id, current, rules)
            before |= written.before or {}
            after |= written.after or {}
        if before or after:
            uow.record(audit.Change(EVENT_UPDATE, "event", event_id, before=before, after=after))
    if values:
        await after_commit(
            shared, activations, schedules, patched, had_inventory=lifecycle.has_inventory(patched.status)
        )
    if written is not None and shared_prices is not None:
        await shared_prices.share_prices(org_id, event_id, written.prices)
    return patched


def _audit_values(record: pg_events.EventRecord, values: Mapping[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {}
    for name in sorted(values):
        value = getattr(record, name)
        if name == "presales":
            shown[name] = [
                {"code": p.code, "opens_at": pg_events.audit_time(p.opens_at),
                 "closes_at": pg_events.audit_time(p.closes_at),
                 "buyers": None if p.buyer_ids is None else len(p.buyer_ids)}
                for p in value
            ]
        elif hasattr(value, "tzinfo"):
            shown[name] = pg_events.audit_time(value)
        else:
            shown[name] = value
    return shown


# ---- a ticket type: capacity, price, tiers ------------------------------------------------------------------


class Inventories(Protocol):
    """The events' inventories (gateway/inventory_client.py), where a capacity change is serialized with the
    holds: the catalog sends it the command, the inventory decides and commits it."""

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result: ...


async def set_capacity(
    units: UnitsOfWork,
    shared: SharedEvents,
    inventory: Inventories,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    code: str,
    capacity: int,
    cmd_id: str,
) -> pg_events.EventRecord:
    """Set a GA type's capacity. A draft has no inventory: its row changes here, audited. Once published, the
    event's inventory decides (serialized with holds: grow any time, shrink only down to held + sold, else 409
    capacity_below_committed) and commits the change itself, fenced and audited (``commit_capacity``); ``cmd_id``
    makes a retried request the same command."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    async with units.begin(org_id, actor) as uow:
        record = await pg_lifecycle.lock_event(uow.db, event_id)
        if record is None:
            raise event_not_found(event_id)
        ticket_type = _ga_type(record, code)
        if lifecycle.has_ended(record.status):
            raise Refused(
                Refusal.EVENT_ENDED, f"the event is {record.status}: its capacity no longer changes",
                {"event_id": event_id, "status": record.status},
            )
        if not lifecycle.has_inventory(record.status):
            if capacity != ticket_type.capacity:
                await pg_lifecycle.set_capacity_of_draft(uow.db, event_id, code, capacity)
                uow.record(_capacity_change(event_id, code, ticket_type.capacity, capacity))
                record = await pg_events.get_event(uow.db, event_id)
                assert record is not None
            drafted = record
        else:
            drafted = None
    if drafted is not None:
        await shared.share_record(drafted)
        return drafted
    command = SetCapacity(cmd_id, code, capacity, f"{actor.type}:{actor.id}", actor.ip)
    result = await inventory.submit(org_id, event_id, command, dedicated=record.dedicated)
    if isinstance(result, Rejected):
        raise Refused(result.code, result.message, result.details)
    async with units.begin(org_id, actor) as uow:
        after = await pg_events.get_event(uow.db, event_id)
    assert after is not None
    return after


async def change_ticket_type(
    units: UnitsOfWork,
    shared: SharedEvents,
    shared_prices: SharedPrices,
    inventory: Inventories,
    org_id: str,
    actor: audit.Actor,
    event_id: str,
    code: str,
    capacity: int | None,
    prices: TypePriceChange | None,
    cmd_id: str,
) -> pg_events.EventRecord:
    """Change a ticket type's capacity (``set_capacity``, unchanged: through the inventory once published) and/or
    its price and tiers (a Postgres write, audited ``ticket_type.price``, then the new price list shared). Every
    rule of both is checked before anything changes (422 with every problem; a closed or cancelled event 409
    event_ended); then the capacity, which the inventory may still refuse (409 capacity_below_committed: the
    prices are then left as they were), then the prices, in their own transaction with their audit entry."""
    if not ids.is_event_id(event_id):
        raise event_not_found(event_id)
    change = None if prices is None or prices.empty else prices
    assert change is None or change.code == code, (code, change)
    if change is None:
        if capacity is None:
            raise InvalidPatch([Problem("capacity", "give capacity, price or price_tiers")])
        return await set_capacity(units, shared, inventory, org_id, actor, event_id, code, capacity, cmd_id)
    if capacity is not None:
        async with units.begin(org_id, actor) as uow:  # the check only: nothing changes unless all of it may
            await _checked_type_change(uow.db, event_id, capacity, change)
        await set_capacity(units, shared, inventory, org_id, actor, event_id, code, capacity, cmd_id)
    async with units.begin(org_id, actor) as uow:
        current = await _checked_type_change(uow.db, event_id, None, change)
        written = await price_changes.write_type_change(uow.db, event_id, current, change)
        if written.before is not None:
            uow.record(
                audit.Change(price_changes.TICKET_TYPE_PRICE, "ticket_type", f"{event_id}/{change.code}",
                             before=written.before, after=written.after)
            )
        record = await pg_events.get_event(uow.db, event_id)
    assert record is not None
    await shared_prices.share_prices(org_id, event_id, written.prices)
    return record


async def _checked_type_change(
    db: OrgDb, event_id: str, capacity: int | None, change: TypePriceChange
) -> pricing.PriceList:
    """The event's price list, once the type's change (and capacity, if given) passes every rule; the event's
    row stays locked until db's transaction ends."""
    record = await pg_lifecycle.lock_event(db, event_id)
    if record is None:
        raise event_not_found(event_id)
    ticket_type = next((t for t in record.ticket_types if t.code == change.code), None)
    if ticket_type is None:
        raise Refused(Refusal.TICKET_TYPE_NOT_FOUND, "no such ticket type", {"ticket_type": change.code})
    problems = []
    if capacity is not None and ticket_type.kind != TicketKind.GA:
        problems.append(Problem("capacity", "a seated ticket type's capacity is its seat count"))
    current = await price_changes.current_prices(db, event_id)
    problems += price_changes.type_problems(current, change)
    if problems:
        raise InvalidPatch(problems)
    if lifecycle.has_ended(record.status):
        raise price_changes.prices_ended(event_id, record.status)
    return current


def _ga_type(record: pg_events.EventRecord, code: str) -> pg_events.TicketTypeRecord:
    found = next((t for t in record.ticket_types if t.code == code), None)
    if found is None:
        raise Refused(Refusal.TICKET_TYPE_NOT_FOUND, "no such ticket type", {"ticket_type": code})
    if found.kind != TicketKind.GA:
        raise InvalidPatch([Problem("capacity", "a seated ticket type's capacity is its seat count")])
    return found


def _capacity_change(event_id: str, code: str, before: int, after: int) -> audit.Change:
    object_id = f"{event_id}/{code}"
    return audit.Change(
        TICKET_TYPE_CAPACITY, "ticket_type", object_id, before={"capacity": before}, after={"capacity": after}
    )


async def commit_capacity(
    conn: Connection,
    org_id: str,
    event_id: str,
    epoch: int,
    changes: Mapping[str, tuple[int, int, audit.Actor]],
) -> pg_events.EventRecord:
    """The inventory's commit of capacity changes (code -> (before, after, who asked)), fenced by its ``epoch``
    (pg_lifecycle.Fenced), each audited under who asked; the event as it now is."""
    async with unit_of_work_on(conn, org_id, inventory_actor(event_id)) as uow:
        for code, (before, after, by) in sorted(changes.items()):
            await pg_lifecycle.set_capacity(uow.db, event_id, code, after, inventory_epoch=epoch)
            uow.record(_capacity_change(event_id, code, before, after), by=by)
        record = await pg_events.get_event(uow.db, event_id)
    assert record is not None
    return record


# ---- the inventory's and the timer's moves -----------------------------------------------------------------


async def mark_sold_out(
    conn: Connection, org_id: str, event_id: str, epoch: int, *, sold_out: bool
) -> pg_events.EventRecord | None:
    """The inventory's move: on_sale -> sold_out when nothing is left, back when something is; fenced by its
    epoch. None when the event is no longer in the status it moves from (someone else moved it) or the epoch is
    stale."""
    before, to = (
        (EventStatus.ON_SALE, EventStatus.SOLD_OUT) if sold_out else (EventStatus.SOLD_OUT, EventStatus.ON_SALE)
    )
    assert lifecycle.may_move(before, to, Mover.INVENTORY)
    async with unit_of_work_on(conn, org_id, inventory_actor(event_id)) as uow:
        moved = await pg_lifecycle.move_fenced(uow.db, event_id, before, to, inventory_epoch=epoch)
        if moved is not None:
            uow.record(
                audit.Change(EVENT_TRANSITION, "event", event_id, before={"status": before.value}, after={"status": to})
            )
    return moved


async def fire_timed(
    units: UnitsOfWork,
    shared: SharedEvents,
    activations: Activations,
    org_id: str,
    event_id: str,
    now: float,
    lease_epoch: int,
) -> pg_events.EventRecord | None:
    """The timer's move of the event, if one is due at ``now`` (engine/catalog/timed.py), fenced by the timer's
    lease (pg_lifecycle.Fenced) and audited as the timer's; the event as it then is (None: no such event)."""
    async with units.begin(org_id, TIMER_ACTOR) as uow:
        record = await pg_events.get_event(uow.db, event_id)
        if record is None:
            return None
        to = due_move(record.status, record.schedule(), now)
        moved = None
        if to is not None:
            before = EventStatus(record.status)
            assert lifecycle.may_move(before, to, Mover.TIMER)
            await pg_lifecycle.check_timer_lease(uow.db, lease_epoch)
            moved = await pg_lifecycle.move(uow.db, record, to)
            if moved is not None:
                uow.record(
                    audit.Change(
                        EVENT_TRANSITION, "event", event_id, before={"status": before.value}, after={"status": to}
                    )
                )
    current = moved or record
    if moved is not None:
        await after_commit(shared, activations, None, moved)
    elif lifecycle.has_inventory(current.status):
        # Nothing to move (a presale opening): the inventory is brought live for its first holds.
        await activations.activate(org_id, event_id, dedicated=current.dedicated)
    return current

