"""Organizations (tenants). Creating one also creates its owner API key and audits both, in one transaction."""

from __future__ import annotations

import secrets

from engine import limits
from engine.access.rules import OWNER_SCOPES
from persistence import audit
from persistence.access.apikeys import audit_view, create_api_key
from persistence.db import Connection
from persistence.tenancy import org_transaction

ORG_PREFIX = "org_"
OWNER_KEY_NAME = "owner"
CLI_ACTOR = "cli"


async def create_org(conn: Connection, name: str, *, actor: str = CLI_ACTOR) -> tuple[str, str]:
    """(org id, owner API key plaintext). The plaintext exists only in this return value.

    ``actor`` names the part of the platform that asks (the audit log's system actor: "cli", "up", ...)."""
    if not 1 <= len(name) <= limits.name_chars_max:
        raise ValueError(f"organization name must be 1..{limits.name_chars_max} characters")
    org_id = ORG_PREFIX + secrets.token_hex(16)
    # Row-level security on orgs checks the row's id against the transaction's org: bind the new one.
    async with org_transaction(conn, org_id) as db:
        await db.conn.execute("INSERT INTO orgs (id, name) VALUES ($1, $2)", org_id, name)
        record, plaintext = await create_api_key(db, OWNER_KEY_NAME, OWNER_SCOPES, created_by=f"system:{actor}")
        await audit.record(
            db,
            audit.Actor("system", actor),
            audit.Change("org.create", "org", org_id, after={"name": name}),
            audit.Change("api_key.create", "api_key", record.id, after=audit_view(record)),
        )
    return org_id, plaintext
