"""The Postgres baseline's transactions: each hold, release, confirm is ONE transaction on one pooled connection.

Locks are always taken in one order (buyer advisory lock, then hold rows, then seat rows by seat index, then a GA
counter row), so two commands never deadlock; a lookup reads without locking. See postgres.py for why.

The baseline's own tables (bl_pg_*) hold no platform row, so holds and releases need no org; a confirm writes the
platform's sales and tickets and activation reads its events, seats and ticket types: those transactions are
org transactions (persistence.tenancy), as row-level security requires of the platform's role.
"""

from __future__ import annotations

import asyncpg

from engine.inventory.commands import (
    Command,
    Confirm,
    ExtendHold,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Release,
    Result,
    SaleView,
)
from engine.refusals import Refusal
from loadtests.baselines import common
from loadtests.baselines.common import EventShape
from persistence.db import Connection
from persistence.tenancy import OrgDb, org_transaction

expired_reclaimed_per_call_max = 1_024
due_types_per_sweep_max = 256

# ---- SQL ---------------------------------------------------------------------------------------------------------

_BUYER_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended($1::text || '/' || $2::text, 0))"
# Runs after the buyer lock, so its snapshot sees every hold this buyer committed before.
_BUYER_TICKETS_SQL = """
SELECT coalesce(sum(quantity), 0)::int FROM bl_pg_holds h WHERE h.event_id = $1 AND h.buyer_id = $2
  AND (h.status = 'sold' OR (h.status = 'held' AND h.expires_at > $3))
"""
_LOCK_SEATS_SQL = """
SELECT s.seat_index, s.seat_id, s.sold OR (s.hold_id IS NOT NULL AND s.hold_expires_at > $3) AS taken,
       (SELECT coalesce(sum(quantity), 0)::int FROM bl_pg_holds h WHERE h.event_id = $1 AND h.buyer_id = $4
          AND (h.status = 'sold' OR (h.status = 'held' AND h.expires_at > $3))) AS buyer_tickets,
       EXISTS (SELECT 1 FROM bl_pg_holds WHERE hold_id = $5) AS repeated
FROM bl_pg_seats s WHERE s.event_id = $1 AND s.seat_id = ANY($2::text[])
ORDER BY s.seat_index FOR UPDATE OF s
"""
_BUYER_UNITS_SQL = f"""
SELECT ({_BUYER_TICKETS_SQL}) AS buyer_tickets, EXISTS (SELECT 1 FROM bl_pg_holds WHERE hold_id = $4) AS repeated
"""
_INSERT_HOLD_COLUMNS = (
    "hold_id, event_id, buyer_id, ticket_type, quantity, is_ga, seat_ids, seat_indexes, expires_at, status"
)
_CLAIM_SEATS_SQL = f"""
WITH claimed AS (
    UPDATE bl_pg_seats SET hold_id = $3, hold_expires_at = $6 WHERE event_id = $1 AND seat_index = ANY($5::int[])
)
INSERT INTO bl_pg_holds ({_INSERT_HOLD_COLUMNS})
VALUES ($3, $1, $2, $7, cardinality($4::text[]), false, $4, $5, $6, 'held')
ON CONFLICT (hold_id) DO NOTHING RETURNING hold_id
"""
_TAKE_UNITS_SQL = f"""
WITH took AS (
    UPDATE bl_pg_ga SET available = available - $4, held = held + $4
    WHERE event_id = $1 AND code = $3 AND available >= $4 RETURNING available
), placed AS (
    INSERT INTO bl_pg_holds ({_INSERT_HOLD_COLUMNS})
    SELECT $5, $1, $2, $3, $4, true, '{{}}', '{{}}', $6, 'held' FROM took
    ON CONFLICT (hold_id) DO NOTHING RETURNING hold_id
)
SELECT (SELECT available FROM took) AS left_after, (SELECT count(*) FROM placed) AS placed
"""
_RECLAIM_SQL = """
WITH due AS (
    SELECT hold_id FROM bl_pg_holds
    WHERE status = 'held' AND is_ga AND expires_at <= $3 AND event_id = $1 AND ticket_type = $2
    ORDER BY expires_at LIMIT $4 FOR UPDATE SKIP LOCKED
), ended AS (
    UPDATE bl_pg_holds h SET status = 'expired' FROM due WHERE h.hold_id = due.hold_id RETURNING h.quantity
)
UPDATE bl_pg_ga SET available = available + n.total, held = held - n.total
FROM (SELECT sum(quantity)::int AS total FROM ended) n
WHERE event_id = $1 AND code = $2 AND n.total IS NOT NULL
"""
_DUE_TYPES_SQL = """
SELECT DISTINCT event_id, ticket_type FROM bl_pg_holds WHERE status = 'held' AND is_ga AND expires_at <= $1 LIMIT $2
"""
_HOLD_COLUMNS = (
    "hold_id, buyer_id, ticket_type, quantity, is_ga, seat_ids, seat_indexes, units, expires_at, status, order_ref"
)
_GET_HOLD_SQL = f"SELECT {_HOLD_COLUMNS} FROM bl_pg_holds WHERE hold_id = $1 AND event_id = $2"
_LOCK_HOLD_SQL = _GET_HOLD_SQL + " FOR UPDATE"
# Seat rows are always locked in seat-index order (as holds lock them), so writers never deadlock.
_FREE_SEATS_SQL = """
WITH locked AS (
    SELECT seat_index FROM bl_pg_seats WHERE event_id = $1 AND seat_index = ANY($2::int[]) AND hold_id = $3
    ORDER BY seat_index FOR UPDATE
), freed AS (
    UPDATE bl_pg_seats s SET hold_id = NULL, hold_expires_at = NULL FROM locked
    WHERE s.event_id = $1 AND s.seat_index = locked.seat_index
)
UPDATE bl_pg_holds SET status = $4 WHERE hold_id = $3
"""
_EXTEND_SQL = """
WITH locked AS (
    SELECT seat_index FROM bl_pg_seats WHERE event_id = $1 AND seat_index = ANY($2::int[]) AND hold_id = $3
    ORDER BY seat_index FOR UPDATE
), seats AS (
    UPDATE bl_pg_seats s SET hold_expires_at = $4 FROM locked
    WHERE s.event_id = $1 AND s.seat_index = locked.seat_index
)
UPDATE bl_pg_holds SET expires_at = $4 WHERE hold_id = $3
"""
_FREE_UNITS_SQL = """
WITH ga AS (UPDATE bl_pg_ga SET available = available + $3, held = held - $3 WHERE event_id = $1 AND code = $2)
UPDATE bl_pg_holds SET status = $5 WHERE hold_id = $4
"""
_SELL_SEATS_SQL = """
WITH locked AS (
    SELECT seat_index FROM bl_pg_seats
    WHERE event_id = $1 AND seat_index = ANY($2::int[]) AND hold_id = $3 AND NOT sold
    ORDER BY seat_index FOR UPDATE
), sold AS (
    UPDATE bl_pg_seats s SET sold = true FROM locked WHERE s.event_id = $1 AND s.seat_index = locked.seat_index
    RETURNING 1
), hold AS (
    UPDATE bl_pg_holds SET status = 'sold', order_ref = $4 WHERE hold_id = $3
)
SELECT count(*)::int FROM sold
"""
# GA units are numbered from the sold counter: it only grows and held + sold <= capacity, so 1..capacity, unique.
_SELL_UNITS_SQL = """
WITH ga AS (
    UPDATE bl_pg_ga SET held = held - $3, sold = sold + $3 WHERE event_id = $1 AND code = $2 RETURNING sold
)
UPDATE bl_pg_holds h
SET status = 'sold', order_ref = $5, units = ARRAY(SELECT generate_series(ga.sold - $3 + 1, ga.sold))
FROM ga WHERE h.hold_id = $4 RETURNING h.units
"""
_ACTIVATE_SQL = (
    "INSERT INTO bl_pg_seats (event_id, seat_index, seat_id) SELECT event_id, seat_index, seat_id FROM seats "
    "WHERE org_id = $2 AND event_id = $1 ON CONFLICT DO NOTHING",
    "INSERT INTO bl_pg_ga (event_id, code, capacity, available, held, sold) SELECT event_id, code, capacity, "
    "capacity, 0, 0 FROM ticket_types WHERE org_id = $2 AND event_id = $1 AND kind = 'ga' ON CONFLICT DO NOTHING",
    "INSERT INTO bl_pg_events (event_id, org_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
)
class _Rollback(Exception):
    """Undo the transaction and answer ``result`` (a repeated hold id met while claiming, a seat lost while
    confirming)."""

    def __init__(self, result: Result) -> None:
        super().__init__(result)
        self.result = result


