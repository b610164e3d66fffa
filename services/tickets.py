"""Ticket use cases: what a verifier needs (the org's verifying keys). Issuing tickets, rotating keys and revoking
come with orders (issue 11's orders part) on a unit of work; the stores are persistence/tickets.py."""

from __future__ import annotations

from persistence import tickets
from persistence.tickets import TicketKeyRecord
from services.unit_of_work import Tenants


async def verifying_keys(tenants: Tenants, org_id: str) -> list[TicketKeyRecord]:
    """The org's active and retiring keys, oldest first: every ticket they signed verifies (retired keys' do not,
    so they are left out, and a verifier without them answers unknown_key)."""
    async with tenants.tenant(org_id) as db:
        return await tickets.list_keys(db)


async def revocations(tenants: Tenants, org_id: str, event_id: str, since_version: int = 0) -> tickets.Revocations:
    """The event's revoked tickets (after ``since_version``) and the list's version: a scanner's offline list."""
    async with tenants.tenant(org_id) as db:
        return await tickets.read_revocations(db, event_id, since_version=since_version)
