"""Who is calling: an API key or a person's session access token -> Principal, without a Postgres read on the
hot path. The credential decides the org; nothing the caller says about its org counts.

API keys. Lookup order: this process's bounded LRU (entries live ``key_cache_ttl_s``) -> the Redis mirror of the
key row -> Postgres (which refills the mirror, SET NX). Revocation overwrites the mirror with a revoked tombstone
(so a concurrent refill from an older read cannot resurrect the key) and publishes the key's prefix on
API_KEYS_REVOKED_CHANNEL; every gateway process listens and evicts, so a revoked key answers 401 at once
everywhere (the TTL only bounds staleness if a process missed the message while its subscription was down, and
a reconnecting listener clears its whole cache). Expiry needs no announcement: every entry carries expires_at
and is checked against the clock on each request.

Session access tokens (people): signed and short-lived (gateway/sessions.py); the session they name must not be
revoked (a Redis flag, set by logout and by membership changes).

Every failure is the same 401 ``unauthorized``, whichever part was wrong, so a caller cannot probe which prefixes
exist; only a key whose secret matched learns that it has expired.

last_used_at: a successful key authentication notes the key (at most once per key per
``last_used_interval_s`` in this process, into a bounded batch); ``record_last_use_forever`` writes the batch
every ``last_used_flush_s`` off the request path, dropping it on failure (it is a hint, not an account).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgpack
from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection

from engine.access.rules import KeyKind, permissions_of
from gateway import sessions
from gateway.errors import (
    Forbidden,
    PersistenceUnavailable,
    Unauthorized,
    storage_outage_as_503,
)
from gateway.subscription import Subscription
from persistence.access import apikeys, redis_keys
from persistence.access.secret_hashes import secret_matches
from persistence.outages import POSTGRES_OUTAGES
from persistence.tenancy import TenantPool

log = logging.getLogger(__name__)

key_cache_entries_max = 10_000
key_cache_ttl_s = 30.0
mirror_ttl_s = 3_600
last_used_interval_s = 60.0  # per key per process: last_used_at is minute-accurate, never a write per request
last_used_pending_max = 10_000  # keys waiting for the next write; more are dropped until it runs
last_used_flush_s = 5.0
BEARER = "bearer "
ACTOR_KEY = "key"
ACTOR_USER = "user"
_BAD_CREDENTIALS = "the API key or token is malformed, unknown, expired or revoked"
_EXPIRED = "the API key has expired"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. Made only by ``Authenticator``."""

    actor_type: str  # "key" or "user"
    actor_id: str  # the key id or the user id
    org_id: str
    scopes: frozenset[str]
    publishable: bool = False  # a publishable key: buying on on-sale events only
    session_id: str | None = None  # a person's session
    role: str | None = None  # a person's role in the org
    # When the credential stops working: an API key's expires_at. None for a key that never expires, and for a
    # person's session: the keys a person makes belong to the org, not to the session or the person.
    expires_at: datetime | None = None

    @property
    def key_id(self) -> str:
        """The holder of idempotency keys and other per-caller state: the key id or the user id."""
        return self.actor_id


@dataclass(frozen=True, slots=True)
class _KeyEntry:
    key_id: str
    org_id: str
    secret_hash: bytes
    scopes: frozenset[str]
    revoked: bool
    kind: str
    expires_at: float | None  # epoch seconds

    def principal(self) -> Principal:
        return Principal(
            ACTOR_KEY,
            self.key_id,
            self.org_id,
            self.scopes,
            publishable=self.kind == KeyKind.PUBLISHABLE,
            expires_at=None if self.expires_at is None else datetime.fromtimestamp(self.expires_at, UTC),
        )


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


