"""The asyncpg connection pool every Postgres adapter borrows from."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from the pool: the adapters accept either.
Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy

connect_timeout_s = 5.0
command_timeout_s = 10.0
pool_connections_min = 2
pool_connections_max = 10
APPLICATION_NAME = "voelgoed"


async def create_pool(
    database_url: str, *, min_size: int = pool_connections_min, max_size: int = pool_connections_max
) -> asyncpg.Pool:
    """A pool whose connections never wait unboundedly and commit synchronously (a sale is acknowledged only
    after its commit is durable)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout_s,
        command_timeout=command_timeout_s,
        server_settings={"application_name": APPLICATION_NAME, "synchronous_commit": "on"},
    )
    assert pool is not None
    return pool
