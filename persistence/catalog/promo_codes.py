"""An event's promo codes (migration 005): created once, read by the price list (persistence/catalog/prices.py) and
by the promo use accounting (persistence/catalog/promo_uses.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.catalog import pricing
from persistence.catalog.prices import promo_of_row
from persistence.tenancy import OrgDb


async def create_promo_code(db: OrgDb, event_id: str, promo: pricing.Promo) -> bool:
    """Insert ``promo`` (its code upper-cased already); False when the event already has that code."""
    row = await db.conn.fetchrow(
        "INSERT INTO promo_codes (org_id, event_id, code, percent_off_bp, amount_off_minor, max_uses, "
        "max_uses_per_buyer, valid_from, valid_until, ticket_types) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (event_id, code) DO NOTHING RETURNING code",
        db.org_id,
        event_id,
        promo.code,
        promo.percent_off_bp,
        promo.amount_off_minor,
        promo.max_uses,
        promo.max_uses_per_buyer,
        promo.valid_from,
        promo.valid_until,
        None if promo.ticket_types is None else list(promo.ticket_types),
    )
    return row is not None


async def count_promo_codes(db: OrgDb, event_id: str) -> int:
    found: int = await db.conn.fetchval(
        "SELECT count(*) FROM promo_codes WHERE org_id = $1 AND event_id = $2", db.org_id, event_id
    )
    return found


async def get_promo_code(db: OrgDb, event_id: str, code: str) -> pricing.Promo | None:
    row = await db.conn.fetchrow(
        "SELECT code, percent_off_bp, amount_off_minor, max_uses, max_uses_per_buyer, valid_from, valid_until, "
        "ticket_types FROM promo_codes WHERE org_id = $1 AND event_id = $2 AND code = $3",
        db.org_id,
        event_id,
        code,
    )
    return None if row is None else promo_of_row(row)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def audit_view(event_id: str, promo: pricing.Promo) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "code": promo.code,
        "percent_off_bp": promo.percent_off_bp,
        "amount_off_minor": promo.amount_off_minor,
        "max_uses": promo.max_uses,
        "max_uses_per_buyer": promo.max_uses_per_buyer,
        "valid_from": _time(promo.valid_from),
        "valid_until": _time(promo.valid_until),
        "ticket_types": None if promo.ticket_types is None else list(promo.ticket_types),
    }
