"""Baseline 2, "Redis Lua scripts": holds live in Redis, each hold or release is one atomic script; a confirm
writes the sale to Postgres per request and is answered only after the commit.

Run it as ``uvicorn loadtests.baselines.redis_lua:create_app --factory`` (or ``voelgoed up`` with
``VOELGOED_GATEWAY_APP=loadtests.baselines.redis_lua:create_app``). It is our gateway with this inventory plugged in.

Why each choice is what a typical team would do:
- One Lua script per request (lua/*.lua, loaded once, run by EVALSHA with a NOSCRIPT fallback): Redis runs it
  atomically, so "check every seat, then take them all" needs no locks. The usual flash-sale recipe.
- Seats are a per-event availability bitmap plus a seat-id -> index hash; GA types are counters with a free-unit
  list; the buyer limit is a per-event hash of held + bought tickets. All keys share the event's hash tag.
- Expiry is a per-event sorted set of deadlines: every script first drains a bounded number of due holds, and a
  per-process sweeper drains the rest, so a dead hold never blocks a buyer for long and never decides anything.
- Confirm: a script marks the hold 'confirming' (expiry no longer reclaims it, so its seats cannot be re-held
  while the sale is written), then ONE Postgres statement inserts the sale and its tickets into the platform's
  tables (idempotent on hold_id), then a script marks it sold. If no Postgres connection could be had, the hold
  is put back to held at once; any other failure leaves it 'confirming' until its lease passes, when the sweeper
  asks Postgres (the truth) whether the sale committed and settles it either way.
- Availability is read from Redis on every request (one MULTI of HGETALL and GET).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgpack
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError
from starlette.applications import Starlette

from engine.inventory.commands import (
    Command,
    Confirm,
    ExtendHold,
    Hold,
    HoldView,
    LookupHold,
    Ok,
    Rejected,
    Release,
    Result,
    SaleView,
)
from engine.refusals import Refusal
from gateway.app import create_app as create_gateway
from gateway.availability import AvailabilityCache
from gateway.errors import PersistenceUnavailable, storage_outage_as_503
from loadtests.baselines import common
from loadtests.baselines.common import EventShape
from persistence.db import Connection, create_pool
from persistence.inventory.live_state import AvailabilityView, TicketTypeCounts
from persistence.tenancy import org_transaction
from services.inventory.holds import HoldCopies
from voelgoed.settings import Settings

log = logging.getLogger(__name__)

pool_connections_min = 2
pool_connections_max = 20
pool_acquire_s_max = 2.0
redis_connections_max = 128
redis_pool_wait_s = 2.0
redis_command_timeout_s = 5.0
sweep_interval_s = 0.25
expired_reclaimed_per_call_max = 64
expired_reclaimed_per_sweep_max = 1_024
confirm_lease_s = 30.0  # longer than a sale's Postgres write can take (acquire 2 s + command timeout 10 s)
shapes_cached_max = 10_000
EVENTS_KEY = "blr:events"  # "<org_id> <event_id>" of every activated event, for the sweeper
LUA_DIR = Path(__file__).with_name("lua")
_PRELUDE = (LUA_DIR / "prelude.lua").read_text()
SCRIPTS = {name: _PRELUDE + (LUA_DIR / f"{name}.lua").read_text()
           for name in ("hold", "release", "extend", "confirm_begin", "confirm_end", "sweep", "activate")}
_SHAS = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in SCRIPTS.items()}
_KEY_NAMES = ("counts", "seatidx", "avail", "holds", "expiry", "confirming", "buyers")
_ORDER_REF_SQL = "SELECT order_ref FROM sales WHERE org_id = $1 AND hold_id = $2"


def key_prefix(org_id: str, event_id: str) -> str:
    return f"blr:{org_id}:{{{event_id}}}:"


def event_keys(org_id: str, event_id: str) -> list[str]:
    prefix = key_prefix(org_id, event_id)
    return [prefix + name for name in _KEY_NAMES]


async def run_script(redis: Redis, name: str, org_id: str, event_id: str, now: float, *args: Any) -> Any:
    """One of the baseline's scripts on one event's keys (loaded into a new or restarted Redis on first use)."""
    keys = event_keys(org_id, event_id)
    argv = (key_prefix(org_id, event_id), repr(now), *args)
    try:
        return await redis.evalsha(_SHAS[name], len(keys), *keys, *argv)
    except NoScriptError:
        await redis.script_load(SCRIPTS[name])
        return await redis.evalsha(_SHAS[name], len(keys), *keys, *argv)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(reply: bytes) -> tuple[str, Any]:
    """A script's answer: ('ok', hold record) or ('no', (code, details))."""
    outcome, *rest = msgpack.unpackb(reply, raw=False, strict_map_key=False)
    if outcome == "ok":
        return outcome, rest[0]
    code, details = rest
    return outcome, (code, details if isinstance(details, dict) else {})  # cmsgpack packs {} as []


