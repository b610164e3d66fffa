"""Fixtures the integration tests share: a small platform pool (every connection acts as voelgoed_app) and a
Redis client on the session's Redis, flushed before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from redis.asyncio import Redis

from persistence.db import create_pool


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
