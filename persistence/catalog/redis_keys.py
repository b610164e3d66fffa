"""The catalog's Redis keys: each event's hot-path meta, its price list (with its change channel) and its promo
codes' use counts, all under the event's hash tag, and the channel announcing that an event's meta changed
(every gateway process drops its copy: gateway/event_cache.py)."""

from __future__ import annotations

from persistence.redis_keys import EVENT_PREFIX_PATTERN, NAMESPACE, event_prefix


def event_meta(org_id: str, event_id: str) -> str:
    """STRING msgpack of the event's hot-path metadata (status, ticket types, ttl, placement, schedule, revision)."""
    return event_prefix(org_id, event_id) + ":meta"


# Published after every meta write: "<org_id>:<event_id>".
EVENT_METAS_CHANGED_CHANNEL = f"{NAMESPACE}:catalog:metas_changed"


def price_list(org_id: str, event_id: str) -> str:
    """HASH v (the price list's version), b (msgpack price list: persistence/catalog/prices.py)."""
    return event_prefix(org_id, event_id) + ":prices"


def prices_changed(org_id: str, event_id: str) -> str:
    """Pub/sub channel: the event's price list changed (the message is its new version); gateways evict it."""
    return event_prefix(org_id, event_id) + ":prices_changed"


def promo_uses(org_id: str, event_id: str, promo_code: str) -> str:
    """HASH mirror of a promo code's live uses (persistence/catalog/promo_uses.lua): m, p (its limits), n (live
    uses), u:<use id> -> buyer, b:<buyer> -> that buyer's live uses. Rebuilt from Postgres when missing."""
    return event_prefix(org_id, event_id) + ":promo:" + promo_code


PRICES_CHANGED_PATTERN = f"{NAMESPACE}:*:prices_changed"

KEYS = (event_meta, price_list, prices_changed, promo_uses, lambda: EVENT_METAS_CHANGED_CHANNEL)
KEY_PATTERNS = (
    rf"{EVENT_PREFIX_PATTERN}:(meta|prices|prices_changed)",
    rf"{EVENT_PREFIX_PATTERN}:promo:[A-Z0-9_-]{{1,32}}",
    rf"{NAMESPACE}:catalog:metas_changed",
)
