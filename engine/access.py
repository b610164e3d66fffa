"""The scopes an API key can carry. Pure data: the gateway checks a route's scope against a key's scopes.

The api_keys table refuses any scope outside this list (migration 001 carries the same list), so a new scope
needs a migration as well as an entry here.
"""

from __future__ import annotations

SCOPES: tuple[str, ...] = (
    "events:read",
    "events:write",
    "inventory:read",
    "inventory:hold",
    "inventory:confirm",
    "keys:manage",
)

# The key `voelgoed org create` prints may do everything.
OWNER_SCOPES: tuple[str, ...] = SCOPES
