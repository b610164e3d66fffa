"""The master secret that seals every org's ticket signing key at rest (engine/tickets/sealing.py).

It comes from where the session secret comes from (voelgoed/session_secret.py), and for the same reasons: every
gateway worker and actor must hold the same one, and it must outlive a restart. VOELGOED_TICKET_MASTER_KEY, if
set, wins (at least 32 bytes: in production it comes from the secret store, never from the database it guards);
else the file ``ticket_master_key`` in the data folder (readable by its user only), made on the first run.

Losing it loses no ticket: public keys are stored in clear, so every ticket already issued still verifies. Only the
active keys' private halves no longer open (SealBroken); rotating each org's key (persistence/tickets.rotate_key
needs no old private half) makes signing work again under the new master.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from engine.tickets.sealing import MasterKey, master_secret_bytes_min
from voelgoed.private_files import write_private_text
from voelgoed.startup_failure import StartupFailed

TICKET_MASTER_KEY_ENV = "VOELGOED_TICKET_MASTER_KEY"
TICKET_MASTER_KEY_FILE_NAME = "ticket_master_key"
ticket_master_secret_bytes = 32  # token_urlsafe: 43 characters, 256 bits


def read_ticket_master_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> MasterKey | None:
    """The master key a worker was given (the variable) or finds (the file); None when neither holds one."""
    secret = read_ticket_master_secret(data_dir, environ)
    return None if secret is None else _master(secret.decode(), "unreachable: checked by the read")


def read_ticket_master_secret(data_dir: Path, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The master secret itself, for a process that hands it on (the gateway creating the fulfilment actor,
    actors/fulfilment.py, which may run where this data folder is not); None when neither holds one."""
    env = os.environ if environ is None else environ
    given = env.get(TICKET_MASTER_KEY_ENV)
    if given:
        _master(given, f"{TICKET_MASTER_KEY_ENV} must be at least {master_secret_bytes_min} bytes")
        return given.encode()
    try:
        kept = (data_dir / TICKET_MASTER_KEY_FILE_NAME).read_text().strip()
    except OSError:
        return None
    if len(kept.encode()) < master_secret_bytes_min:
        return None
    _master(kept, "the ticket master key file is too short")
    return kept.encode()


def ensure_ticket_master_key(data_dir: Path, environ: Mapping[str, str] | None = None) -> MasterKey:
    """The data folder's master key, made on the first run and kept (what `voelgoed up` hands its workers)."""
    found = read_ticket_master_key(data_dir, environ)
    if found is not None:
        return found
    secret = secrets.token_urlsafe(ticket_master_secret_bytes)
    write_private_text(data_dir / TICKET_MASTER_KEY_FILE_NAME, secret + "\n")
    return _master(secret, "unreachable: a fresh secret is long enough")


def _master(secret: str, too_short: str) -> MasterKey:
    try:
        return MasterKey(secret.encode())
    except ValueError:
        raise StartupFailed(too_short) from None
