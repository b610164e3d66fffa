"""Where the ticket master key comes from (voelgoed/ticket_master_key.py): the variable wins, else the data
folder's private file, made once on the first run and kept; a short secret is refused at start-up."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from voelgoed.startup_failure import StartupFailed
from voelgoed.ticket_master_key import (
    TICKET_MASTER_KEY_ENV,
    TICKET_MASTER_KEY_FILE_NAME,
    ensure_ticket_master_key,
    read_ticket_master_key,
)


def test_the_first_run_makes_a_private_file_and_later_runs_keep_it(tmp_path: Path) -> None:
    assert read_ticket_master_key(tmp_path, {}) is None
    made = ensure_ticket_master_key(tmp_path, {})
    path = tmp_path / TICKET_MASTER_KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_ticket_master_key(tmp_path, {}).master_id == made.master_id
    found = read_ticket_master_key(tmp_path, {})
    assert found is not None and found.master_id == made.master_id
    sealed = made.seal("org_" + "a" * 32, "abcdef", bytes(32), bytes(12))
    assert found.open("org_" + "a" * 32, "abcdef", sealed, bytes(12)) == bytes(32)


def test_the_variable_wins_over_the_file(tmp_path: Path) -> None:
    from_file = ensure_ticket_master_key(tmp_path, {})
    given = {TICKET_MASTER_KEY_ENV: secrets.token_urlsafe(32)}
    from_env = ensure_ticket_master_key(tmp_path, given)
    assert from_env.master_id != from_file.master_id
    assert ensure_ticket_master_key(tmp_path, given).master_id == from_env.master_id


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StartupFailed, match=TICKET_MASTER_KEY_ENV):
        ensure_ticket_master_key(tmp_path, {TICKET_MASTER_KEY_ENV: "too short"})
    (tmp_path / TICKET_MASTER_KEY_FILE_NAME).write_text("short\n")
    assert read_ticket_master_key(tmp_path, {}) is None  # a broken file: start afresh, as the session secret does