# ---- holds ---------------------------------------------------------------------------------------------------------


async def hold(conn: Connection, shape: EventShape, command: Hold, now: float) -> Result:
    expires_at = now + (shape.hold_ttl_s if command.ttl_s is None else command.ttl_s)
    try:
        async with conn.transaction():
            await conn.execute(_BUYER_LOCK_SQL, shape.event_id, command.buyer_id)
            if command.seats and command.ticket_type is None and command.quantity == 0:
                return await _hold_seats(conn, shape, command, now, expires_at)
            if not command.seats and command.ticket_type is not None and command.quantity > 0:
                return await _hold_units(conn, shape, command, now, expires_at)
            return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold either seats or a quantity of one ticket type")
    except _Rollback as rollback:
        return rollback.result


async def _hold_seats(conn: Connection, shape: EventShape, command: Hold, now: float, expires_at: float) -> Result:
    seats = command.seats
    rows = await conn.fetch(_LOCK_SEATS_SQL, shape.event_id, list(seats), now, command.buyer_id, command.hold_id)
    found = {row["seat_id"]: row for row in rows}
    unknown = [seat for seat in seats if seat not in found]
    if unknown:
        return common.unknown_seats(unknown)
    if rows[0]["repeated"]:
        return await _existing(conn, shape, command)
    refusal = _buyer_refusal(shape, rows[0]["buyer_tickets"], len(seats))
    if refusal is not None:
        return refusal
    taken = [seat for seat in seats if found[seat]["taken"]]
    if taken:
        return common.seats_unavailable(taken)
    indexes = [found[seat]["seat_index"] for seat in seats]
    assert shape.seated_type is not None
    placed = await conn.fetchval(
        _CLAIM_SEATS_SQL, shape.event_id, command.buyer_id, command.hold_id, list(seats), indexes, expires_at,
        shape.seated_type,
    )
    if placed is None:
        raise _Rollback(await _existing(conn, shape, command))
    view = common.hold_view(command.hold_id, command.buyer_id, seats, shape.seated_type, len(seats), (), expires_at,
                            "held")
    return Ok(view)


