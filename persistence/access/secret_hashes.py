"""How every bearer secret the platform issues (API keys, refresh tokens, invitation tokens) is kept: sha256 only.

Each secret comes from secrets.token_urlsafe with 256 bits of entropy, so a fast hash is enough (no password
stretching): the stored hash cannot be reversed, and comparing hashes in constant time leaks nothing useful.
Passwords are another matter: engine/access/passwords.py.
"""

from __future__ import annotations

import hashlib
import hmac


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)
