"""Promo code uses: the Postgres rows (the truth: migration 005's trigger refuses a use beyond the limits, whoever
writes) and their Redis mirror (a gate, one atomic script per call, so that a stampede on a used-up code is refused
without touching Postgres, and quotes see the counts without Postgres).

The mirror of one code is a HASH (persistence/catalog/redis_keys.promo_uses): ``m``/``p`` its limits (-1: none),
``n`` its live uses, ``u:<use id>`` -> buyer, ``b:<buyer>`` -> that buyer's live uses. It is built from Postgres
when missing (``load_mirror``, only if still absent, so two builders cannot double-count) and lives
``mirror_ttl_s``, after which the next take rebuilds it: whatever drift a crash between the Redis reservation and
the Postgres row left (a reservation with no row) heals within that time. A mirror that counts too few (Redis lost
a reservation) lets a take through to Postgres, which refuses it; one that counts too many refuses early, until it
is rebuilt. Either way Postgres never holds more live uses than the limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from engine.catalog import pricing
from persistence.catalog import redis_keys
from persistence.tenancy import OrgDb

mirror_ttl_s = 600
NO_LIMIT = -1

# KEYS[1] the code's mirror. ARGV[1] the operation:
#   load ttl_ms max_uses max_per_buyer [use_id buyer]...  -> 1 built, 0 already there
#   take use_id buyer                                    -> ok | again | used_up | buyer_limit_reached | missing
#   release use_id                                       -> ok | unknown | missing
_MIRROR_LUA = """
local key, op = KEYS[1], ARGV[1]
if op == 'load' then
  if redis.call('EXISTS', key) == 1 then return 0 end
  redis.call('HSET', key, 'm', ARGV[3], 'p', ARGV[4], 'n', 0)
  local n = 0
  for i = 5, #ARGV, 2 do
    if redis.call('HSETNX', key, 'u:' .. ARGV[i], ARGV[i + 1]) == 1 then
      redis.call('HINCRBY', key, 'b:' .. ARGV[i + 1], 1)
      n = n + 1
    end
  end
  redis.call('HSET', key, 'n', n)
  redis.call('PEXPIRE', key, ARGV[2])
  return 1
end
if redis.call('EXISTS', key) == 0 then return 'missing' end
if op == 'take' then
  local use, buyer = ARGV[2], ARGV[3]
  if redis.call('HEXISTS', key, 'u:' .. use) == 1 then return 'again' end
  local m = tonumber(redis.call('HGET', key, 'm'))
  local p = tonumber(redis.call('HGET', key, 'p'))
  local n = tonumber(redis.call('HGET', key, 'n') or '0')
  local b = tonumber(redis.call('HGET', key, 'b:' .. buyer) or '0')
  if m >= 0 and n >= m then return 'used_up' end
  if p >= 0 and b >= p then return 'buyer_limit_reached' end
  redis.call('HSET', key, 'u:' .. use, buyer)
  redis.call('HINCRBY', key, 'n', 1)
  redis.call('HINCRBY', key, 'b:' .. buyer, 1)
  return 'ok'
end
if op == 'release' then
  local buyer = redis.call('HGET', key, 'u:' .. ARGV[2])
  if not buyer then return 'unknown' end
  redis.call('HDEL', key, 'u:' .. ARGV[2])
  redis.call('HINCRBY', key, 'n', -1)
  if redis.call('HINCRBY', key, 'b:' .. buyer, -1) <= 0 then redis.call('HDEL', key, 'b:' .. buyer) end
  return 'ok'
end
return redis.error_reply('unknown operation')
"""
_MIRROR_SHA = hashlib.sha1(_MIRROR_LUA.encode()).hexdigest()


class Gate(StrEnum):
    """What the mirror said."""

    OK = "ok"  # reserved (take) or unreserved (release) now
    AGAIN = "again"  # this use id is already counted
    USED_UP = "used_up"
    BUYER_LIMIT_REACHED = "buyer_limit_reached"
    MISSING = "missing"  # no mirror: build it from Postgres (load_mirror) and ask again
    UNKNOWN = "unknown"  # release: the mirror never counted this use id


async def _mirror(redis: Redis, key: str, *args: Any) -> Any:
    try:
        return await redis.evalsha(_MIRROR_SHA, 1, key, *args)
    except NoScriptError:
        await redis.script_load(_MIRROR_LUA)
        return await redis.evalsha(_MIRROR_SHA, 1, key, *args)


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def reserve(redis: Redis, org_id: str, event_id: str, code: str, use_id: str, buyer_id: str) -> Gate:
    return Gate(_text(await _mirror(redis, redis_keys.promo_uses(org_id, event_id, code), "take", use_id, buyer_id)))


async def unreserve(redis: Redis, org_id: str, event_id: str, code: str, use_id: str) -> Gate:
    return Gate(_text(await _mirror(redis, redis_keys.promo_uses(org_id, event_id, code), "release", use_id)))


async def load_mirror(
    redis: Redis, org_id: str, event_id: str, promo: pricing.Promo, uses: Sequence[tuple[str, str]]
) -> bool:
    """Build the code's mirror from its live uses ``[(use_id, buyer_id)]`` read from Postgres, unless one exists."""
    flat = [x for use_id, buyer_id in uses for x in (use_id, buyer_id)]
    limits = (
        NO_LIMIT if promo.max_uses is None else promo.max_uses,
        NO_LIMIT if promo.max_uses_per_buyer is None else promo.max_uses_per_buyer,
    )
    key = redis_keys.promo_uses(org_id, event_id, promo.code)
    return bool(await _mirror(redis, key, "load", mirror_ttl_s * 1000, *limits, *flat))


