"""An event's price rules in Postgres (tiers, fees, tax, promo codes: migration 005), and its price list as every
gateway process shares it through Redis (a versioned msgpack blob, announced on the event's ``prices_changed``
channel).

The Postgres side takes an ``OrgDb`` like every repository (row-level security, and ``WHERE org_id``). The Redis
side keeps the newest version only: a put carrying an older or equal version than the stored one changes nothing,
so two changes shared out of order still leave the newer list.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import asyncpg
import msgpack
from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from engine.catalog import price_changes, pricing
from engine.catalog import rules as catalog
from persistence.catalog import redis_keys
from persistence.catalog.events import audit_time
from persistence.tenancy import OrgDb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# KEYS[1] the price list hash; ARGV[1] version, ARGV[2] blob, ARGV[3] the change channel.
_PUT_LUA = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'b', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
"""
_PUT_SHA = hashlib.sha1(_PUT_LUA.encode()).hexdigest()


def price_list_of(event: catalog.StockedEvent, version: int) -> pricing.PriceList:
    """A new event's price list (no promo codes yet), as ``put_price_rules`` stored it."""
    return pricing.PriceList(
        currency=event.ticket_types[0].price.currency,
        ticket_types=MappingProxyType(
            {t.code: pricing.TypePrice(t.code, t.price.amount_minor, t.price_tiers) for t in event.ticket_types}
        ),
        fees=event.fees,
        tax=event.tax,
        version=version,
    )


# ---- Postgres --------------------------------------------------------------------------------------------------


def _tax_columns(tax: pricing.Tax | None) -> tuple[str | None, int | None, bool | None]:
    """price_lists' (tax_code, tax_rate_bp, tax_included): all null for an event without tax."""
    return (None, None, None) if tax is None else (tax.code, tax.rate_bp, tax.included)


async def put_price_rules(db: OrgDb, event_id: str, event: catalog.StockedEvent) -> int:
    """Store a new event's tiers, fees and tax (in db's transaction, after the event's own rows); its version."""
    tax = event.tax
    version: int = await db.conn.fetchval(
        "INSERT INTO price_lists (org_id, event_id, tax_code, tax_rate_bp, tax_included) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING version",
        db.org_id,
        event_id,
        *_tax_columns(tax),
    )
    for t in event.ticket_types:
        await _insert_tiers(db, event_id, t.code, t.price_tiers)
    await _insert_fees(db, event_id, event.fees)
    return version


async def _insert_tiers(db: OrgDb, event_id: str, code: str, tiers: tuple[pricing.PriceTier, ...]) -> None:
    if tiers:
        await db.conn.executemany(
            "INSERT INTO price_tiers (org_id, event_id, ticket_type, position, until, price_minor, currency) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (db.org_id, event_id, code, position, tier.until, tier.amount_minor, tier.currency)
                for position, tier in enumerate(tiers)
            ],
        )


async def _insert_fees(db: OrgDb, event_id: str, fees: tuple[pricing.Fee, ...]) -> None:
    if fees:
        await db.conn.executemany(
            "INSERT INTO event_fees (org_id, event_id, code, position, per, amount_minor, percent_bp) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                (db.org_id, event_id, f.code, position, f.per, f.amount_minor, f.percent_bp)
                for position, f in enumerate(fees)
            ],
        )


# ---- changes (engine/catalog/price_changes.py decides them; migration 008 grants what they need) ------------


async def write_type_change(db: OrgDb, event_id: str, change: price_changes.TypePriceChange) -> None:
    """A ticket type's new base price and/or tiers (the tiers replaced as a whole), in db's transaction, after
    ``next_version`` locked the event's prices. The currency is the event's (checked by the caller): it never
    changes, so only the amount is written."""
    if change.price is not None:
        updated = await db.conn.execute(
            "UPDATE ticket_types SET price_minor = $4 WHERE org_id = $1 AND event_id = $2 AND code = $3",
            db.org_id,
            event_id,
            change.code,
            change.price.amount_minor,
        )
        assert updated == "UPDATE 1", (event_id, change.code, updated)
    if change.tiers is not None:
        await db.conn.execute(
            "DELETE FROM price_tiers WHERE org_id = $1 AND event_id = $2 AND ticket_type = $3",
            db.org_id,
            event_id,
            change.code,
        )
        await _insert_tiers(db, event_id, change.code, change.tiers)


