"""Where a stored answer to an Idempotency-Key lives (gateway/idempotency.py reads and writes it): per org, per
key holder, per key (hashed: a key is up to 200 characters of the caller's choosing)."""

from __future__ import annotations

import hashlib

from persistence.redis_keys import NAMESPACE, ORG_ID_PATTERN


def idempotency(org_id: str, key_holder_id: str, idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"{NAMESPACE}:{org_id}:idem:{key_holder_id}:{digest}"


KEYS = (idempotency,)
KEY_PATTERNS = (rf"{NAMESPACE}:{ORG_ID_PATTERN}:idem:(key|usr)_[0-9a-f]{{32}}:[0-9a-f]{{64}}",)