def _refusal(value: Any, hold_id: str) -> Rejected:
    code, details = value
    return common.rejection(code, hold_id, details)


def _view(hold_id: str, h: dict[str, Any]) -> HoldView:
    status = "sold" if h["st"] == "sold" else "held"
    return common.hold_view(hold_id, h["b"], h["s"], h["t"], h["q"], h["u"], float(h["x"]), status)


def _sale(hold_id: str, h: dict[str, Any], order_ref: str) -> SaleView:
    return common.sale_view(hold_id, h["b"], order_ref, h["t"], h["s"], h["u"])


# ---- availability -------------------------------------------------------------------------------------------------


async def store_availability(redis: Redis, org_id: str, event_id: str) -> AvailabilityView | None:
    """The availability this baseline's Redis keys hold now (the harness audit reads it); None before activation.

    ``redis`` must answer bytes (no decode_responses). GA holds past their time count as held until a script or
    the sweeper drains them (at most sweep_interval_s later); seats and sales are exact.
    """
    prefix = key_prefix(org_id, event_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hgetall(prefix + "counts")
    pipe.get(prefix + "avail")
    raw, bitmap = await pipe.execute()
    counts = {k.decode(): v for k, v in raw.items()}
    if "version" not in counts:
        return None
    total, held, sold = (int(counts[f]) for f in ("seats_total", "seats_held", "seats_sold"))
    types: list[TicketTypeCounts] = []
    seated = counts["seated_type"].decode()
    if seated:
        types.append(TicketTypeCounts(seated, total, total - held - sold, held, sold))
    for code, _ in msgpack.unpackb(counts["ga_types"], raw=False):
        c, a, h, s = (int(counts[f"{field}:{code}"]) for field in "cahs")
        types.append(TicketTypeCounts(code, c, a, h, s))
    return AvailabilityView(int(counts["version"]), total, total - held - sold, bitmap or b"", tuple(types))


class RedisLuaHolds(HoldCopies):
    """Checkout reads a live hold from this baseline's own hold records (not the engine's write-through)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def read(self, org_id: str, event_id: str, hold_id: str) -> HoldView | None:
        with storage_outage_as_503():
            raw = await self._redis.hget(key_prefix(org_id, event_id) + "holds", hold_id)
        if raw is None:
            return None
        h = msgpack.unpackb(raw, raw=False)
        return _view(hold_id, h) if h["st"] in ("held", "confirming", "sold") else None


class RedisAvailability(AvailabilityCache):
    """Availability read from Redis on every request; no live deltas (a websocket gets its snapshot)."""

    async def get(self, org_id: str, event_id: str) -> AvailabilityView | None:
        with storage_outage_as_503():
            return await store_availability(self._redis, org_id, event_id)

    async def listen(self) -> None:
        await asyncio.Event().wait()  # nothing is published: idle until the app cancels it


# ---- the InventoryClient and the app -------------------------------------------------------------------------------


class RedisLuaInventory:
    """An InventoryClient (gateway.inventory_client) whose holds are Redis scripts and whose sales are Postgres
    statements."""

    def __init__(self, database_url: str, redis_url: str) -> None:
        self._database_url = database_url
        self._redis_url = redis_url
        self._pool: asyncpg.Pool | None = None
        self._redis: Redis | None = None
        self._shapes: dict[tuple[str, str], EventShape] = {}
        self._sweeper: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self._pool = await create_pool(
            self._database_url, min_size=pool_connections_min, max_size=pool_connections_max
        )
        self._redis = Redis(
            connection_pool=BlockingConnectionPool.from_url(
                self._redis_url,
                max_connections=redis_connections_max,
                timeout=redis_pool_wait_s,
                socket_timeout=redis_command_timeout_s,
                socket_connect_timeout=redis_command_timeout_s,
            )
        )
        for text in SCRIPTS.values():
            await self._redis.script_load(text)
        self._sweeper = asyncio.ensure_future(self._sweep_forever())

    async def close(self) -> None:
        await common.stop_task(self._sweeper)
        if self._redis is not None:
            await self._redis.aclose()
        if self._pool is not None:
            await self._pool.close()

    async def ready(self) -> bool:
        return self._redis is not None and common.running(self._sweeper)

    # One store serves every event here: the placement (``dedicated``) picks nothing.
    async def activate(self, org_id: str, event_id: str, *, dedicated: bool) -> None:
        async with self._pg() as conn:
            shape = await self._shape(conn, org_id, event_id)
        if shape is not None:
            await self._activate(shape)  # again: this process may have seen the event before Redis lost it

    async def submit(self, org_id: str, event_id: str, command: Command, *, dedicated: bool) -> Result:
        shape = self._shapes.get((org_id, event_id))
        if shape is None:  # only the first command of an event in this process reads Postgres
            async with self._pg() as conn:
                shape = await self._shape(conn, org_id, event_id)
        if shape is None:
            return common.NOT_ON_SALE
        with storage_outage_as_503():
            return await self._apply(shape, command, time.time())

    async def _apply(self, shape: EventShape, command: Command, now: float) -> Result:
        if isinstance(command, Hold):
            return await self._hold(shape, command, now)
        if isinstance(command, Release):
            outcome, value = await self._script("release", shape, now, command.hold_id, expired_reclaimed_per_call_max)
            return Ok(None) if outcome == "ok" else _refusal(value, command.hold_id)
        if isinstance(command, Confirm):
            return await self._confirm(shape, command, now)
        if isinstance(command, LookupHold):
            return await self._lookup(shape, command.hold_id, now)
        if isinstance(command, ExtendHold):
            return await self._extend(shape, command, now)
        return Rejected(Refusal.INVALID_TRANSITION, "this baseline does not cancel sales", {"hold_id": command.hold_id})

    async def _extend(self, shape: EventShape, command: ExtendHold, now: float) -> Result:
        refused = common.extend_ttl_refusal(command.ttl_s)
        if refused is not None:
            return refused
        outcome, value = await self._script("extend", shape, now, command.hold_id, command.ttl_s,
                                            expired_reclaimed_per_call_max)
        return Ok(_view(command.hold_id, value)) if outcome == "ok" else _refusal(value, command.hold_id)

    async def _hold(self, shape: EventShape, command: Hold, now: float) -> Result:
        if bool(command.seats) == (command.ticket_type is not None and command.quantity > 0):
            return Rejected(Refusal.INVALID_HOLD_REQUEST, "hold either seats or a quantity of one ticket type")
        expires_at = now + (shape.hold_ttl_s if command.ttl_s is None else command.ttl_s)
        code = command.ticket_type or shape.seated_type or ""
        outcome, value = await self._script(
            "hold", shape, now, command.hold_id, command.buyer_id, repr(expires_at), shape.max_tickets_per_buyer,
            code, command.quantity, expired_reclaimed_per_call_max, *command.seats,
        )
        return Ok(_view(command.hold_id, value)) if outcome == "ok" else _refusal(value, command.hold_id)

    async def _lookup(self, shape: EventShape, hold_id: str, now: float) -> Result:
        assert self._redis is not None
        raw = await self._redis.hget(key_prefix(shape.org_id, shape.event_id) + "holds", hold_id)
        if raw is None:
            return common.hold_not_found(hold_id)
        h = msgpack.unpackb(raw, raw=False)
        if h["st"] == "expired" or (h["st"] == "held" and h["x"] <= now):
            return common.hold_expired(hold_id)
        if h["st"] == "released":
            return common.hold_released(hold_id)
        return Ok(_view(hold_id, h))

    async def _confirm(self, shape: EventShape, command: Confirm, now: float) -> Result:
        hold_id = command.hold_id
        outcome, value = await self._script(
            "confirm_begin", shape, now, hold_id, command.order_ref, repr(now + confirm_lease_s),
            expired_reclaimed_per_call_max,
        )
        if outcome != "ok":
            return _refusal(value, hold_id)
        if value["st"] == "sold":  # a repeated confirm with the same order_ref
            return Ok(_sale(hold_id, value, command.order_ref))
        sale = _sale(hold_id, value, command.order_ref)
        committed_ref = await self._commit(shape, sale)
        await self._script("confirm_end", shape, time.time(), hold_id, "sold", committed_ref)
        return Ok(sale) if committed_ref == command.order_ref else common.sold_elsewhere(hold_id)

    async def _commit(self, shape: EventShape, sale: SaleView) -> str:
        """The order_ref the hold's sale has in Postgres once this returns (the truth, whoever wrote it)."""
        assert self._pool is not None
        try:
            conn = await self._pool.acquire(timeout=pool_acquire_s_max)
        except Exception as error:  # nothing reached Postgres: the hold is held again at once
            await self._script("confirm_end", shape, time.time(), sale.hold_id, "held", "")
            raise PersistenceUnavailable() from error
        try:
            # unknown outcome: 'confirming' until the sweeper asks Postgres. The sale is the org's (row-level
            # security): an org transaction, where the platform's commit is a batch's.
            with storage_outage_as_503():
                async with org_transaction(conn, shape.org_id) as db:
                    if await common.insert_sale(db, shape, sale):
                        return sale.order_ref
                    return str(await conn.fetchval(_ORDER_REF_SQL, shape.org_id, sale.hold_id))
        finally:
            await self._pool.release(conn)

    async def _script(self, name: str, shape: EventShape, now: float, *args: Any) -> tuple[str, Any]:
        assert self._redis is not None, "start() first"
        return _decode(await run_script(self._redis, name, shape.org_id, shape.event_id, now, *args))

    async def _shape(self, conn: Connection, org_id: str, event_id: str) -> EventShape | None:
        """The org's event's shape (cached: it never changes once on sale), activated in Redis on first sight."""
        shape = self._shapes.get((org_id, event_id))
        if shape is None:
            async with org_transaction(conn, org_id) as db:
                shape = await common.load_shape(db, event_id)
            if shape is None:
                return None
            await self._activate(shape)
            if len(self._shapes) >= shapes_cached_max:
                self._shapes.clear()
            self._shapes[(org_id, event_id)] = shape
        return shape

    async def _activate(self, shape: EventShape) -> None:
        assert self._redis is not None
        bitmap = common.bitmap_without(len(shape.seat_ids), ())
        seat_ids = msgpack.packb(list(shape.seat_ids), use_bin_type=False)  # the cmsgpack in Redis has no bin
        ga = msgpack.packb([[code, cap] for code, cap in shape.ga_capacity.items()], use_bin_type=False)
        with storage_outage_as_503():
            await run_script(
                self._redis, "activate", shape.org_id, shape.event_id, time.time(), shape.org_id, bitmap,
                seat_ids, shape.seated_type or "", ga,
            )
            await self._redis.sadd(EVENTS_KEY, f"{shape.org_id} {shape.event_id}")

    @contextlib.asynccontextmanager
    async def _pg(self) -> AsyncIterator[Connection]:
        assert self._pool is not None, "start() first"
        with storage_outage_as_503():
            async with self._pool.acquire(timeout=pool_acquire_s_max) as conn:
                yield conn

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(sweep_interval_s)
            try:
                await self._sweep()
            except Exception as error:  # a failed pass is retried by the next one
                log.warning("redis baseline sweep failed: %r", error)

    async def _sweep(self) -> None:
        assert self._redis is not None
        for member in await self._redis.smembers(EVENTS_KEY):
            org_id, event_id = _text(member).split(" ")
            stale = await run_script(
                self._redis, "sweep", org_id, event_id, time.time(), expired_reclaimed_per_sweep_max
            )
            for hold_id in stale:
                await self._settle(org_id, event_id, _text(hold_id))

    async def _settle(self, org_id: str, event_id: str, hold_id: str) -> None:
        """A confirm whose lease passed: Postgres says whether its sale committed; Redis follows."""
        async with self._pg() as conn, org_transaction(conn, org_id):
            order_ref = await conn.fetchval(_ORDER_REF_SQL, org_id, hold_id)
        assert self._redis is not None
        outcome = "held" if order_ref is None else "sold"
        await run_script(self._redis, "confirm_end", org_id, event_id, time.time(), hold_id, outcome, order_ref or "")


def create_app(settings: Settings | None = None) -> Starlette:
    """The uvicorn factory: our gateway serving this baseline's inventory."""
    settings = common.orders_worker_here(settings or Settings.from_env())
    inventory = RedisLuaInventory(settings.database_url, settings.redis_url)
    return create_gateway(
        settings,
        inventory=inventory,
        availability=lambda pool, redis, listener_redis: RedisAvailability(redis),
        holds=RedisLuaHolds,
    )