async def write_rules_change(db: OrgDb, event_id: str, change: price_changes.RulesChange) -> None:
    """The event's new fees (replaced as a whole) and/or tax, in db's transaction, after ``next_version`` made
    and locked its price_lists row."""
    if change.fees is not None:
        await db.conn.execute("DELETE FROM event_fees WHERE org_id = $1 AND event_id = $2", db.org_id, event_id)
        await _insert_fees(db, event_id, change.fees)
    if change.tax_given:
        tax = change.tax
        updated = await db.conn.execute(
            "UPDATE price_lists SET tax_code = $3, tax_rate_bp = $4, tax_included = $5 "
            "WHERE org_id = $1 AND event_id = $2",
            db.org_id,
            event_id,
            *_tax_columns(tax),
        )
        assert updated == "UPDATE 1", (event_id, updated)


def _money(amount_minor: int, currency: str) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": currency}


def type_price_audit_view(prices: pricing.PriceList, change: price_changes.TypePriceChange) -> dict[str, Any]:
    """What the audit log keeps of a ticket type's prices in ``prices``: the parts ``change`` names."""
    found = prices.ticket_types[change.code]
    view: dict[str, Any] = {}
    if change.price is not None:
        view["price"] = _money(found.amount_minor, prices.currency)
    if change.tiers is not None:
        view["price_tiers"] = [
            {"until": audit_time(t.until), "price": _money(t.amount_minor, t.currency)} for t in found.tiers
        ]
    return view


def rules_audit_view(prices: pricing.PriceList, change: price_changes.RulesChange) -> dict[str, Any]:
    """What the audit log keeps of an event's fees and tax in ``prices``: the parts ``change`` names."""
    view: dict[str, Any] = {}
    if change.fees is not None:
        view["fees"] = [
            {"code": f.code, "per": f.per, "amount_minor": f.amount_minor, "percent_bp": f.percent_bp}
            for f in prices.fees
        ]
    if change.tax_given:
        tax = prices.tax
        view["tax"] = None if tax is None else {"code": tax.code, "rate_bp": tax.rate_bp, "included": tax.included}
    return view


async def next_version(db: OrgDb, event_id: str) -> int:
    """The event's price list's next version, locking its row until db's transaction ends (so changes of one event's
    prices run one after another). The event must exist; one created before pricing gets its row here."""
    version: int = await db.conn.fetchval(
        "INSERT INTO price_lists (org_id, event_id) VALUES ($1, $2) "
        "ON CONFLICT (event_id) DO UPDATE SET version = price_lists.version + 1 RETURNING version",
        db.org_id,
        event_id,
    )
    return version


async def load_price_list(db: OrgDb, event_id: str) -> pricing.PriceList | None:
    """The event's whole price list, promo codes included; None when the org has no such event."""
    conn, org_id = db.conn, db.org_id
    types = await conn.fetch(
        "SELECT code, price_minor, currency FROM ticket_types WHERE org_id = $1 AND event_id = $2 ORDER BY position",
        org_id,
        event_id,
    )
    if not types:
        return None
    tiers: dict[str, list[pricing.PriceTier]] = {}
    for row in await conn.fetch(
        "SELECT ticket_type, until, price_minor, currency FROM price_tiers WHERE org_id = $1 AND event_id = $2 "
        "ORDER BY ticket_type, position",
        org_id,
        event_id,
    ):
        tiers.setdefault(row["ticket_type"], []).append(
            pricing.PriceTier(row["until"], row["price_minor"], row["currency"])
        )
    fees = tuple(
        pricing.Fee(row["code"], row["per"], row["amount_minor"], row["percent_bp"])
        for row in await conn.fetch(
            "SELECT code, per, amount_minor, percent_bp FROM event_fees WHERE org_id = $1 AND event_id = $2 "
            "ORDER BY position",
            org_id,
            event_id,
        )
    )
    head = await conn.fetchrow(
        "SELECT version, tax_code, tax_rate_bp, tax_included FROM price_lists WHERE org_id = $1 AND event_id = $2",
        org_id,
        event_id,
    )
    tax = None
    if head is not None and head["tax_code"] is not None:
        tax = pricing.Tax(head["tax_code"], head["tax_rate_bp"], head["tax_included"])
    promos = [promo_of_row(row) for row in await conn.fetch(_PROMOS_SQL, org_id, event_id)]
    return pricing.PriceList(
        currency=types[0]["currency"],
        ticket_types=MappingProxyType(
            {
                row["code"]: pricing.TypePrice(row["code"], row["price_minor"], tuple(tiers.get(row["code"], ())))
                for row in types
            }
        ),
        fees=fees,
        tax=tax,
        promos=MappingProxyType({p.code: p for p in promos}),
        version=0 if head is None else head["version"],
    )


