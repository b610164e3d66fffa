"""The imperative shell around one event's inventory core: recover, apply batches, write through, expire.

Per event, batches are applied strictly one after another (an asyncio lock): apply in memory, commit the batch's
sales in one fenced Postgres transaction, write the batch's changes to Redis in one fenced Lua script, and only
then answer. If Postgres cannot be reached the sales are aborted (their holds stay held) and those confirms
answer 503. If a commit's outcome is unknown (timeout, lost connection), or Redis fails or refuses the write
(a newer epoch, a version gap), nothing of the batch is acknowledged and the event is dropped from memory, to be
rebuilt from Postgres and Redis on the next call.

Every Postgres transaction here is bound to the event's org (persistence.tenancy.org_transaction), so
row-level security holds on the hot path as everywhere else: the group commit writes only the org's rows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from redis.asyncio import Redis

from actors.clock import Clock, wall_clock
from actors.wire import encode_results
from engine.catalog import lifecycle
from engine.catalog.lifecycle import EventStatus
from engine.inventory import best_available
from engine.inventory.commands import Command, Confirm, HoldView, Ok, Rejected, Result, SaleView, split_actor_ref
from engine.inventory.machine import Inventory, InventorySnapshot
from engine.refusals import Refusal
from persistence import audit
from persistence.catalog import event_metas
from persistence.catalog import events as pg_events
from persistence.catalog import geometry as pg_geometry
from persistence.db import Connection, pooled
from persistence.inventory import live_state
from persistence.inventory import sales as pg_sales
from persistence.tenancy import org_transaction
from services.catalog.lifecycle import commit_capacity, mark_sold_out
from services.inventory.sales import commit_sales

log = logging.getLogger(__name__)

commit_s_max = 5.0
pool_acquire_s_max = 1.0
recover_acquire_s_max = 10.0  # a rebuild waits longer for a connection than a commit (under the host's recover_s_max)
redis_write_s_max = 2.0
sold_out_flip_interval_s_min = 1.0  # at most one automatic sold_out move per event per second (bounds the audit)

NOT_ON_SALE = Rejected(Refusal.NOT_ON_SALE, "the event is not on sale")
PERSISTENCE_UNAVAILABLE = Rejected(Refusal.PERSISTENCE_UNAVAILABLE, "the sale could not be committed; retry")
INVENTORY_UNAVAILABLE = Rejected(Refusal.INVENTORY_UNAVAILABLE, "the inventory is recovering; retry")


class InventoryLost(Exception):
    """This incarnation can no longer serve the event (fenced out, or its caches are unknown): rebuild it."""


@dataclass(frozen=True, slots=True)
class BatchReply:
    results: bytes  # actors.wire-encoded, in command order
    commit_s: float  # the Postgres group commit (0 when the batch sold nothing), for the gateway's metric


class EventInventory:
    def __init__(
        self, org_id: str, epoch: int, inventory: Inventory, pool: asyncpg.Pool, redis: Redis,
        *, clock: Clock = wall_clock, status: str = EventStatus.ON_SALE, revision: int = 0,
    ) -> None:
        self.org_id = org_id
        self.epoch = epoch
        self.inventory = inventory
        self._pool = pool
        self._redis = redis
        self._clock = clock
        self._lock = asyncio.Lock()
        self._commit_s = 0.0
        self._lost: str | None = None
        # The event's status as this incarnation knows it (read at recovery, refreshed after every change:
        # ``refresh``), with the revision it was read at; it sets the core's sale gate.
        self.status = status
        self.revision = revision
        self._last_flip_at = float("-inf")
        self._set_gate()

    @property
    def event_id(self) -> str:
        return self.inventory.spec.event_id

    @classmethod
    async def recover(
        cls, org_id: str, event_id: str, pool: asyncpg.Pool, redis: Redis, *, clock: Clock = wall_clock
    ) -> EventInventory | None:
        """Take a new epoch, rebuild from sales (Postgres) and live holds (Redis), check, rewrite Redis.

        None when the org has no such event or it is not on sale (another org's event id included: its epoch
        is left alone).
        """
        # One transaction: the epoch's row lock, taken first, keeps an older incarnation's commit from landing
        # between the epoch bump and the read of the sales.
        async with pooled(pool, recover_acquire_s_max) as conn, org_transaction(conn, org_id) as db:
            taken = await pg_events.take_inventory_epoch(db, event_id)
            if taken is None:
                return None
            epoch, event, seat_ids = taken
            sales = await pg_sales.load_sales(db, event_id)
            given_back = await pg_sales.load_cancelled_tickets(db, event_id)
            geometry = None  # an event with inline seating: best available reads its rows from the seat ids
            if event.layout_id is not None:
                geometry = best_available.geometry_from_layout(await pg_geometry.event_geometry(db, event))
        try:
            version, holds = await live_state.fence_and_load_holds(redis, event.org_id, event_id, epoch)
            spec = pg_events.inventory_spec(event, seat_ids, geometry)
            snapshot = InventorySnapshot(version, tuple(holds), tuple(sales), tuple(given_back))
            inventory = Inventory.restore(spec, snapshot, clock())
            changes = inventory.drain_changes()
            assert changes is not None and changes.full
            await live_state.write_changes(redis, event.org_id, epoch, inventory, changes)
        except live_state.LiveStateRefused as error:
            raise InventoryLost(f"{event_id}: a newer incarnation owns it ({error})") from error
        shell = cls(
            event.org_id, epoch, inventory, pool, redis, clock=clock, status=event.status, revision=event.revision
        )
        log.info("recovered %s at epoch %d: %d sales, %d live holds", event_id, epoch, len(sales), len(holds))
        return shell

    async def apply(self, commands: Sequence[Command]) -> BatchReply:
        async with self._lock:
            self._check_not_lost()
            results = self.inventory.apply(commands, self._clock())
            self._commit_s = 0.0
            results = await self._write_through(commands, results)
            return BatchReply(encode_results(results), self._commit_s)

    def live_mark(self) -> tuple[int, int]:
        """(version, epoch) as this incarnation last wrote them to Redis (live_state.read_marks compares)."""
        return self.inventory.version, self.epoch

    async def live_state_kept(self) -> bool:
        """Redis still has what this incarnation last wrote, checked under the lock (no write in flight). False
        gives this incarnation up: Redis lost its state (the caller rebuilds the event, which rewrites Redis from
        Postgres and the holds Redis kept: docs/architecture.md section 4, "Redis loses data"). A newer epoch
        in Redis is another incarnation owning the event, not a loss: InventoryLost, and no rebuild (a rebuild
        would take the event back from its owner, which would then take it back in turn)."""
        async with self._lock:
            self._check_not_lost()
            found = (await live_state.read_marks(self._redis, [(self.org_id, self.event_id)]))[0]
            if found == self.live_mark():
                return True
            self._lost = f"Redis has {found} of the event's (version, epoch), not {self.live_mark()}"
            if found is not None and found[1] > self.epoch:
                raise InventoryLost(f"{self.event_id}: a newer incarnation owns it (epoch {found[1]})")
            return False

    async def expire(self, holds_max: int) -> int:
        async with self._lock:
            self._check_not_lost()
            expired = self.inventory.expire(self._clock(), holds_max)
            if expired:
                await self._write_through((), [])
            return len(expired)

    # ---- the event's status: the sale gate, sold_out in and out --------------------------------------------------

    def _set_gate(self) -> None:
        self.inventory.set_gate(
            holds_open=lifecycle.holds_open(self.status), confirms_open=lifecycle.confirms_open(self.status)
        )

    def _apply_record(self, record: pg_events.EventRecord) -> None:
        """The event as Postgres has it, if newer than what this incarnation knows: status (the gate) and limits."""
        if record.revision <= self.revision:
            return
        self.status, self.revision = record.status, record.revision
        self._set_gate()
        spec = self.inventory.spec
        if (spec.hold_ttl_s, spec.max_tickets_per_buyer) != (record.hold_ttl_s, record.max_tickets_per_buyer):
            self.inventory.set_limits(
                hold_ttl_s=record.hold_ttl_s, max_tickets_per_buyer=record.max_tickets_per_buyer
            )

    async def refresh(self) -> None:
        """Read the event's status and limits again (after a transition or an edit committed) and apply them."""
        async with pooled(self._pool, pool_acquire_s_max) as conn, org_transaction(conn, self.org_id) as db:
            record = await pg_events.get_event(db, self.event_id)
        if record is not None:
            async with self._lock:
                self._apply_record(record)

    async def sync_sold_out(self) -> None:
        """Move on_sale -> sold_out when nothing is left, and back when something is (called by the host's sweeper,
        at most once a second per event). Fenced by the epoch; a failure is logged and tried again next time."""
        if not self._flip_due():
            return
        async with self._lock:
            if self._lost is not None or not self._flip_due():
                return
            self._last_flip_at = self._clock()
            sold_out = self.inventory.nothing_left()
            try:
                async with pooled(self._pool, pool_acquire_s_max) as conn:
                    record = await asyncio.wait_for(
                        mark_sold_out(conn, self.org_id, self.event_id, self.epoch, sold_out=sold_out), commit_s_max
                    )
                    if record is None:  # someone else moved it first: learn where to
                        async with org_transaction(conn, self.org_id) as db:
                            record = await pg_events.get_event(db, self.event_id)
            except Exception as error:
                log.warning("could not move %s to %s: %r", self.event_id, "sold_out" if sold_out else "on_sale", error)
                return
            if record is not None:
                self._apply_record(record)
        if record is not None:
            await self._share(record)

    def _flip_due(self) -> bool:
        if self.status not in (EventStatus.ON_SALE, EventStatus.SOLD_OUT):
            return False
        if self.inventory.nothing_left() == (self.status == EventStatus.SOLD_OUT):
            return False
        return self._clock() - self._last_flip_at >= sold_out_flip_interval_s_min

    async def _share(self, record: pg_events.EventRecord) -> None:
        """Every gateway process learns the event's new meta (a failure: their copies age out in seconds)."""
        try:
            await asyncio.wait_for(event_metas.share_record(self._redis, record), redis_write_s_max)
        except Exception as error:
            log.warning("could not share the meta of %s: %r", self.event_id, error)

    def _check_not_lost(self) -> None:
        # Batches queued on the lock when this incarnation was given up must not run on its unknown state.
        if self._lost is not None:
            raise InventoryLost(f"{self.event_id}: this incarnation was given up ({self._lost})")

    async def _write_through(self, commands: Sequence[Command], results: list[Result]) -> list[Result]:
        try:
            return await self._write_through_once(commands, results)
        except BaseException as error:
            # Whatever interrupted the write-through (a cancellation included), this state is no longer known
            # to match the stores: no queued batch may run on it.
            self._lost = repr(error)
            raise

    async def _write_through_once(self, commands: Sequence[Command], results: list[Result]) -> list[Result]:
        new_sales, cancelled = self.inventory.pending_sales()
        # tickets given back count as cancellations: memory freed their seats already, so they commit or the
        # event is given up, never aborted
        cancelled_tickets = self.inventory.pending_ticket_cancels()
        if new_sales or cancelled or cancelled_tickets:
            results = await self._commit(commands, results, new_sales, cancelled, cancelled_tickets)
        capacities = self.inventory.pending_capacities()
        record = await self._commit_capacities(capacities) if capacities else None
        changes = self.inventory.drain_changes()
        if changes is None:
            return results
        try:
            await asyncio.wait_for(
                live_state.write_changes(self._redis, self.org_id, self.epoch, self.inventory, changes),
                redis_write_s_max,
            )
        except Exception as error:
            raise InventoryLost(f"redis write failed for {self.event_id}: {error!r}") from error
        if record is not None:
            self._apply_record(record)
            await self._share(record)  # the meta lists capacities
        return results

    async def _commit_capacities(
        self, capacities: dict[str, tuple[int, int, str, str | None]]
    ) -> pg_events.EventRecord:
        """Commit capacity changes (fenced, audited under who asked) before anything of the batch is answered; any
        failure gives the event up: its rebuild reads the capacity Postgres has."""
        changes = {
            code: (before, after, audit.Actor(*split_actor_ref(by), ip))
            for code, (before, after, by, ip) in capacities.items()
        }
        try:
            async with pooled(self._pool, pool_acquire_s_max) as conn:
                return await asyncio.wait_for(
                    commit_capacity(conn, self.org_id, self.event_id, self.epoch, changes), commit_s_max
                )
        except Exception as error:
            raise InventoryLost(f"{self.event_id}: capacity commit failed ({error!r})") from error

    async def _commit(
        self, commands: Sequence[Command], results: list[Result], new_sales: list[SaleView],
        cancelled: list[SaleView], cancelled_tickets: list[SaleView],
    ) -> list[Result]:
        try:
            conn = await self._pool.acquire(timeout=pool_acquire_s_max)
        except Exception as error:
            # Nothing was sent: these sales certainly did not commit, so their holds stay held.
            return self._abort(commands, results, new_sales, [*cancelled, *cancelled_tickets], error)
        started = time.perf_counter()
        confirmed_by = _confirmers(commands, results)
        try:
            await asyncio.wait_for(
                self._write_sales(conn, new_sales, cancelled, cancelled_tickets, confirmed_by), commit_s_max
            )
        except pg_sales.FencedOut as error:
            raise InventoryLost(f"{self.event_id} fenced out at epoch {self.epoch}") from error
        except asyncpg.IntegrityConstraintViolationError as error:
            # The schema refused what memory believed: memory is wrong. Rebuild from the truth, loudly.
            log.error("schema refused sales of %s: %r", self.event_id, error)
            raise InventoryLost(f"{self.event_id}: schema refused a batch ({error!r})") from error
        except Exception as error:
            # A timeout or a lost connection may hide a commit: only the truth can tell, so rebuild from it. The
            # connection may be left mid-operation: it is thrown away, not pooled again.
            conn.terminate()
            raise InventoryLost(f"{self.event_id}: commit outcome unknown ({error!r})") from error
        finally:
            await self._release(conn)
        self._commit_s = time.perf_counter() - started
        return results

    async def _write_sales(
        self, conn: Connection, new_sales: list[SaleView], cancelled: list[SaleView],
        cancelled_tickets: list[SaleView], confirmed_by: dict[str, audit.Actor],
    ) -> None:
        # One transaction bound to the org: the sales, their tickets, the tickets given back and their audit
        # entries (services/inventory/sales.py).
        await commit_sales(
            conn, self.org_id, self.event_id, self.epoch, new_sales, cancelled, confirmed_by=confirmed_by,
            tickets_cancelled=cancelled_tickets,
        )

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            await self._pool.release(conn)
        except Exception:  # a failed reset must not mask how the commit ended
            log.warning("could not return a connection of %s to the pool", self.event_id, exc_info=True)

    def _abort(
        self, commands: Sequence[Command], results: list[Result], new_sales: list[SaleView],
        cancelled: list[SaleView], error: BaseException,
    ) -> list[Result]:
        if cancelled:
            raise InventoryLost(f"cancel commit failed for {self.event_id}: {error!r}") from error
        log.warning("Postgres unavailable for %s, aborting %d sales: %r", self.event_id, len(new_sales), error)
        aborted = {sale.hold_id for sale in new_sales}
        self.inventory.abort_sales(aborted)
        return [_refuse_aborted(c, r, aborted) for c, r in zip(commands, results, strict=True)]


