"""Session access tokens: short-lived signed JWTs (HS256) that name a person, their org, role and session.

An access token is checked without a database read: its signature and expiry, then one Redis EXISTS for the
session's revocation mark. Logging out, a role change or a removal revokes the session row in Postgres (so it
cannot be refreshed) and sets the mark here (so its access tokens stop at once); the mark lives as long as an
access token can, after which every token of that session has expired anyway. If Redis lost a mark, a token
would live at most ``access_token_ttl_s`` more: that bound is why access tokens are short.

The refresh token is not a JWT: it is an opaque "vr_..." secret kept hashed in Postgres
(persistence/access/sessions.py).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from redis.asyncio import Redis

from engine.access.rules import ROLES
from gateway.errors import storage_outage_as_503
from persistence.access import redis_keys
from voelgoed.settings import session_secret_bytes_min

access_token_ttl_s = 900
# Accepted difference between gateway clocks when checking exp/iat.
clock_leeway_s = 5
token_chars_max = 2_048
ALGORITHM = "HS256"
TOKEN_TYPE = "access"
_CLAIMS = ("sub", "org", "sid", "role", "iat", "exp", "typ")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_USER_RE = re.compile(r"usr_[0-9a-f]{32}")
_ORG_RE = re.compile(r"org_[0-9a-f]{32}")
_SESSION_RE = re.compile(r"ses_[0-9a-f]{32}")


class InvalidToken(Exception):
    """The access token is malformed, forged, expired or not an access token. Say nothing more to the caller."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    org_id: str
    session_id: str
    role: str


def looks_like_token(bearer: str) -> bool:
    """Whether a bearer value is shaped like one of our JWTs (as opposed to an API key)."""
    return len(bearer) <= token_chars_max and _JWT_RE.fullmatch(bearer) is not None


class TokenSigner:
    """Issues and checks access tokens with one shared secret (Settings.session_secret, the same on every
    gateway process). ``clock`` is for tests that need tokens issued in the past."""

    def __init__(self, secret: str, *, ttl_s: int = access_token_ttl_s, clock: Callable[[], float] = time.time) -> None:
        if len(secret.encode()) < session_secret_bytes_min:
            raise ValueError(f"the session secret needs at least {session_secret_bytes_min} bytes")
        self._secret = secret
        self.ttl_s = ttl_s
        self._clock = clock

    def issue_access(self, user_id: str, org_id: str, session_id: str, role: str) -> tuple[str, int]:
        """(token, seconds it lives)."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": user_id,
            "org": org_id,
            "sid": session_id,
            "role": role,
            "iat": now,
            "exp": now + self.ttl_s,
            "typ": TOKEN_TYPE,
            "jti": secrets.token_hex(8),  # two tokens issued in the same second still differ
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), self.ttl_s

    def verify_access(self, token: str) -> AccessClaims:
        """The token's claims; InvalidToken for anything but a well-formed, unexpired access token we signed."""
        if not looks_like_token(token):
            raise InvalidToken("not a session token")
        try:
            # algorithms pins HS256: "none" and every other algorithm (the alg-confusion attacks) are refused.
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                leeway=clock_leeway_s,
                options={"require": list(_CLAIMS)},
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(str(error)) from None
        if claims.get("typ") != TOKEN_TYPE:
            raise InvalidToken("not an access token")
        user_id, org_id, session_id, role = claims["sub"], claims["org"], claims["sid"], claims["role"]
        if not (
            isinstance(user_id, str)
            and _USER_RE.fullmatch(user_id)
            and isinstance(org_id, str)
            and _ORG_RE.fullmatch(org_id)
            and isinstance(session_id, str)
            and _SESSION_RE.fullmatch(session_id)
            and role in ROLES
        ):
            raise InvalidToken("malformed claims")
        return AccessClaims(user_id, org_id, session_id, role)


def revocation_mark_ttl_s(ttl_s: int = access_token_ttl_s) -> int:
    return ttl_s + clock_leeway_s


async def mark_revoked(redis: Redis, org_id: str, session_id: str, *, ttl_s: int = access_token_ttl_s) -> None:
    """Stop the session's access tokens at once. Raises on a Redis error: the caller must not claim success."""
    await redis.set(redis_keys.revoked_session(org_id, session_id), b"1", ex=revocation_mark_ttl_s(ttl_s))


class RevocationMarks:
    """The sessions' revocation marks in Redis, as the session use cases end sessions (services/access/sessions.py
    SessionMarks)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def end(self, org_id: str, session_ids: Iterable[str]) -> None:
        """Mark the sessions revoked, inside the transaction that revokes their rows: if Redis fails the change
        rolls back (503, nothing applied); if the commit fails after the marks, the sessions merely end early."""
        with storage_outage_as_503():
            for session_id in session_ids:
                await mark_revoked(self._redis, org_id, session_id)


async def is_revoked(redis: Redis, org_id: str, session_id: str) -> bool:
    """Whether the session was revoked. Raises on a Redis error (fail closed: the caller answers 503)."""
    return bool(await redis.exists(redis_keys.revoked_session(org_id, session_id)))
