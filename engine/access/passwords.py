"""Passwords: the policy a new one must meet, and argon2id hashing. Pure (CPU only, no I/O).

The parameters follow the OWASP minimum for argon2id (19 MiB, 2 passes, 1 lane): about 25 ms to verify on one
core of the 2-core development machine, slow enough to make guessing from a stolen hash expensive and cheap
enough that logins do not queue. Raising them later is safe: a stored hash names its own parameters, and
``needs_rehash`` says when a login should store a stronger one.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# NIST SP 800-63B: length is what makes a password strong; no composition rules. The upper bound keeps a
# single login from hashing megabytes.
password_chars_min = 12
password_chars_max = 256
# What ``str.strip`` removes (str.isspace: no code point past U+3000 is one), and a pattern (Python and
# ECMA-262 alike, for OpenAPI) that a password meets when it is not only that.
_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
NOT_ONLY_WHITESPACE_PATTERN = "[^" + "".join(f"\\u{ord(c):04x}" for c in _WHITESPACE) + "]"

argon2_time_cost = 2
argon2_memory_kib = 19_456
argon2_parallelism = 1
argon2_hash_bytes = 32
argon2_salt_bytes = 16

_HASHER = PasswordHasher(
    time_cost=argon2_time_cost,
    memory_cost=argon2_memory_kib,
    parallelism=argon2_parallelism,
    hash_len=argon2_hash_bytes,
    salt_len=argon2_salt_bytes,
)

# Verified against when the e-mail is unknown (or has no password yet), so a login costs the same either way
# and its timing does not reveal who has an account. Same parameters as every real hash.
DUMMY_HASH = _HASHER.hash("voelgoed: no such account")


def password_problem(password: str) -> str | None:
    """Why ``password`` may not be used, or None when it may."""
    if len(password) < password_chars_min:
        return f"a password needs at least {password_chars_min} characters"
    if len(password) > password_chars_max:
        return f"a password has at most {password_chars_max} characters"
    if password.strip() == "":
        return "a password cannot be only spaces"
    return None


def hash_password(password: str) -> str:
    """The argon2id PHC string of ``password`` (salted); ValueError when the policy refuses it."""
    problem = password_problem(password)
    if problem is not None:
        raise ValueError(problem)
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches; False (never an exception) for a wrong password or a malformed hash."""
    if len(password) > password_chars_max:
        return False  # no hash of ours was made from it; do not spend the time
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's (store a new one at the next login)."""
    try:
        return _HASHER.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