def _confirmers(commands: Sequence[Command], results: Sequence[Result]) -> dict[str, audit.Actor]:
    """Hold id -> who made its sale in this batch, for the sale's audit entry.

    The first confirm of a hold answered with a sale made it: before it, no confirm of that hold could have
    been answered with one, and a later twin only got the same sale back. A sale made in an earlier batch is
    not pending here, and a retried command id is answered from memory without selling, so neither is named
    again (the audit log keeps one sale.create per sale).
    """
    confirmed_by: dict[str, audit.Actor] = {}
    for command, result in zip(commands, results, strict=True):
        sold = isinstance(result, Ok) and isinstance(result.value, SaleView)
        if sold and isinstance(command, Confirm) and command.hold_id not in confirmed_by:
            actor_type, actor_id = split_actor_ref(command.by)
            confirmed_by[command.hold_id] = audit.Actor(actor_type, actor_id, command.ip)
    return confirmed_by


def _refuse_aborted(command: Command, result: Result, aborted: set[str]) -> Result:
    """The answer to ``command`` once the sales of ``aborted`` holds did not commit: nothing that said or
    assumed "sold" may go out."""
    if command.hold_id not in aborted:
        return result
    if isinstance(command, Confirm):
        return PERSISTENCE_UNAVAILABLE  # also a twin confirm refused as "already confirmed" by the aborted sale
    value = result.value if isinstance(result, Ok) else None
    said_sold = isinstance(value, SaleView) or (isinstance(value, HoldView) and value.status == "sold")
    if said_sold or (isinstance(result, Rejected) and result.code is Refusal.INVALID_TRANSITION):
        return INVENTORY_UNAVAILABLE
    return result
