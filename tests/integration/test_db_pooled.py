"""A pooled connection that asyncpg left mid-operation never goes back to the pool (persistence/db.py ``pooled``):
seen when Postgres was killed under open sessions, the same broken connection answered later requests with 500."""

from __future__ import annotations

import asyncpg
import pytest

from persistence.db import create_pool, pooled


async def test_a_connection_broken_mid_operation_is_thrown_away(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.InternalClientError):
            async with pooled(pool, 5.0) as conn:
                broken = conn._con  # the connection behind the pool's proxy
                raise asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress")
        assert broken is not None and broken.is_closed()
        async with pooled(pool, 5.0) as conn:  # the pool's one slot opens a new connection
            assert conn._con is not broken and await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


async def test_other_failures_keep_the_connection(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with pooled(pool, 5.0) as conn:
                kept = conn._con
                await conn.fetchval("SELECT 1 / 0")
        async with pooled(pool, 5.0) as conn:
            assert conn._con is kept
    finally:
        await pool.close()


async def test_a_failure_raised_while_handling_a_broken_protocol_throws_it_away_too(database_url: str) -> None:
    """A ROLLBACK on the broken protocol raises its own error, with asyncpg's as its context."""
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        with pytest.raises(asyncpg.InterfaceError):
            async with pooled(pool, 5.0) as conn:
                broken = conn._con
                try:
                    raise asyncpg.InternalClientError("cannot switch to state 15")
                except asyncpg.InternalClientError:
                    raise asyncpg.InterfaceError("cannot perform operation: another operation is in progress")  # noqa: B904
        assert broken is not None and broken.is_closed()
    finally:
        await pool.close()
