"""The session secret `voelgoed up` hands every gateway worker: made on the first run, kept in the data folder."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from voelgoed.private_files import write_private_text
from voelgoed.settings import SESSION_SECRET_FILE_NAME, check_session_secret, read_session_secret_file
from voelgoed.startup_failure import StartupFailed

session_secret_bytes = 32  # token_urlsafe: 43 characters, 256 bits


def ensure_session_secret(data_dir: Path) -> str:
    """The data folder's session secret, made on the first run and kept, so people's sessions survive a restart
    and every gateway worker signs alike. VOELGOED_SESSION_SECRET, if set, wins (and must be long enough)."""
    given = os.environ.get("VOELGOED_SESSION_SECRET")
    if given:
        try:
            return check_session_secret(given)
        except RuntimeError as error:
            raise StartupFailed(str(error)) from None
    kept = read_session_secret_file(data_dir)
    if kept is not None and len(kept.encode()) >= session_secret_bytes:
        return kept
    secret = secrets.token_urlsafe(session_secret_bytes)
    write_private_text(data_dir / SESSION_SECRET_FILE_NAME, secret + "\n")
    return secret
