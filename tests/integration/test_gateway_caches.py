"""The gateway's in-process caches of events and seat lists on real Postgres and Redis, with time moved by the
test (an injected timer) instead of slept through."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets

import asyncpg
import msgpack
import pytest
from redis.asyncio import Redis

from engine.catalog.lifecycle import EventStatus
from gateway.availability import SeatListCache
from gateway.errors import NotFound
from gateway.event_cache import EventCache, EventMeta, TicketTypeMeta, absent_ttl_s, metas_ttl_s
from persistence.catalog import event_metas
from persistence.catalog import redis_keys as catalog_keys
from persistence.inventory import redis_keys as inventory_keys
from persistence.tenancy import TenantPool
from tests.bounded_wait import until
from tests.fakes.clock import FakeClock

monotonic_start_s = 1_000.0  # a monotonic clock's reading: any value will do



def _org_id() -> str:
    return "org_" + secrets.token_hex(16)  # no such org: Postgres knows none of its events


def _event_id() -> str:
    return "evt_" + secrets.token_hex(16)


def _meta(org_id: str, event_id: str, status: str) -> EventMeta:
    return EventMeta(event_id, org_id, status, 600, 10, False, (TicketTypeMeta("GA", "ga", 100),))


async def test_an_unknown_event_is_remembered_absent_for_absent_ttl_s(pool: asyncpg.Pool, redis: Redis) -> None:
    org_id, event_id, clock = _org_id(), _event_id(), FakeClock(start=monotonic_start_s)
    cache = EventCache(TenantPool(pool), redis, timer=clock)
    with pytest.raises(NotFound):
        await cache.get(org_id, event_id)
    # The meta appears without this process hearing of it (another gateway created the event).
    on_sale = _meta(org_id, event_id, EventStatus.ON_SALE)
    await event_metas.put_event_meta(redis, org_id, event_id, on_sale.to_dict())
    clock.advance(absent_ttl_s - 0.1)
    with pytest.raises(NotFound):
        await cache.get(org_id, event_id)
    clock.advance(0.2)
    assert await cache.get(org_id, event_id) == on_sale


async def test_a_meta_is_kept_until_its_change_is_announced_and_at_most_metas_ttl_s(
    pool: asyncpg.Pool, redis: Redis
) -> None:
    org_id, event_id, clock = _org_id(), _event_id(), FakeClock(start=monotonic_start_s)
    cache = EventCache(TenantPool(pool), redis, timer=clock)
    draft = _meta(org_id, event_id, EventStatus.DRAFT)
    await event_metas.put_event_meta(redis, org_id, event_id, draft.to_dict())
    assert await cache.get(org_id, event_id) == draft
    on_sale = _meta(org_id, event_id, EventStatus.ON_SALE)
    await event_metas.put_event_meta(redis, org_id, event_id, on_sale.to_dict())  # changed, not announced
    assert await cache.get(org_id, event_id) == draft  # the copy
    cache.forget(org_id, event_id)  # what the announcement does (test below)
    assert await cache.get(org_id, event_id) == on_sale
    paused = _meta(org_id, event_id, EventStatus.PAUSED)
    await event_metas.put_event_meta(redis, org_id, event_id, paused.to_dict())
    clock.advance(metas_ttl_s + 0.1)  # an announcement missed: the copy still ages out
    assert await cache.get(org_id, event_id) == paused


async def test_every_process_drops_its_copy_when_a_change_is_announced(
    pool: asyncpg.Pool, redis: Redis, clean_redis: str
) -> None:
    org_id, event_id = _org_id(), _event_id()
    listener = Redis.from_url(clean_redis)
    watching = EventCache(TenantPool(pool), redis, listener_redis=listener)
    writer = EventCache(TenantPool(pool), redis)
    task = asyncio.ensure_future(watching.listen())
    try:
        await _subscribed(redis)
        await until(lambda: watching.changes_heard >= 1)  # connected: its on_connect dropped everything once
        heard = watching.changes_heard
        on_sale = _meta(org_id, event_id, EventStatus.ON_SALE)
        await writer.share(on_sale)
        await until(lambda: watching.changes_heard > heard)
        assert await watching.get(org_id, event_id) == on_sale
        assert watching.cached(org_id, event_id) == on_sale
        paused = dataclasses.replace(_meta(org_id, event_id, EventStatus.PAUSED), revision=1)
        await writer.share(paused)
        await until(lambda: watching.cached(org_id, event_id) is None, within_s=1.0)
        assert await watching.get(org_id, event_id) == paused
        older = _meta(org_id, event_id, EventStatus.ON_SALE)  # revision 0: a writer that lost a race
        await writer.share(older)
        raw = await event_metas.get_event_meta(redis, org_id, event_id)
        assert raw is not None and raw["status"] == EventStatus.PAUSED  # the newest revision is kept
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await listener.aclose()


async def _subscribed(redis: Redis) -> None:
    async def listening() -> bool:
        [(_, count)] = await redis.pubsub_numsub(catalog_keys.EVENT_METAS_CHANGED_CHANNEL)
        return bool(count)

    async with asyncio.timeout(5):
        while not await listening():
            await asyncio.sleep(0.01)


async def test_a_seat_list_larger_than_the_byte_bound_is_served_not_kept(pool: asyncpg.Pool, redis: Redis) -> None:
    org_id, small, large = _org_id(), _event_id(), _event_id()
    await redis.set(inventory_keys.seat_ids(org_id, small), msgpack.packb(["A-1"]))
    await redis.set(inventory_keys.seat_ids(org_id, large), msgpack.packb([f"A-{n}" for n in range(100)]))
    cache = SeatListCache(TenantPool(pool), redis, bytes_max=200)
    small_body = await cache.body(org_id, small)
    assert small_body == b'{"seat_ids":["A-1"]}'
    large_body = await cache.body(org_id, large)
    assert large_body is not None and len(large_body) > 200
    await redis.delete(inventory_keys.seat_ids(org_id, small), inventory_keys.seat_ids(org_id, large))
    assert await cache.body(org_id, small) == small_body  # kept, and not pushed out by the large one
    assert await cache.body(org_id, large) is None  # read again: neither Redis nor Postgres has it now


async def test_seat_lists_are_bounded_by_bytes_least_recently_read_first(pool: asyncpg.Pool, redis: Redis) -> None:
    org_id, first, second, third = _org_id(), _event_id(), _event_id(), _event_id()
    for event_id in (first, second, third):
        await redis.set(inventory_keys.seat_ids(org_id, event_id), msgpack.packb(["A-1"]))
    body_bytes = len(b'{"seat_ids":["A-1"]}')
    cache = SeatListCache(TenantPool(pool), redis, bytes_max=2 * body_bytes)
    await cache.body(org_id, first)
    await cache.body(org_id, second)
    await cache.body(org_id, first)  # read again: the second is now the least recently read
    await cache.body(org_id, third)
    await redis.delete(*(inventory_keys.seat_ids(org_id, event_id) for event_id in (first, second, third)))
    assert await cache.body(org_id, first) is not None
    assert await cache.body(org_id, third) is not None
    assert await cache.body(org_id, second) is None
