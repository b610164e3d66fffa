"""Fixtures the integration tests share: a small platform pool (every connection acts as voelgoed_app), one
connection as that role and one as the tables' owner, and a Redis client on the session's Redis, flushed before
each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from persistence.db import connect, create_pool


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(database_url, min_size=1, max_size=2)
    yield created
    await created.close()


@pytest.fixture
async def redis(clean_redis: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(clean_redis)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The URL's own user: the tables' owner (a superuser on the embedded server), past row-level security; only
    triggers (append-only tables) stop it."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def app_conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the platform's role, as the CLI and the pool have."""
    connection = await connect(database_url)
    yield connection
    await connection.close()
