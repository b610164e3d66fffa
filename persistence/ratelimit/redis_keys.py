"""The rate limits' Redis keys (persistence/ratelimit/rate_limit.lua). An org's buckets share the hash tag
{org_id}, so one script call may check a request's key, address and buyer buckets together on Redis Cluster; the
platform-wide login buckets share {login} for the same reason. Keys never hold an e-mail address in clear."""

from __future__ import annotations

import hashlib

from persistence.redis_keys import NAMESPACE, ORG_ID_PATTERN

account_digest_hex_chars = 32


def rate_bucket(org_id: str, route_class: str, subject: str, *parts: str) -> str:
    """STRING: one GCRA bucket's TAT (us), e.g. rate_bucket(org, "holds", "buyer", event_id, buyer_id)."""
    return f"{NAMESPACE}:{{{org_id}}}:rl:{route_class}:{subject}:" + ":".join(parts)


def rate_quota(org_id: str, key_holder_id: str) -> str:
    """HASH {d: UTC day number, n: requests that day}: the key's daily quota."""
    return f"{NAMESPACE}:{{{org_id}}}:rl:quota:{key_holder_id}"


def login_bucket(subject: str, value: str) -> str:
    """STRING: a platform-wide login failure bucket, per account (hashed e-mail) or per address."""
    if subject == "account":
        value = hashlib.sha256(value.encode()).hexdigest()[:account_digest_hex_chars]
    return f"{NAMESPACE}:rl:{{login}}:{subject}:{value}"


def public_rate_bucket(route_class: str, ip: str) -> str:
    """STRING: a platform-wide bucket of an address's requests to routes without a key (login, refresh, accept)."""
    return f"{NAMESPACE}:rl:public:{route_class}:ip:{ip}"


def auth_failure_bucket(ip: str) -> str:
    """STRING: the platform-wide bucket of an address's failed authentications."""
    return f"{NAMESPACE}:rl:authfail:{ip}"


KEYS = (rate_bucket, rate_quota, login_bucket, public_rate_bucket, auth_failure_bucket)
KEY_PATTERNS = (
    rf"{NAMESPACE}:\{{{ORG_ID_PATTERN}\}}:rl:.+",
    rf"{NAMESPACE}:rl:\{{login\}}:[a-z]+:.+",
    rf"{NAMESPACE}:rl:(public:[a-z]+:ip|authfail):.+",
)
