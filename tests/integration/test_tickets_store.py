"""Ticket keys and revocations in Postgres (migration 007, persistence/tickets.py), on the platform's own role.

- A key's private half is stored sealed: neither the seed nor anything derived from it but the public key is in
  its row, and it opens only with the master that sealed it; a payload it signs verifies with the stored public
  key alone.
- Rotation: a new active key, the old one retiring (its sealed half erased), both verifying; retiring it refuses
  its tickets. The schema refuses two active keys, a status moving back, a retiring key keeping its private half.
- Another org sees none of an org's keys or revocations, and cannot write one for it.
- Revoking grows the event's version only when something new is revoked; ``since`` gives what changed.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import asyncpg
import pytest

from engine.ids import hold_id_for, sale_id_of_hold, ticket_id_of_hold
from engine.inventory.commands import SaleView, TicketView
from engine.tickets.keys import KeyRing, KeyStatus
from engine.tickets.payload import TicketClaims
from engine.tickets.sealing import MasterKey, SealBroken
from engine.tickets.verify import RefusalReason, TicketRefusal, VerifiedTicket, sign, verify
from persistence.access.orgs import create_org
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event, publish_event, take_inventory_epoch
from persistence.inventory.sales import write_sales
from persistence.tenancy import org_transaction
from persistence.tickets import (
    Retire,
    create_key,
    ensure_active_key,
    list_keys,
    read_revocations,
    retire_key,
    revoke_tickets,
    rotate_key,
    signing_key,
)

MASTER = MasterKey(secrets.token_urlsafe(32).encode())


async def _org(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        org_id, _ = await create_org(conn, "tickets test org")
    return org_id


async def _event_with_tickets(pool: asyncpg.Pool, org_id: str, count: int) -> tuple[str, list[str]]:
    """An on-sale GA event with one sale of ``count`` tickets."""
    new = NewEvent(
        name="tickets", starts_at=datetime(2026, 12, 31, 18, tzinfo=UTC), hold_ttl_s=600, max_tickets_per_buyer=10,
        seating=None, seat_ids=(), ticket_types=(TicketTypeRecord("GA", "ga", 100, 50, "ZAR"),),
    )  # fmt: skip
    async with pool.acquire() as conn:
        async with org_transaction(conn, org_id) as db:
            event = await create_event(db, new)
            await publish_event(db, event.id)
            taken = await take_inventory_epoch(db, event.id)
        assert taken is not None
        hold_id = hold_id_for(event.id, secrets.token_hex(10))
        tickets = tuple(TicketView(ticket_id_of_hold(hold_id, n), "GA", None, n) for n in range(1, count + 1))
        async with org_transaction(conn, org_id) as db:
            sale = SaleView(sale_id_of_hold(hold_id), hold_id, "buyer", "order", tickets)
            await write_sales(db, event.id, taken[0], [sale], [])
    return event.id, [t.ticket_id for t in tickets]


async def test_a_key_is_stored_sealed_and_signs_what_its_public_half_verifies(
    pool: asyncpg.Pool, database_url: str
) -> None:
    org_id = await _org(pool)
    event_id, ticket_ids = await _event_with_tickets(pool, org_id, 1)
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        made = await create_key(db, MASTER)
        assert made is not None and made.status is KeyStatus.ACTIVE
        assert await create_key(db, MASTER) is None  # one active key: rotate instead
        assert (await ensure_active_key(db, MASTER)).kid == made.kid
        key = await signing_key(db, MASTER)
        assert key is not None and key.kid == made.kid
        with pytest.raises(SealBroken):
            await signing_key(db, MasterKey(secrets.token_urlsafe(32).encode()))
    payload = sign(TicketClaims(ticket_ids[0], "GA", unit=1), key)
    result = verify(payload, KeyRing.of([made.verifying_key()]), event_ids=[event_id])
    assert isinstance(result, VerifiedTicket) and result.org_id == org_id

    admin = await asyncpg.connect(database_url)
    try:
        row = await admin.fetchrow("SELECT * FROM ticket_keys WHERE org_id = $1", org_id)
        dump = await admin.fetchval("SELECT string_agg(t::text, ' ') FROM ticket_keys t WHERE org_id = $1", org_id)
    finally:
        await admin.close()
    assert row is not None and bytes(row["public_key"]) == made.public_key
    stored = b"".join(bytes(v) for v in row.values() if isinstance(v, bytes | bytearray | memoryview))
    assert key.seed not in stored and len(row["private_key_sealed"]) == 48
    assert key.seed.hex() not in dump and key.seed.hex() not in str(dict(row))
    assert MASTER.open(org_id, made.kid, bytes(row["private_key_sealed"]), bytes(row["private_key_nonce"])) == key.seed
    assert row["master_id"] == MASTER.master_id


async def test_rotation_keeps_old_tickets_verifying_until_the_old_key_retires(pool: asyncpg.Pool) -> None:
    org_id = await _org(pool)
    event_id, ticket_ids = await _event_with_tickets(pool, org_id, 2)
    async with pool.acquire() as conn:
        async with org_transaction(conn, org_id) as db:
            first, none = await rotate_key(db, MASTER)  # rotating with no key yet makes the first
            assert none is None
            old_key = await signing_key(db, MASTER)
        assert old_key is not None
        before = sign(TicketClaims(ticket_ids[0], "GA", unit=1), old_key)
        async with org_transaction(conn, org_id) as db:
            second, retiring = await rotate_key(db, MASTER)
            new_key = await signing_key(db, MASTER)
            keys = await list_keys(db)
        assert new_key is not None and new_key.kid == second.kid != first.kid
        assert retiring is not None and retiring.kid == first.kid and retiring.status is KeyStatus.RETIRING
        assert [(k.kid, k.status) for k in keys] == [(first.kid, KeyStatus.RETIRING), (second.kid, KeyStatus.ACTIVE)]
        after = sign(TicketClaims(ticket_ids[1], "GA", unit=2), new_key)
        ring = KeyRing.of([k.verifying_key() for k in keys])
        assert isinstance(verify(before, ring, event_ids=[event_id]), VerifiedTicket)
        assert isinstance(verify(after, ring, event_ids=[event_id]), VerifiedTicket)

        async with org_transaction(conn, org_id) as db:
            assert await retire_key(db, second.kid) is Retire.NOT_RETIRING  # the active key: rotate first
            assert await retire_key(db, "000000" if first.kid != "000000" else "000001") is Retire.NOT_FOUND
            assert await retire_key(db, first.kid) is Retire.RETIRED
            assert await retire_key(db, first.kid) is Retire.NOT_RETIRING
            verifying = await list_keys(db)
            every = await list_keys(db, with_retired=True)
        assert [k.kid for k in verifying] == [second.kid]
        assert {(k.kid, k.status) for k in every} == {(first.kid, KeyStatus.RETIRED), (second.kid, KeyStatus.ACTIVE)}
        ring = KeyRing.of([k.verifying_key() for k in every])
        result = verify(before, ring, event_ids=[event_id])
        assert isinstance(result, TicketRefusal) and result.reason is RefusalReason.RETIRED_KEY
        assert isinstance(verify(after, ring, event_ids=[event_id]), VerifiedTicket)


async def test_the_schema_defends_the_key_states(pool: asyncpg.Pool, database_url: str) -> None:
    org_id = await _org(pool)
    async with pool.acquire() as conn:
        async with org_transaction(conn, org_id) as db:
            first, _ = await rotate_key(db, MASTER)
            second, _ = await rotate_key(db, MASTER)
        admin = await asyncpg.connect(database_url)
        try:
            row = await admin.fetchrow("SELECT * FROM ticket_keys WHERE org_id = $1 AND kid = $2", org_id, first.kid)
            assert row["private_key_sealed"] is None and row["private_key_nonce"] is None  # erased on rotation
            refused = [
                # a second active key
                ("UPDATE ticket_keys SET status = 'active' WHERE org_id = $1 AND kid = $2", first.kid),
                # back from retiring, or straight from active to retired
                ("UPDATE ticket_keys SET status = 'active', retiring_at = NULL WHERE org_id = $1 AND kid = $2",
                 first.kid),
                ("UPDATE ticket_keys SET status = 'retired', retired_at = now(), retiring_at = now(), "
                 "private_key_sealed = NULL, private_key_nonce = NULL, master_id = NULL "
                 "WHERE org_id = $1 AND kid = $2", second.kid),
                # a retiring key keeping a private half, an active one losing it
                ("UPDATE ticket_keys SET private_key_sealed = $2::bytea WHERE org_id = $1", bytes(48)),
                ("UPDATE ticket_keys SET private_key_sealed = NULL WHERE org_id = $1 AND kid = $2", second.kid),
                # a public key replaced
                ("UPDATE ticket_keys SET public_key = $2::bytea WHERE org_id = $1", bytes(32)),
            ]  # fmt: skip
            for statement, argument in refused:
                with pytest.raises(asyncpg.IntegrityConstraintViolationError):
                    await admin.execute(statement, org_id, argument)
        finally:
            await admin.close()
        async with org_transaction(conn, org_id) as db:
            assert {(k.kid, k.status) for k in await list_keys(db)} == {
                (first.kid, KeyStatus.RETIRING),
                (second.kid, KeyStatus.ACTIVE),
            }


async def test_another_org_sees_and_writes_none_of_them(pool: asyncpg.Pool) -> None:
    mine, theirs = await _org(pool), await _org(pool)
    event_id, ticket_ids = await _event_with_tickets(pool, mine, 1)
    async with pool.acquire() as conn:
        async with org_transaction(conn, mine) as db:
            made = await create_key(db, MASTER)
            await revoke_tickets(db, event_id, ticket_ids)
        assert made is not None
        async with org_transaction(conn, theirs) as db:
            assert await list_keys(db, with_retired=True) == []
            assert await signing_key(db, MASTER) is None
            assert await retire_key(db, made.kid) is Retire.NOT_FOUND
            assert await read_revocations(db, event_id) == (await read_revocations(db, "evt_" + "0" * 32))
            assert (await read_revocations(db, event_id)).version == 0
            raw = await db.conn.fetch("SELECT * FROM ticket_keys")
            assert raw == [] and await db.conn.fetch("SELECT * FROM ticket_revocations") == []
        with pytest.raises(asyncpg.PostgresError):  # RLS's WITH CHECK, or the event's foreign key
            async with org_transaction(conn, theirs) as db:
                await db.conn.execute(
                    "INSERT INTO ticket_keys (org_id, kid, public_key, status, private_key_sealed, private_key_nonce, "
                    "master_id) VALUES ($1, 'abcdef', $2, 'active', $3, $4, $5)",
                    mine, bytes(32), bytes(48), bytes(12), MASTER.master_id,
                )  # fmt: skip
        with pytest.raises(asyncpg.PostgresError):
            async with org_transaction(conn, theirs) as db:
                await revoke_tickets(db, event_id, ticket_ids)
        async with org_transaction(conn, mine) as db:
            assert [k.kid for k in await list_keys(db)] == [made.kid]
            assert await read_revocations(db, event_id) == (await read_revocations(db, event_id))
            assert (await read_revocations(db, event_id)).version == 1


async def test_revoking_grows_the_version_only_for_something_new(pool: asyncpg.Pool, database_url: str) -> None:
    org_id = await _org(pool)
    event_id, ticket_ids = await _event_with_tickets(pool, org_id, 4)
    other_event, other_tickets = await _event_with_tickets(pool, org_id, 1)
    async with pool.acquire() as conn:
        async with org_transaction(conn, org_id) as db:
            assert (await read_revocations(db, event_id)).version == 0
            assert await revoke_tickets(db, event_id, ticket_ids[:2]) == 1
            assert await revoke_tickets(db, event_id, ticket_ids[:2]) == 1  # nothing new: no new version
            assert await revoke_tickets(db, event_id, [ticket_ids[1], ticket_ids[2], ticket_ids[2]]) == 2
            assert await revoke_tickets(db, event_id, []) == 2
            everything = await read_revocations(db, event_id)
            since_one = await read_revocations(db, event_id, since_version=1)
            since_now = await read_revocations(db, event_id, since_version=2)
            assert (await read_revocations(db, other_event)).version == 0
        assert everything.version == 2 and set(everything.ticket_ids) == set(ticket_ids[:3])
        assert since_one.ticket_ids == (ticket_ids[2],) and since_now.ticket_ids == () and since_now.version == 2
        with pytest.raises(asyncpg.CheckViolationError):  # a ticket of another event
            async with org_transaction(conn, org_id) as db:
                await revoke_tickets(db, event_id, other_tickets)
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # no such ticket
            async with org_transaction(conn, org_id) as db:
                await revoke_tickets(db, event_id, [ticket_id_of_hold(hold_id_for(event_id, "ab" * 10), 1)])
        async with org_transaction(conn, org_id) as db:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # append-only
                await db.conn.execute("DELETE FROM ticket_revocations WHERE event_id = $1", event_id)
        async with org_transaction(conn, org_id) as db:
            with pytest.raises(asyncpg.CheckViolationError):  # a version the list is not at
                await db.conn.execute(
                    "INSERT INTO ticket_revocations (org_id, event_id, ticket_id, version) VALUES ($1, $2, $3, 1)",
                    org_id, event_id, ticket_ids[3],
                )  # fmt: skip
        for lowered in ("version - 1", "1", "version + 2"):  # a list's version moves up by one, never else
            async with org_transaction(conn, org_id) as db:
                with pytest.raises(asyncpg.CheckViolationError):
                    await db.conn.execute(
                        f"UPDATE ticket_revocation_lists SET version = {lowered} WHERE event_id = $1", event_id
                    )
        async with org_transaction(conn, org_id) as db:
            assert (await read_revocations(db, event_id)).version == 2
    # the revoked ticket fails offline, its neighbour passes
    async with pool.acquire() as conn, org_transaction(conn, org_id) as db:
        await create_key(db, MASTER)
        key = await signing_key(db, MASTER)
        ring = KeyRing.of([k.verifying_key() for k in await list_keys(db)])
        revoked = set((await read_revocations(db, event_id)).ticket_ids)
    assert key is not None
    gone = verify(sign(TicketClaims(ticket_ids[0], "GA", unit=1), key), ring, event_ids=[event_id], revoked=revoked)
    kept = verify(sign(TicketClaims(ticket_ids[3], "GA", unit=4), key), ring, event_ids=[event_id], revoked=revoked)
    assert isinstance(gone, TicketRefusal) and gone.reason is RefusalReason.REVOKED
    assert isinstance(kept, VerifiedTicket)
