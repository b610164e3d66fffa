"""Redis write-through of the inventory's changes: what the actor writes, recovery and the gateway read back."""

from __future__ import annotations

import msgpack
import pytest
from redis.asyncio import Redis

from engine.inventory.commands import Confirm, Hold, Ok
from engine.inventory.machine import Inventory, InventorySnapshot, InventorySpec
from persistence.inventory import live_state, redis_keys

EVENT = "evt_" + "c" * 32
ORG = "org_" + "d" * 32
CONFIRMER = "key:key_test"  # who confirms: the core only carries it


def hold_id(n: int) -> str:
    return f"hld_{'c' * 32}{n:020x}"


def spec() -> InventorySpec:
    return InventorySpec(EVENT, tuple(f"A-1-{n}" for n in range(1, 11)), "SEAT", (("GA", 5),), 600, 10)


async def write(redis: Redis, inventory: Inventory, epoch: int = 1) -> int:
    changes = inventory.drain_changes()
    assert changes is not None
    await live_state.write_changes(redis, ORG, epoch, inventory, changes)
    return changes.version


async def fresh(redis: Redis, epoch: int = 1) -> Inventory:
    """An incarnation as recovery makes one: fence Redis for its epoch, rebuild, rewrite everything."""
    version, holds = await live_state.fence_and_load_holds(redis, ORG, EVENT, epoch)
    inventory = Inventory.restore(spec(), InventorySnapshot(version, tuple(holds), ()), now=0)
    await write(redis, inventory, epoch)
    return inventory


async def test_batches_round_trip_and_deltas_follow_on(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    pubsub = redis.pubsub()
    await pubsub.subscribe(redis_keys.live_channel(ORG, EVENT))
    inventory = await fresh(redis)
    first = await live_state.read_availability(redis, ORG, EVENT)
    assert first is not None and first.seats_available == 10 and first.bitmap == b"\xff\xc0"

    inventory.apply(
        [
            Hold("h1", hold_id(1), "b1", seats=("A-1-1", "A-1-10")),
            Hold("h2", hold_id(2), "b2", ticket_type="GA", quantity=2),
        ],
        now=1,
    )
    await write(redis, inventory)
    inventory.apply([Confirm("c1", hold_id(1), "order-1", CONFIRMER, None)], now=2)
    version = await write(redis, inventory)

    view = await live_state.read_availability(redis, ORG, EVENT)
    assert view is not None and view.version == version
    assert view.bitmap == inventory.availability_bitmap() == b"\x7f\x80"
    ga = {t.code: t for t in view.ticket_types}["GA"]
    assert (ga.capacity, ga.available, ga.held, ga.sold) == (5, 3, 2, 0)
    stored_version, holds = await live_state.fence_and_load_holds(redis, ORG, EVENT, 1)
    assert stored_version == version
    assert [(h.hold_id, h.units) for h in holds] == [(hold_id(2), (1, 2))]

    deltas = []
    for _ in range(10):  # bounded: the subscribe confirmation comes first and reads as None
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message is not None:
            deltas.append(live_state.decode_delta(message["data"]))
    assert [d.version for d in deltas] == [1, 2, 3] and deltas[0].full
    assert deltas[1].seats_changed == {"A-1-1": "held", "A-1-10": "held"}
    assert deltas[2].seats_changed == {"A-1-1": "sold", "A-1-10": "sold"}
    assert first.apply(deltas[1]) is not None
    assert first.apply(deltas[2]) is None  # a gap: the reader must re-read the snapshot
    replayed = first.apply(deltas[1])
    assert replayed is not None and replayed.apply(deltas[2]) == view
    await pubsub.aclose()
    await redis.aclose()


async def test_recovery_reads_back_what_was_written(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    inventory = await fresh(redis)
    inventory.apply([Hold("h1", hold_id(1), "b1", seats=("A-1-3",), ttl_s=5)], now=0)
    await write(redis, inventory)
    version, holds = await live_state.fence_and_load_holds(redis, ORG, EVENT, 2)
    rebuilt = Inventory.restore(spec(), InventorySnapshot(version, tuple(holds), ()), now=1)
    assert rebuilt.seat_counts() == (9, 1, 0)
    assert isinstance(rebuilt.apply([Confirm("c", hold_id(1), "o", CONFIRMER, None)], now=2)[0], Ok)
    seat_ids = msgpack.unpackb(await redis.get(redis_keys.seat_ids(ORG, EVENT)))
    assert seat_ids == list(spec().seat_ids)
    await redis.aclose()


async def test_a_zombie_incarnation_cannot_write(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    zombie = await fresh(redis, epoch=1)
    await fresh(redis, epoch=2)  # a new incarnation fenced Redis for epoch 2
    zombie.apply([Hold("h1", hold_id(1), "b1", seats=("A-1-1",))], now=1)
    with pytest.raises(live_state.LiveStateRefused, match="epoch"):
        await write(redis, zombie, epoch=1)
    with pytest.raises(live_state.LiveStateRefused, match="epoch"):
        await live_state.fence_and_load_holds(redis, ORG, EVENT, 1)
    assert (await live_state.fence_and_load_holds(redis, ORG, EVENT, 2))[1] == []
    await redis.aclose()


async def test_a_lost_batch_is_noticed_not_patched_over(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    inventory = await fresh(redis)
    inventory.apply([Hold("h1", hold_id(1), "b1", seats=("A-1-1",))], now=1)
    assert inventory.drain_changes() is not None  # this batch never reaches Redis
    inventory.apply([Hold("h2", hold_id(2), "b2", seats=("A-1-2",))], now=1)
    with pytest.raises(live_state.LiveStateRefused, match="version"):
        await write(redis, inventory)
    await redis.aclose()


async def test_a_recovery_that_fenced_but_never_wrote_shows_no_availability(clean_redis: str) -> None:
    redis = Redis.from_url(clean_redis)
    await live_state.fence_and_load_holds(redis, ORG, EVENT, 1)
    assert await live_state.read_availability(redis, ORG, EVENT) is None
    await redis.aclose()