async def read_usage(redis: Redis, org_id: str, event_id: str, code: str, buyer_id: str) -> pricing.Usage | None:
    """The code's live uses overall and by ``buyer_id`` as mirrored; None when there is no mirror."""
    total, mine = await redis.hmget(redis_keys.promo_uses(org_id, event_id, code), ["n", f"b:{buyer_id}"])
    if total is None:
        return None
    return pricing.Usage(int(total), 0 if mine is None else int(mine))


# ---- Postgres (the truth) ---------------------------------------------------------------------------------------


class Taken(StrEnum):
    TAKEN = "taken"  # a new live use
    ALREADY = "already"  # the use id is live already (a retry): nothing new
    RELEASED = "released"  # the use id was taken and released: it never comes back
    USED_UP = "used_up"
    BUYER_LIMIT_REACHED = "buyer_limit_reached"


@dataclass(frozen=True)
class PromoUse:
    use_id: str
    event_id: str
    code: str
    buyer_id: str
    taken_at: datetime
    released_at: datetime | None


_USE_COLUMNS = "use_id, event_id, code, buyer_id, taken_at, released_at"
_LIMIT_CONSTRAINTS = {
    "promo_uses_max_uses": Taken.USED_UP,
    "promo_uses_max_uses_per_buyer": Taken.BUYER_LIMIT_REACHED,
}


def _use(row: asyncpg.Record) -> PromoUse:
    return PromoUse(
        row["use_id"], row["event_id"], row["code"], row["buyer_id"], row["taken_at"], row["released_at"]
    )


async def get_use(db: OrgDb, event_id: str, use_id: str) -> PromoUse | None:
    row = await db.conn.fetchrow(
        f"SELECT {_USE_COLUMNS} FROM promo_uses WHERE org_id = $1 AND event_id = $2 AND use_id = $3",
        db.org_id,
        event_id,
        use_id,
    )
    return None if row is None else _use(row)


async def insert_use(
    db: OrgDb, event_id: str, code: str, use_id: str, buyer_id: str
) -> tuple[Taken, PromoUse | None]:
    """Take a use (in a savepoint of db's transaction); the schema's trigger decides the limits."""
    existing = await get_use(db, event_id, use_id)
    if existing is not None:
        return (Taken.ALREADY if existing.released_at is None else Taken.RELEASED), existing
    try:
        async with db.conn.transaction():
            row = await db.conn.fetchrow(
                "INSERT INTO promo_uses (use_id, org_id, event_id, code, buyer_id) VALUES ($1, $2, $3, $4, $5) "
                f"RETURNING {_USE_COLUMNS}",
                use_id,
                db.org_id,
                event_id,
                code,
                buyer_id,
            )
    except asyncpg.CheckViolationError as error:
        refused = _LIMIT_CONSTRAINTS.get(getattr(error, "constraint_name", None) or "")
        if refused is None:
            raise
        return refused, None
    except asyncpg.UniqueViolationError:  # a concurrent take of the same use id committed first
        existing = await get_use(db, event_id, use_id)
        assert existing is not None
        return (Taken.ALREADY if existing.released_at is None else Taken.RELEASED), existing
    return Taken.TAKEN, _use(row)


async def release_use(db: OrgDb, event_id: str, code: str, use_id: str) -> PromoUse | None:
    """Release the live use ``use_id`` of that code; None when there is none (unknown, or released already)."""
    row = await db.conn.fetchrow(
        "UPDATE promo_uses SET released_at = greatest(now(), taken_at) "
        "WHERE org_id = $1 AND event_id = $2 AND code = $3 AND use_id = $4 AND released_at IS NULL "
        f"RETURNING {_USE_COLUMNS}",
        db.org_id,
        event_id,
        code,
        use_id,
    )
    return None if row is None else _use(row)


async def live_uses(db: OrgDb, event_id: str, code: str) -> list[tuple[str, str]]:
    """[(use_id, buyer_id)] of the code's live uses, for its mirror."""
    rows = await db.conn.fetch(
        "SELECT use_id, buyer_id FROM promo_uses WHERE org_id = $1 AND event_id = $2 AND code = $3 "
        "AND released_at IS NULL",
        db.org_id,
        event_id,
        code,
    )
    return [(row["use_id"], row["buyer_id"]) for row in rows]


def audit_view(use: PromoUse) -> dict[str, Any]:
    return {"event_id": use.event_id, "code": use.code, "buyer_id": use.buyer_id}
