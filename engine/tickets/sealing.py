"""The private half of a ticket key at rest: sealed with AES-256-GCM under a key derived from the platform's master
secret (voelgoed/ticket_master_key.py says where that comes from).

Each sealing has its own random 12-byte nonce (drawn by the shell) and binds the org and kid as associated data,
so a sealed key copied onto another org's row, or another kid's, does not open. The AES key is derived with HKDF,
so the master secret may be any long random text (like the session secret) and is never used as a key directly.
``master_id`` names which master sealed a row (a fingerprint, not the key), so a later master rotation can tell
rows apart.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from engine.tickets.keys import is_kid, org_bytes, seed_bytes

master_secret_bytes_min = 32
nonce_bytes = 12  # AES-GCM's standard nonce
aes_key_bytes = 32
tag_bytes = 16
sealed_bytes = seed_bytes + tag_bytes
master_id_bytes = 8
_KEY_INFO = b"voelgoed ticket-key sealing/v1"
_ID_INFO = b"voelgoed ticket-key master id/v1"


class SealBroken(ValueError):
    """A sealed key did not open: another master, another row's org or kid, or altered bytes."""


def _derive(secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(secret)


class MasterKey:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < master_secret_bytes_min:
            raise ValueError(f"the ticket master secret must be at least {master_secret_bytes_min} bytes")
        self._aead = AESGCM(_derive(secret, _KEY_INFO, aes_key_bytes))
        self.master_id = _derive(secret, _ID_INFO, master_id_bytes).hex()

    def __repr__(self) -> str:
        return f"MasterKey(master_id={self.master_id!r})"

    def seal(self, org_id: str, kid: str, seed: bytes, nonce: bytes) -> bytes:
        assert len(seed) == seed_bytes and len(nonce) == nonce_bytes
        sealed = self._aead.encrypt(nonce, seed, _associated(org_id, kid))
        assert len(sealed) == sealed_bytes
        return sealed

    def open(self, org_id: str, kid: str, sealed: bytes, nonce: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, sealed, _associated(org_id, kid))
        except InvalidTag:
            raise SealBroken(f"ticket key {kid} of {org_id} does not open with master {self.master_id}") from None


def _associated(org_id: str, kid: str) -> bytes:
    assert is_kid(kid)
    return b"voelgoed-ticket-key\x00" + org_bytes(org_id) + bytes.fromhex(kid)