async def _hold_units(conn: Connection, shape: EventShape, command: Hold, now: float, expires_at: float) -> Result:
    code, quantity = command.ticket_type, command.quantity
    assert code is not None
    if code not in shape.ga_capacity:
        return common.unknown_ticket_type(code)
    row = await conn.fetchrow(_BUYER_UNITS_SQL, shape.event_id, command.buyer_id, now, command.hold_id)
    if row["repeated"]:
        return await _existing(conn, shape, command)
    refusal = _buyer_refusal(shape, row["buyer_tickets"], quantity)
    if refusal is not None:
        return refusal
    args = (shape.event_id, command.buyer_id, code, quantity, command.hold_id, expires_at)
    took = await conn.fetchrow(_TAKE_UNITS_SQL, *args)
    if took["left_after"] is None:
        # Refuse only for live holds: give back this type's due holds first, then try once more.
        await conn.execute(_RECLAIM_SQL, shape.event_id, code, now, expired_reclaimed_per_call_max)
        took = await conn.fetchrow(_TAKE_UNITS_SQL, *args)
    if took["left_after"] is None:
        available = await conn.fetchval(
            "SELECT available FROM bl_pg_ga WHERE event_id = $1 AND code = $2", shape.event_id, code
        )
        return common.insufficient(code, available)
    if not took["placed"]:
        raise _Rollback(await _existing(conn, shape, command))
    return Ok(common.hold_view(command.hold_id, command.buyer_id, (), code, quantity, (), expires_at, "held"))


