"""What the actor-level benchmarks share: a database, Redis, a local Ray on loopback, an org and its events.

Benchmarks use the machine's running Postgres and Redis (URLs below, or --database-url/--redis-url); they create
a fresh database per run so numbers never depend on an earlier run's leftovers.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import ray
from redis.asyncio import Redis

from persistence.access.orgs import create_org
from persistence.catalog import event_metas
from persistence.catalog.events import NewEvent, TicketTypeRecord, create_event, publish_event
from persistence.db import connect
from persistence.migrate import migrate
from persistence.tenancy import org_transaction
from voelgoed.embedded import RAY_ENV

DEFAULT_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
RAY_NAMESPACE = "voelgoed-bench"


@dataclass(frozen=True)
class Rig:
    database_url: str
    redis_url: str
    org_id: str


def add_rig_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-url", default=DEFAULT_SERVER_URL, help="Postgres server to create the db on")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="Redis (its db is flushed)")


async def start_rig(server_url: str, redis_url: str) -> Rig:
    name = f"vg_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database_url = server_url.rsplit("/", 1)[0] + f"/{name}"
    await migrate(database_url)
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    await redis.aclose()
    conn = await asyncpg.connect(database_url)
    try:
        org_id, _ = await create_org(conn, "bench")
    finally:
        await conn.close()
    # address="local": always a Ray of the benchmark's own, never one found through RAY_ADDRESS
    os.environ.update(RAY_ENV)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=RAY_NAMESPACE,
             _node_ip_address="127.0.0.1")
    return Rig(database_url, redis_url, org_id)


async def stop_rig(rig: Rig, server_url: str) -> None:
    ray.shutdown()
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{rig.database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def published_event(
    rig: Rig, *, seats: int, ga: int, dedicated: bool, sections: list[dict[str, Any]] | None = None
) -> str:
    """An on-sale event: ``seats`` in rows of up to 1,000 in one section "S", or the inline ``sections`` given."""
    if sections is None:
        row_seats = min(seats, 1000)
        assert seats % max(row_seats, 1) == 0, "bench seats are whole rows of up to 1,000"
        rows = [{"label": str(r), "seats": row_seats} for r in range(1, seats // row_seats + 1)] if seats else []
        sections = [{"name": "S", "rows": rows}] if seats else []
    seat_ids = tuple(
        f"{section['name']}-{row['label']}-{n}"
        for section in sections for row in section["rows"] for n in range(1, row["seats"] + 1)
    )
    seats = len(seat_ids)
    types = [TicketTypeRecord("SEAT", "seated", seats, 30000, "ZAR")] if seats else []
    if ga:
        types.append(TicketTypeRecord("GA", "ga", ga, 15000, "ZAR"))
    new = NewEvent(
        name="bench", starts_at=dt.datetime(2026, 12, 31, 18, tzinfo=dt.UTC), hold_ttl_s=3600,
        max_tickets_per_buyer=10, seating={"sections": sections} if seats else None,
        seat_ids=seat_ids, ticket_types=tuple(types), dedicated=dedicated,
    )
    conn = await connect(rig.database_url)  # the platform's role: row-level security holds here too
    try:
        async with org_transaction(conn, rig.org_id) as db:
            event = await create_event(db, new)
            await publish_event(db, event.id)
    finally:
        await conn.close()
    redis = Redis.from_url(rig.redis_url)
    await event_metas.put_event_meta(redis, rig.org_id, event.id, {"dedicated": dedicated, "status": "on_sale"})
    await redis.aclose()
    return event.id


def median_and_runs(values: Sequence[float]) -> str:
    return f"median {statistics.median(values):,.0f} (runs: {', '.join(f'{v:,.0f}' for v in values)})"


def run(main: object) -> None:
    asyncio.run(main)  # type: ignore[arg-type]
