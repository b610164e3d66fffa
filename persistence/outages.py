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
    # the server shut down or crashed under an open session (57P01, 57P02): like a lost connection (a commit in
    # flight has an unknown outcome), and it comes back
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)