def _buyer_refusal(shape: EventShape, held_or_bought: int, requested: int) -> Rejected | None:
    limit = shape.max_tickets_per_buyer
    return None if held_or_bought + requested <= limit else common.buyer_limit(limit, held_or_bought, requested)


async def _existing(conn: Connection, shape: EventShape, command: Hold) -> Result:
    """A repeated hold id answers the hold it made (the engine answers a repeated command alike)."""
    row = await conn.fetchrow(_GET_HOLD_SQL, command.hold_id, shape.event_id)
    if row is None or row["buyer_id"] != command.buyer_id:
        return common.hold_id_taken(command.hold_id)
    return Ok(_view(row))


def _view(row: asyncpg.Record, expires_at: float | None = None) -> HoldView:
    status = "sold" if row["status"] == "sold" else "held"
    return common.hold_view(
        row["hold_id"], row["buyer_id"], row["seat_ids"], row["ticket_type"], row["quantity"], row["units"],
        row["expires_at"] if expires_at is None else expires_at, status,
    )


# ---- release, confirm, lookup --------------------------------------------------------------------------------------


def _state(row: asyncpg.Record | None, now: float) -> str:
    """missing, held, due (held but past its time), sold, released or expired."""
    if row is None:
        return "missing"
    if row["status"] == "held" and row["expires_at"] <= now:
        return "due"
    return str(row["status"])


async def _free(conn: Connection, shape: EventShape, row: asyncpg.Record, how: str) -> None:
    if row["is_ga"]:
        await conn.execute(_FREE_UNITS_SQL, shape.event_id, row["ticket_type"], row["quantity"], row["hold_id"], how)
    else:
        await conn.execute(_FREE_SEATS_SQL, shape.event_id, row["seat_indexes"], row["hold_id"], how)


async def release(conn: Connection, shape: EventShape, command: Release, now: float) -> Result:
    hold_id = command.hold_id
    async with conn.transaction():
        row = await conn.fetchrow(_LOCK_HOLD_SQL, hold_id, shape.event_id)
        state = _state(row, now)
        if row is not None and state in ("held", "due"):
            await _free(conn, shape, row, "released" if state == "held" else "expired")
    if state in ("held", "released"):
        return Ok(None)  # a repeated release of a released hold answers as the first did
    return _ended("expired" if state == "due" else state, hold_id)


def _ended(state: str, hold_id: str) -> Rejected:
    return common.rejection({"missing": "hold_not_found", "expired": "hold_expired"}.get(state, state), hold_id, {})


async def confirm(conn: Connection, shape: EventShape, command: Confirm, now: float) -> Result:
    try:
        return await _confirm(conn, shape, command, now)
    except _Rollback as rollback:
        return rollback.result


async def _confirm(conn: Connection, shape: EventShape, command: Confirm, now: float) -> Result:
    hold_id = command.hold_id
    # The org's transaction: the sale goes into the platform's sales and tickets, under row-level security.
    async with org_transaction(conn, shape.org_id) as db:
        row = await conn.fetchrow(_LOCK_HOLD_SQL, hold_id, shape.event_id)
        state = _state(row, now)
        if row is None or state in ("released", "expired", "missing"):
            return _ended(state, hold_id)
        if state == "due":
            await _free(conn, shape, row, "expired")
            return common.hold_expired(hold_id)
        if state == "sold":
            if row["order_ref"] != command.order_ref:
                return common.sold_elsewhere(hold_id)
            return Ok(_sale(row, row["order_ref"], row["units"]))
        return Ok(await _sell(db, shape, row, command.order_ref))


async def _sell(db: OrgDb, shape: EventShape, row: asyncpg.Record, order_ref: str) -> SaleView:
    conn = db.conn
    hold_id, quantity = row["hold_id"], row["quantity"]
    units: list[int] = []
    if row["is_ga"]:
        units = await conn.fetchval(_SELL_UNITS_SQL, shape.event_id, row["ticket_type"], quantity, hold_id, order_ref)
    else:
        sold = await conn.fetchval(_SELL_SEATS_SQL, shape.event_id, row["seat_indexes"], hold_id, order_ref)
        if sold != quantity:
            # Its time passed while this waited for the hold's lock, and a new hold took a seat first.
            raise _Rollback(common.hold_expired(hold_id))
    sale = _sale(row, order_ref, units)
    if not await common.insert_sale(db, shape, sale):
        raise RuntimeError(f"hold {hold_id} is held here but already has a sale")  # rolls back; a bug
    return sale


