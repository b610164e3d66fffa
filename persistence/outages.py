"""Which driver exceptions mean "the store is away" (down, unreachable, overloaded, too slow, or it aborted the
transaction for contention), as opposed to a refused statement: callers answer the former as 503 (nothing
applied, retry) and treat the latter as a bug.
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
    # asyncpg's protocol left mid-operation by a session killed under it: the connection is thrown away
    # (persistence/db.py ``pooled``), the work did not run on it
    asyncpg.InternalClientError,
    # two transactions' locks crossed and Postgres aborted this one: nothing of it committed, and the same
    # request succeeds when retried (seen between payment webhooks and fulfilment after holds were lost)
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
)
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    OSError,
)
