"""The asyncpg connection pool every Postgres adapter borrows from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
error_chain_max = 8  # links of an exception's cause/context chain looked at


# Migration 002 creates it; row-level security applies to it (never to a superuser or a table's owner).
APP_ROLE = "voelgoed_app"


async def _as_app_role(conn: asyncpg.Connection) -> None:
    # Session-wide and kept by the pool's RESET ALL, which leaves `role` alone.
    await conn.execute(f"SET ROLE {APP_ROLE}")


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection as the platform's role (the CLI's), never waiting unboundedly."""
    conn = await asyncpg.connect(
        database_url,
        timeout=connect_timeout_s,
        command_timeout=command_timeout_s,
        server_settings={"application_name": APPLICATION_NAME, "synchronous_commit": "on"},
    )
    try:
        await _as_app_role(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def create_pool(
    database_url: str, *, min_size: int = pool_connections_min, max_size: int = pool_connections_max
) -> asyncpg.Pool:
    """A pool whose connections act as the platform's role (so row-level security holds), never wait
    unboundedly and commit synchronously (a sale is acknowledged only after its commit is durable)."""
    pool = await asyncpg.create_pool(
        database_url,
        min_size=min_size,
        max_size=max_size,
        timeout=connect_timeout_s,
        command_timeout=command_timeout_s,
        server_settings={"application_name": APPLICATION_NAME, "synchronous_commit": "on"},
        init=_as_app_role,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def pooled(pool: asyncpg.Pool, timeout_s: float) -> AsyncIterator[PoolConnectionProxy]:
    """A connection of ``pool`` that never goes back to it broken: when the work on it fails with asyncpg's
    ``InternalClientError`` (its protocol left mid-operation, seen after Postgres killed the session under it,
    asyncpg #784) it is terminated, so the pool opens a new one instead of handing the broken one out again."""
    async with pool.acquire(timeout=timeout_s) as conn:
        try:
            yield conn
        except Exception as error:
            if _left_mid_operation(error):
                conn.terminate()
            raise


def _left_mid_operation(error: BaseException | None) -> bool:
    """The error, or one it was raised while handling (a ROLLBACK on the broken protocol raises another), is
    asyncpg's InternalClientError; bounded by the chain's length."""
    for _ in range(error_chain_max):
        if error is None:
            return False
        if isinstance(error, asyncpg.InternalClientError):
            return True
        error = error.__cause__ or error.__context__
    return False