class _LastUsed:
    """Which keys were used since the last write, bounded in both directions."""

    def __init__(
        self, *, interval_s: float, entries_max: int, pending_max: int, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._pending_max = pending_max
        # The keys noted within the last interval_s; only membership is asked, so the oldest note goes first.
        self._noted: TTLCache[str, bool] = TTLCache(entries_max, interval_s, timer=timer)
        self._pending: dict[str, datetime] = {}
        self.dropped = 0

    def note(self, key_id: str) -> None:
        if key_id in self._noted:
            return
        if len(self._pending) >= self._pending_max:
            self.dropped += 1
            return
        self._noted[key_id] = True
        self._pending[key_id] = datetime.now(UTC)

    def take(self) -> dict[str, datetime]:
        pending, self._pending = self._pending, {}
        return pending


class Authenticator:
    """``timer`` (monotonic seconds) is for tests that move time past ``key_cache_ttl_s`` or
    ``last_used_interval_s``; a key's own expiry is read from the wall clock."""

    def __init__(
        self,
        db: TenantPool,
        redis: Redis,
        *,
        signer: sessions.TokenSigner | None = None,
        listener_redis: Redis | None = None,
        entries_max: int = key_cache_entries_max,
        ttl_s: float = key_cache_ttl_s,
        last_used_every_s: float = last_used_interval_s,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._redis = redis
        self.signer = signer  # None: session tokens are refused (401)
        self._listener_redis = listener_redis or redis
        self._cache: TTLCache[str, _KeyEntry] = TTLCache(entries_max, ttl_s, timer=timer)
        self._evictions = 0  # bumps on every eviction: a lookup that straddles one must not be cached
        self._last_used = _LastUsed(
            interval_s=last_used_every_s, entries_max=entries_max, pending_max=last_used_pending_max, timer=timer
        )

    async def authenticate(self, bearer: str | None) -> Principal:
        if not bearer:
            raise Unauthorized()
        if self.signer is not None and sessions.looks_like_token(bearer):
            return await self._session_principal(self.signer, bearer)
        parsed = apikeys.parse_api_key(bearer)
        if parsed is None:
            raise Unauthorized(_BAD_CREDENTIALS)
        prefix, secret = parsed
        entry = self._cache.get(prefix) or await self._load(prefix)
        if entry is None or entry.revoked or not secret_matches(secret, entry.secret_hash):
            raise Unauthorized(_BAD_CREDENTIALS)
        if entry.expires_at is not None and entry.expires_at <= time.time():
            raise Unauthorized(_EXPIRED, {"reason": "expired"})
        self._last_used.note(entry.key_id)
        return entry.principal()

    async def _session_principal(self, signer: sessions.TokenSigner, token: str) -> Principal:
        try:
            claims = signer.verify_access(token)
            scopes = permissions_of(claims.role)
        except (sessions.InvalidToken, ValueError, KeyError):
            raise Unauthorized(_BAD_CREDENTIALS) from None
        with storage_outage_as_503():  # fail closed: without Redis we cannot know the session is still alive
            if await sessions.is_revoked(self._redis, claims.org_id, claims.session_id):
                raise Unauthorized(_BAD_CREDENTIALS)
        return Principal(
            ACTOR_USER,
            claims.user_id,
            claims.org_id,
            scopes,
            session_id=claims.session_id,
            role=claims.role,
        )

    def evict(self, prefix: str) -> None:
        self._evictions += 1
        self._cache.pop(prefix, None)

    def clear(self) -> None:
        self._evictions += 1
        self._cache.clear()

    async def announce_revoked(self, record: apikeys.ApiKeyRecord) -> None:
        """After the revocation committed: tombstone the Redis mirror and tell every process to evict the key."""
        self.evict(record.prefix)
        try:
            await self._redis.set(redis_keys.api_key(record.prefix), _mirror_blob(record), ex=mirror_ttl_s)
            await self._redis.publish(redis_keys.API_KEYS_REVOKED_CHANNEL, record.prefix)
        except RedisError:
            # Postgres already says revoked; a stale mirror would let the key live on, so say so loudly.
            log.exception("could not clear the Redis mirror of revoked key %s", record.id)
            raise PersistenceUnavailable("the key is revoked, but not yet everywhere; retry") from None

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

    async def record_last_use_forever(self, every_s: float = last_used_flush_s) -> None:
        """Write the keys' last_used_at every ``every_s`` until cancelled."""
        while True:
            await asyncio.sleep(every_s)
            await self.flush_last_used()

    async def flush_last_used(self) -> None:
        """One bounded write of the noted keys' last use; on failure the batch is dropped (a hint, not a count)."""
        batch = self._last_used.take()
        if not batch:
            return
        try:
            async with self._db.unscoped("record the last use of API keys of every org in one write") as platform:
                await apikeys.record_last_used(platform, batch)
        except (*POSTGRES_OUTAGES, asyncpg.PostgresError) as error:
            log.warning("could not record the last use of %d API keys: %s", len(batch), type(error).__name__)

    async def _load(self, prefix: str) -> _KeyEntry | None:
        evictions = self._evictions
        entry = await self._from_mirror(prefix)
        if entry is None:
            record = await self._from_postgres(prefix)
            if record is None:
                # Remember the absence too, so a repeated unknown key costs one Postgres read per TTL, not one
                # per request (new keys get fresh random prefixes, so a remembered absence never hides one).
                entry = _KeyEntry("", "", b"", frozenset(), True, KeyKind.SECRET, None)
            else:
                entry = _entry_of(record)
                await self._fill_mirror(prefix, record)
        if evictions != self._evictions:
            return entry  # a revocation may have landed while we read: serve this request, remember nothing
        self._cache[prefix] = entry
        return entry

    async def _from_mirror(self, prefix: str) -> _KeyEntry | None:
        try:
            blob = await self._redis.get(redis_keys.api_key(prefix))
        except RedisError:
            return None  # Redis is only a mirror: fall through to Postgres
        if blob is None:
            return None
        try:
            key_id, org_id, secret_hash, scopes, revoked, kind, expires_at = msgpack.unpackb(blob)
        except (ValueError, TypeError, msgpack.UnpackException):
            # An older shape (before kinds and expiry): read Postgres; the old mirror ages out (mirror_ttl_s).
            return None
        return _KeyEntry(key_id, org_id, bytes(secret_hash), frozenset(scopes), revoked, kind, expires_at)

    async def _from_postgres(self, prefix: str) -> apikeys.ApiKeyRecord | None:
        with storage_outage_as_503():
            async with self._db.unscoped("find the org of a presented API key by its prefix") as platform:
                return await apikeys.find_api_key(platform, prefix)

    async def _fill_mirror(self, prefix: str, record: apikeys.ApiKeyRecord) -> None:
        try:
            # NX: a revocation's tombstone written meanwhile must not be overwritten by this older read.
            await self._redis.set(redis_keys.api_key(prefix), _mirror_blob(record), ex=mirror_ttl_s, nx=True)
        except RedisError:
            log.warning("could not fill the Redis mirror of API key %s", record.id)


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def _mirror_blob(record: apikeys.ApiKeyRecord) -> bytes:
    blob: bytes = msgpack.packb(
        [
            record.id,
            record.org_id,
            record.secret_hash,
            list(record.scopes),
            record.revoked_at is not None,
            record.kind,
            _epoch(record.expires_at),
        ]
    )
    return blob


def _entry_of(record: apikeys.ApiKeyRecord) -> _KeyEntry:
    return _KeyEntry(
        record.id,
        record.org_id,
        bytes(record.secret_hash),
        frozenset(record.scopes),
        record.revoked_at is not None,
        record.kind,
        _epoch(record.expires_at),
    )
