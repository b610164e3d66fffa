"""Ticket signing keys: their states, the public half a verifier holds, and the private half that signs.

A key moves one way only: active (signs new tickets, verifies) -> retiring (verifies the tickets it signed, signs
nothing) -> retired (its tickets are refused). An org has at most one active key; rotating makes a new active key
and moves the old one to retiring. The private half is kept (sealed, persistence/tickets.py) only while the key is
active: a key that no longer signs needs none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_ALG = "Ed25519"
kid_bytes = 3  # in every payload: small, and unique within its org (persistence draws it, retrying a collision)
kid_hex_chars = 2 * kid_bytes
seed_bytes = 32  # an Ed25519 private key is its 32-byte seed
public_key_bytes = 32
signature_bytes = 64
KID_PATTERN = rf"^[0-9a-f]{{{kid_hex_chars}}}$"
_KID_RE = re.compile(KID_PATTERN)
_ORG_RE = re.compile(r"org_[0-9a-f]{32}")


class KeyStatus(StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


_NEXT_STATUS = {KeyStatus.ACTIVE: KeyStatus.RETIRING, KeyStatus.RETIRING: KeyStatus.RETIRED}


def may_move(old: KeyStatus, new: KeyStatus) -> bool:
    """Forward one step only: a retired key never verifies again, a retiring one never signs again."""
    return _NEXT_STATUS.get(old) is new


def is_kid(value: str) -> bool:
    return _KID_RE.fullmatch(value) is not None


def org_bytes(org_id: str) -> bytes:
    if _ORG_RE.fullmatch(org_id) is None:
        raise ValueError(f"not an org id: {org_id!r}")
    return bytes.fromhex(org_id[4:])


def public_key_of(seed: bytes) -> bytes:
    """The raw public half of the key whose private half is ``seed``."""
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


@dataclass(frozen=True)
class VerifyingKey:
    """What a verifier holds of one key: everything here may be published (GET /v1/ticket-keys)."""

    kid: str
    org_id: str
    public_key: bytes
    status: KeyStatus

    def __post_init__(self) -> None:
        assert is_kid(self.kid), self.kid
        org_bytes(self.org_id)
        assert len(self.public_key) == public_key_bytes, len(self.public_key)
        assert self.status in tuple(KeyStatus), self.status


class DuplicateKid(ValueError):
    pass


@dataclass(frozen=True)
class KeyRing:
    """One org's verifying keys by kid, loaded once (a scanner builds it from its bundle, the gateway per org).
    Kids are unique within an org only, so a ring holds one org's keys: a second key with a kid already held is
    refused rather than silently shadowing it."""

    keys: dict[str, tuple[VerifyingKey, Ed25519PublicKey]] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: Iterable[VerifyingKey]) -> KeyRing:
        held: dict[str, tuple[VerifyingKey, Ed25519PublicKey]] = {}
        for key in keys:
            if key.kid in held:
                raise DuplicateKid(f"two keys with kid {key.kid}")
            held[key.kid] = (key, Ed25519PublicKey.from_public_bytes(key.public_key))
        return cls(held)

    def get(self, kid: str) -> tuple[VerifyingKey, Ed25519PublicKey] | None:
        return self.keys.get(kid)


@dataclass(frozen=True)
class SigningKey:
    """An org's active key with its private half, opened from its sealed form for as long as tickets are signed."""

    kid: str
    org_id: str
    seed: bytes = field(repr=False)

    def __post_init__(self) -> None:
        assert is_kid(self.kid), self.kid
        org_bytes(self.org_id)
        assert len(self.seed) == seed_bytes

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def verifying_key(self, status: KeyStatus = KeyStatus.ACTIVE) -> VerifyingKey:
        return VerifyingKey(self.kid, self.org_id, public_key_of(self.seed), status)
