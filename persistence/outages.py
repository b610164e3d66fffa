"""Which driver exceptions mean "the store is away" (down, unreachable, overloaded, too slow), as opposed to a
refused statement: callers answer the former as 503 (nothing applied, retry) and treat the latter as a bug.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.exceptions

POSTGRES_OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InsufficientResourcesError,
    asyncpg.QueryCanceledError,
    asyncpg.CannotConnectNowError,
)
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)