_PROMO_COLUMNS = (
    "code, percent_off_bp, amount_off_minor, max_uses, max_uses_per_buyer, valid_from, valid_until, ticket_types"
)
_PROMOS_SQL = f"SELECT {_PROMO_COLUMNS} FROM promo_codes WHERE org_id = $1 AND event_id = $2 ORDER BY code"


def promo_of_row(row: asyncpg.Record) -> pricing.Promo:
    types = row["ticket_types"]
    return pricing.Promo(
        code=row["code"],
        percent_off_bp=row["percent_off_bp"],
        amount_off_minor=row["amount_off_minor"],
        max_uses=row["max_uses"],
        max_uses_per_buyer=row["max_uses_per_buyer"],
        valid_from=row["valid_from"],
        valid_until=row["valid_until"],
        ticket_types=None if types is None else tuple(types),
    )


# ---- Redis -------------------------------------------------------------------------------------------------------


async def put_price_list(redis: Redis, org_id: str, event_id: str, prices: pricing.PriceList) -> bool:
    """Share ``prices`` (unless Redis already has its version or a newer one) and announce it; whether it was
    written."""
    key = redis_keys.price_list(org_id, event_id)
    blob, channel = encode_price_list(prices), redis_keys.prices_changed(org_id, event_id)
    try:
        written = await redis.evalsha(_PUT_SHA, 1, key, prices.version, blob, channel)  # type: ignore[misc]
    except NoScriptError:
        await redis.script_load(_PUT_LUA)
        written = await redis.evalsha(_PUT_SHA, 1, key, prices.version, blob, channel)  # type: ignore[misc]
    return bool(written)


async def get_price_list(redis: Redis, org_id: str, event_id: str) -> pricing.PriceList | None:
    found: list[bytes | None] = await redis.hmget(redis_keys.price_list(org_id, event_id), ["v", "b"])  # type: ignore[assignment]
    blob = found[1]
    return None if blob is None else decode_price_list(blob)


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // timedelta(microseconds=1)


def _time(us: int | None) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def encode_price_list(prices: pricing.PriceList) -> bytes:
    return msgpack.packb(
        [
            prices.currency,
            [
                [t.code, t.amount_minor, [[_us(x.until), x.amount_minor, x.currency] for x in t.tiers]]
                for t in prices.ticket_types.values()
            ],
            [[f.code, f.per, f.amount_minor, f.percent_bp] for f in prices.fees],
            None if prices.tax is None else [prices.tax.code, prices.tax.rate_bp, prices.tax.included],
            [
                [
                    p.code, p.percent_off_bp, p.amount_off_minor, p.max_uses, p.max_uses_per_buyer,
                    _us(p.valid_from), _us(p.valid_until), None if p.ticket_types is None else list(p.ticket_types),
                ]
                for p in prices.promos.values()
            ],
            prices.version,
        ]
    )


def decode_price_list(blob: bytes) -> pricing.PriceList:
    currency, types, fees, tax, promos, version = msgpack.unpackb(blob)
    type_prices: dict[str, pricing.TypePrice] = {}
    for code, amount, tiers in types:
        type_prices[code] = pricing.TypePrice(
            code, amount, tuple(pricing.PriceTier(_at(until), value, cur) for until, value, cur in tiers)
        )
    promo_list = [_promo(raw) for raw in promos]
    return pricing.PriceList(
        currency=currency,
        ticket_types=MappingProxyType(type_prices),
        fees=tuple(pricing.Fee(code, per, amount, percent) for code, per, amount, percent in fees),
        tax=None if tax is None else pricing.Tax(tax[0], tax[1], bool(tax[2])),
        promos=MappingProxyType({p.code: p for p in promo_list}),
        version=version,
    )


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _promo(raw: list[Any]) -> pricing.Promo:
    code, percent, amount, max_uses, per_buyer, valid_from, valid_until, types = raw
    return pricing.Promo(
        code=code,
        percent_off_bp=percent,
        amount_off_minor=amount,
        max_uses=max_uses,
        max_uses_per_buyer=per_buyer,
        valid_from=_time(valid_from),
        valid_until=_time(valid_until),
        ticket_types=None if types is None else tuple(types),
    )
