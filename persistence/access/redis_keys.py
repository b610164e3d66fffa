"""The access domain's Redis keys: the API key mirror and its revocation channel, revoked sessions' marks."""

from __future__ import annotations

from persistence.redis_keys import NAMESPACE, ORG_ID_PATTERN


def api_key(prefix: str) -> str:
    """STRING msgpack mirror of one API key row, looked up by its public prefix."""
    return f"{NAMESPACE}:apikey:{prefix}"


API_KEYS_REVOKED_CHANNEL = f"{NAMESPACE}:apikeys:revoked"


def revoked_session(org_id: str, session_id: str) -> str:
    """STRING set while a revoked session's access tokens may still be unexpired."""
    return f"{NAMESPACE}:{org_id}:session_revoked:{session_id}"


KEYS = (api_key, revoked_session, lambda: API_KEYS_REVOKED_CHANNEL)
KEY_PATTERNS = (
    rf"{NAMESPACE}:apikey:[0-9a-f]{{12}}",
    rf"{NAMESPACE}:apikeys:revoked",
    rf"{NAMESPACE}:{ORG_ID_PATTERN}:session_revoked:ses_[0-9a-f]{{32}}",
)
