"""Applies the SQL files in persistence/migrations/ (NNN_name.sql) in version order, each exactly once.

A session advisory lock serializes concurrent callers (several processes starting at once), and each file is
applied in one transaction together with its row in schema_migrations, so a failed file leaves no trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from persistence.db import connect_timeout_s

# An arbitrary constant, the same for every caller: the key of the advisory lock that serializes migrations.
MIGRATION_LOCK_KEY = 0x766F656C676F6564  # "voelgoed"
migration_lock_wait_s = 60.0
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE_RE = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """The migration files shipped with the package, in version order."""
    found = []
    for entry in MIGRATIONS_DIR.iterdir():
        match = _FILE_RE.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"two migration files share a version: {versions}")
    return found


async def migrate(database_url: str) -> list[int]:
    """Apply every pending migration; returns the versions this call applied (empty when up to date)."""
    conn = await asyncpg.connect(database_url, timeout=connect_timeout_s)
    try:
        await conn.execute(f"SET lock_timeout = '{int(migration_lock_wait_s * 1000)}ms'")
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply_pending(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection) -> list[int]:
    await conn.execute(_CREATE_LEDGER)
    applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
    done = []
    for migration in available_migrations():
        if migration.version in applied:
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        done.append(migration.version)
    return done