def _sale(row: asyncpg.Record, order_ref: str, units: list[int]) -> SaleView:
    return common.sale_view(row["hold_id"], row["buyer_id"], order_ref, row["ticket_type"], row["seat_ids"], units)


async def hold_copy(conn: Connection, event_id: str, hold_id: str) -> HoldView | None:
    """The hold as its row has it (checkout prices it), or None once it was released or expired."""
    row = await conn.fetchrow(_GET_HOLD_SQL, hold_id, event_id)
    return None if row is None or row["status"] not in ("held", "sold") else _view(row)


async def lookup(conn: Connection, shape: EventShape, command: LookupHold, now: float) -> Result:
    row = await conn.fetchrow(_GET_HOLD_SQL, command.hold_id, shape.event_id)
    state = _state(row, now)
    if row is None or state not in ("held", "sold"):
        return _ended("expired" if state == "due" else state, command.hold_id)
    return Ok(_view(row))


async def extend(conn: Connection, shape: EventShape, command: ExtendHold, now: float) -> Result:
    """Checkout's payment window: a held hold's expiry becomes max(expires_at, now + ttl_s), on the hold and on
    its seats (whose own expiry says they are held), in one transaction."""
    refused = common.extend_ttl_refusal(command.ttl_s)
    if refused is not None:
        return refused
    hold_id = command.hold_id
    async with conn.transaction():
        row = await conn.fetchrow(_LOCK_HOLD_SQL, hold_id, shape.event_id)
        state = _state(row, now)
        if row is None or state != "held":
            if row is not None and state == "due":
                await _free(conn, shape, row, "expired")
            return _ended({"due": "expired", "sold": "sold_not_extendable"}.get(state, state), hold_id)
        expires_at = now + command.ttl_s
        if expires_at <= row["expires_at"]:
            return Ok(_view(row))
        await conn.execute(_EXTEND_SQL, shape.event_id, row["seat_indexes"], hold_id, expires_at)
        return Ok(_view(row, expires_at))


# ---- activation, sweeping ------------------------------------------------------------------------------------------


async def activate_event(conn: Connection, org_id: str, event_id: str) -> None:
    """Fill this baseline's rows from the platform's seats and ticket types, once (idempotent)."""
    if await conn.fetchval("SELECT 1 FROM bl_pg_events WHERE event_id = $1", event_id):
        return
    async with org_transaction(conn, org_id):
        on_sale = await conn.fetchval(
            "SELECT 1 FROM events WHERE id = $1 AND org_id = $2 AND status = 'on_sale'", event_id, org_id
        )
        if not on_sale:
            return
        await conn.execute(_ACTIVATE_SQL[0], event_id, org_id)
        await conn.execute(_ACTIVATE_SQL[1], event_id, org_id)
        await conn.execute(_ACTIVATE_SQL[2], event_id, org_id)


async def sweep(conn: Connection, now: float) -> None:
    """Give back the units of due GA holds, one (event, type) per statement so each locks one counter row."""
    for event_id, code in await conn.fetch(_DUE_TYPES_SQL, now, due_types_per_sweep_max):
        await conn.execute(_RECLAIM_SQL, event_id, code, now, expired_reclaimed_per_call_max)


async def apply(conn: Connection, shape: EventShape, command: Command, now: float) -> Result:
    if isinstance(command, Hold):
        return await hold(conn, shape, command, now)
    if isinstance(command, Release):
        return await release(conn, shape, command, now)
    if isinstance(command, Confirm):
        return await confirm(conn, shape, command, now)
    if isinstance(command, LookupHold):
        return await lookup(conn, shape, command, now)
    if isinstance(command, ExtendHold):
        return await extend(conn, shape, command, now)
    return Rejected(Refusal.INVALID_TRANSITION, "this baseline does not cancel sales", {"hold_id": command.hold_id})
