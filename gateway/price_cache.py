"""Each event's price list, for quotes, without a Postgres read: this process's LRU, else Redis.

Every change of an event's prices (its creation, a new promo code) writes the new list to Redis with a higher
version and publishes that version on the event's ``prices_changed`` channel (persistence/catalog/prices.py, one
script). Every gateway process listens (one PSUBSCRIBE) and drops its copy when the announced version is newer;
the next quote reads Redis again. A copy read from Redis is kept only if no newer version was announced meanwhile,
so a read racing a change cannot put the old list back. While the subscription is down, nothing is kept in memory
(every quote reads Redis) and on every (re)connect the memory is cleared: announcements may have been missed.

Only when Redis has no list at all (it lost the key, or an event created before pricing) is the list rebuilt from
Postgres and written back: a repair, like the event meta's (gateway/event_cache.py), not the quote's path.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from cachetools import LRUCache, TTLCache
from redis.asyncio import Redis

from engine.catalog import pricing
from gateway.errors import storage_outage_as_503
from gateway.subscription import Subscription
from persistence.catalog import prices as pg_prices
from persistence.catalog import promo_uses, redis_keys
from persistence.tenancy import TenantPool

log = logging.getLogger(__name__)

price_lists_cached_max = 10_000
# A promo code's overall live-use count, as quotes see it, is this process's copy for at most this long (one
# Redis read per code per second, whatever the number of buyers quoting it). A buyer's own count is always read.
promo_totals_ttl_s = 1.0
_CHANNEL_RE = re.compile(r"vg:([^:]+):\{([^}]+)\}:prices_changed")

EventKey = tuple[str, str]  # (org id, event id)
_NO_MIRROR = -1  # a promo total remembered as "no mirror yet" (no use taken since it was last built)


class PriceCache:
    def __init__(
        self, db: TenantPool, redis: Redis, *, listener_redis: Redis | None = None,
        entries_max: int = price_lists_cached_max, timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._redis = redis
        self._listener_redis = listener_redis or redis
        self._lists: LRUCache[EventKey, pricing.PriceList] = LRUCache(entries_max)
        self._announced: LRUCache[EventKey, int] = LRUCache(entries_max)  # the newest version announced
        self._totals: TTLCache[tuple[str, str, str], int] = TTLCache(entries_max, promo_totals_ttl_s, timer=timer)
        self._listening = False

    async def promo_usage(
        self, org_id: str, event_id: str, code: str, buyer_id: str, *, per_buyer: bool
    ) -> pricing.Usage | None:
        """A promo's live uses from its Redis mirror (services/pricing.PriceLists): the buyer's own count read
        each time when ``per_buyer``, the overall one at most ``promo_totals_ttl_s`` old; None without a mirror."""
        key = (org_id, event_id, code)
        if per_buyer:
            with storage_outage_as_503():
                usage = await promo_uses.read_usage(self._redis, org_id, event_id, code, buyer_id)
            if usage is not None:
                self._totals[key] = usage.total
            return usage
        total = self._totals.get(key)
        if total is None:
            with storage_outage_as_503():
                usage = await promo_uses.read_usage(self._redis, org_id, event_id, code, buyer_id)
            total = self._totals[key] = _NO_MIRROR if usage is None else usage.total
        return None if total == _NO_MIRROR else pricing.Usage(total, 0)

    async def price_list(self, org_id: str, event_id: str) -> pricing.PriceList | None:
        """The event's price list (services/pricing.PriceLists); None when the org has no such event."""
        key = (org_id, event_id)
        cached = self._lists.get(key)
        if cached is not None:
            return cached
        with storage_outage_as_503():
            found = await pg_prices.get_price_list(self._redis, org_id, event_id)
        if found is None:
            found = await self._repair(org_id, event_id)
            if found is None:
                return None
        self._keep(key, found)
        return found

    async def share_prices(self, org_id: str, event_id: str, prices: pricing.PriceList) -> None:
        """A changed price list to every process (services/pricing.SharedPrices): Redis, then the announcement."""
        with storage_outage_as_503():
            await pg_prices.put_price_list(self._redis, org_id, event_id, prices)
        self._lists.pop((org_id, event_id), None)

    async def listen(self) -> None:
        await Subscription(
            self._listener_redis,
            "price changes",
            self._on_message,
            patterns=(redis_keys.PRICES_CHANGED_PATTERN,),
            on_connect=self._connected,
            on_disconnect=self._disconnected,
        ).run_forever()

    def _keep(self, key: EventKey, prices: pricing.PriceList) -> None:
        if self._listening and prices.version >= self._announced.get(key, 0):
            self._lists[key] = prices

    async def _repair(self, org_id: str, event_id: str) -> pricing.PriceList | None:
        with storage_outage_as_503():
            async with self._db.tenant(org_id) as db:
                found = await pg_prices.load_price_list(db, event_id)
            if found is not None:
                await pg_prices.put_price_list(self._redis, org_id, event_id, found)
        return found

    def _on_message(self, channel: str, data: bytes) -> None:
        match = _CHANNEL_RE.fullmatch(channel)
        if match is None:
            return
        key = (match.group(1), match.group(2))
        try:
            version = int(data)
        except ValueError:
            log.warning("a malformed price announcement on %s", channel)
            self._lists.pop(key, None)
            return
        self._announced[key] = max(version, self._announced.get(key, 0))
        cached = self._lists.get(key)
        if cached is not None and cached.version < version:
            del self._lists[key]

    def _connected(self) -> None:
        self._lists.clear()
        self._listening = True

    def _disconnected(self) -> None:
        self._listening = False
        self._lists.clear()
