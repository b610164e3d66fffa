"""Organizations (tenants). Creating one also creates its owner API key, in the same transaction."""

from __future__ import annotations

import secrets

from engine import limits
from engine.access import OWNER_SCOPES
from persistence.apikeys import create_api_key
from persistence.db import Connection

ORG_PREFIX = "org_"
OWNER_KEY_NAME = "owner"


async def create_org(conn: Connection, name: str) -> tuple[str, str]:
    """(org id, owner API key plaintext). The plaintext exists only in this return value."""
    if not 1 <= len(name) <= limits.name_chars_max:
        raise ValueError(f"organization name must be 1..{limits.name_chars_max} characters")
    org_id = ORG_PREFIX + secrets.token_hex(16)
    async with conn.transaction():
        await conn.execute("INSERT INTO orgs (id, name) VALUES ($1, $2)", org_id, name)
        _, plaintext = await create_api_key(conn, org_id, OWNER_KEY_NAME, OWNER_SCOPES)
    return org_id, plaintext
