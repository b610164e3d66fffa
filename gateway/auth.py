"""Who is calling: API key -> Principal(key id, org, scopes), without a Postgres read on the hot path.

Lookup order: this process's bounded LRU (entries live ``key_cache_ttl_s``) -> the Redis mirror of the key row ->
Postgres (which refills the mirror, SET NX). Revocation overwrites the mirror with a revoked tombstone (so a
concurrent refill from an older read cannot resurrect the key) and publishes the key's prefix on
API_KEYS_REVOKED_CHANNEL; every gateway process listens and evicts, so a revoked key answers 401 at once
everywhere (the TTL only bounds staleness if a process missed the message while its subscription was down, and
a reconnecting listener clears its whole cache).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass

import asyncpg
import msgpack
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from gateway.errors import Forbidden, PersistenceUnavailable, Unauthorized, storage_outage_as_503
from gateway.subscription import Subscription
from persistence import apikeys, redis_keys

log = logging.getLogger(__name__)

key_cache_entries_max = 10_000
key_cache_ttl_s = 30.0
mirror_ttl_s = 3_600
db_acquire_timeout_s = 2.0
BEARER = "bearer "


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    org_id: str
    scopes: frozenset[str]


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    key_id: str
    org_id: str
    secret_hash: bytes
    scopes: frozenset[str]
    revoked: bool
    cached_at: float

    def principal(self) -> Principal:
        return Principal(self.key_id, self.org_id, self.scopes)


def bearer_key(connection: HTTPConnection, *, allow_query: bool = False) -> str | None:
    """The key from ``Authorization: Bearer``, or (websockets only: browsers cannot set headers) ``?key=``."""
    header = connection.headers.get("authorization")
    if header is not None and header[: len(BEARER)].lower() == BEARER:
        return header[len(BEARER) :].strip()
    if allow_query:
        return connection.query_params.get("key")
    return None


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise Forbidden(f"this route needs the {scope!r} scope", {"scope": scope})


class Authenticator:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        *,
        listener_redis: Redis | None = None,
        entries_max: int = key_cache_entries_max,
        ttl_s: float = key_cache_ttl_s,
    ) -> None:
        self._pool = pool
        self._redis = redis
        self._listener_redis = listener_redis or redis
        self._entries_max = entries_max
        self._ttl_s = ttl_s
        self._cache: OrderedDict[str, _KeyEntry] = OrderedDict()
        self._evictions = 0  # bumps on every eviction: a lookup that straddles one must not be cached

    async def authenticate(self, plaintext: str | None) -> Principal:
        parsed = apikeys.parse_api_key(plaintext) if plaintext else None
        if parsed is None:
            raise Unauthorized()
        prefix, secret = parsed
        entry = self._cached(prefix) or await self._load(prefix)
        if entry is None or entry.revoked or not apikeys.secret_matches(secret, entry.secret_hash):
            raise Unauthorized("the API key is unknown or revoked")
        return entry.principal()

    def evict(self, prefix: str) -> None:
        self._evictions += 1
        self._cache.pop(prefix, None)

    def clear(self) -> None:
        self._evictions += 1
        self._cache.clear()

    async def revoke(self, org_id: str, key_id: str) -> bool:
        """Revoke the org's key everywhere; False when the org has no such key."""
        with storage_outage_as_503():
            async with self._pool.acquire(timeout=db_acquire_timeout_s) as conn, conn.transaction():
                records = await apikeys.list_api_keys(conn, org_id)
                if not await apikeys.revoke_api_key(conn, org_id, key_id):
                    return False
        record = next(r for r in records if r.id == key_id)
        self.evict(record.prefix)
        try:
            await self._redis.set(
                redis_keys.api_key(record.prefix), _mirror_blob(record, revoked=True), ex=mirror_ttl_s
            )
            await self._redis.publish(redis_keys.API_KEYS_REVOKED_CHANNEL, record.prefix)
        except RedisError:
            # Postgres already says revoked; a stale mirror would let the key live on, so say so loudly.
            log.exception("could not clear the Redis mirror of revoked key %s", key_id)
            raise PersistenceUnavailable("the key is revoked, but not yet everywhere; retry") from None
        return True

    async def listen(self) -> None:
        """Evict revoked keys as other processes announce them; runs until cancelled, reconnecting."""
        await Subscription(
            self._listener_redis,
            "API key revocation listener",
            on_message=lambda _, data: self.evict(data.decode() if isinstance(data, bytes) else str(data)),
            channels=(redis_keys.API_KEYS_REVOKED_CHANNEL,),
            on_connect=self.clear,  # anything announced while we were not listening is gone
            on_disconnect=self.clear,
        ).run_forever()

    def _cached(self, prefix: str) -> _KeyEntry | None:
        entry = self._cache.get(prefix)
        if entry is None:
            return None
        if time.monotonic() - entry.cached_at > self._ttl_s:
            del self._cache[prefix]
            return None
        self._cache.move_to_end(prefix)
        return entry

    async def _load(self, prefix: str) -> _KeyEntry | None:
        evictions = self._evictions
        entry = await self._from_mirror(prefix)
        if entry is None:
            record = await self._from_postgres(prefix)
            if record is None:
                # Remember the absence too, so a repeated unknown key costs one Postgres read per TTL, not one
                # per request (new keys get fresh random prefixes, so a remembered absence never hides one).
                entry = _entry("", "", b"", (), revoked=True)
            else:
                entry = _entry(
                    record.id, record.org_id, record.secret_hash, record.scopes, revoked=record.revoked_at is not None
                )
                await self._fill_mirror(prefix, record)
        if evictions != self._evictions:
            return entry  # a revocation may have landed while we read: serve this request, remember nothing
        self._cache[prefix] = entry
        if len(self._cache) > self._entries_max:
            self._cache.popitem(last=False)
        return entry

    async def _from_mirror(self, prefix: str) -> _KeyEntry | None:
        try:
            blob = await self._redis.get(redis_keys.api_key(prefix))
        except RedisError:
            return None  # Redis is only a mirror: fall through to Postgres
        if blob is None:
            return None
        key_id, org_id, secret_hash, scopes, revoked = msgpack.unpackb(blob)
        return _entry(key_id, org_id, secret_hash, scopes, revoked=revoked)

    async def _from_postgres(self, prefix: str) -> apikeys.ApiKeyRecord | None:
        with storage_outage_as_503():
            async with self._pool.acquire(timeout=db_acquire_timeout_s) as conn:
                return await apikeys.find_api_key(conn, prefix)

    async def _fill_mirror(self, prefix: str, record: apikeys.ApiKeyRecord) -> None:
        blob = _mirror_blob(record, revoked=record.revoked_at is not None)
        try:
            # NX: a revocation's tombstone written meanwhile must not be overwritten by this older read.
            await self._redis.set(redis_keys.api_key(prefix), blob, ex=mirror_ttl_s, nx=True)
        except RedisError:
            log.warning("could not fill the Redis mirror of API key %s", record.id)


def _mirror_blob(record: apikeys.ApiKeyRecord, *, revoked: bool) -> bytes:
    return msgpack.packb([record.id, record.org_id, record.secret_hash, list(record.scopes), revoked])


def _entry(
    key_id: str, org_id: str, secret_hash: bytes, scopes: tuple[str, ...] | list[str], *, revoked: bool
) -> _KeyEntry:
    return _KeyEntry(key_id, org_id, bytes(secret_hash), frozenset(scopes), revoked, time.monotonic())
