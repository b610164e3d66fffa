"""Fixtures the e2e tests share: ``gw``, one real gateway (uvicorn over the in-process inventory) per test module
on the session's Postgres and Redis. A module that needs another (Redis flushed first, other rate limits) defines
its own ``gw``, which takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes import Gateway, running_gateway


@pytest.fixture(scope="module")
async def gw(database_url: str, redis_url: str) -> AsyncIterator[Gateway]:
    async with running_gateway(database_url, redis_url) as gateway:
        yield gateway
