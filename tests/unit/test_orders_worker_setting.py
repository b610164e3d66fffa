"""Where checkout's orders worker runs (voelgoed/settings.py VOELGOED_ORDERS_WORKER): ``gateway`` by default,
``actor`` or ``off`` when asked, anything else refused at start-up; and the master secret the gateway hands the
fulfilment actor is the one its own ticket master key is made of (voelgoed/ticket_master_key.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.tickets.sealing import MasterKey
from voelgoed.settings import ORDERS_WORKER_ACTOR, ORDERS_WORKER_ENV, ORDERS_WORKER_GATEWAY, Settings
from voelgoed.ticket_master_key import (
    TICKET_MASTER_KEY_ENV,
    ensure_ticket_master_key,
    read_ticket_master_key,
    read_ticket_master_secret,
)

URLS = {"VOELGOED_DATABASE_URL": "postgresql://x/y", "VOELGOED_REDIS_URL": "redis://x/0"}


def test_the_gateway_runs_the_worker_unless_told_otherwise(tmp_path: Path) -> None:
    env = {**URLS, "VOELGOED_DATA_DIR": str(tmp_path)}
    assert Settings.from_env(env).orders_worker == ORDERS_WORKER_GATEWAY
    assert Settings.from_env({**env, ORDERS_WORKER_ENV: "actor"}).orders_worker == ORDERS_WORKER_ACTOR
    assert Settings.from_env({**env, ORDERS_WORKER_ENV: "off"}).orders_worker == "off"
    with pytest.raises(RuntimeError, match=ORDERS_WORKER_ENV):
        Settings.from_env({**env, ORDERS_WORKER_ENV: "actors"})


def test_the_secret_handed_on_makes_the_same_master_key(tmp_path: Path) -> None:
    assert read_ticket_master_secret(tmp_path, {}) is None
    made = ensure_ticket_master_key(tmp_path, {})
    secret = read_ticket_master_secret(tmp_path, {})
    assert secret is not None and MasterKey(secret).master_id == made.master_id
    given = "g" * 40
    assert read_ticket_master_secret(tmp_path, {TICKET_MASTER_KEY_ENV: given}) == given.encode()
    found = read_ticket_master_key(tmp_path, {TICKET_MASTER_KEY_ENV: given})
    assert found is not None and found.master_id == MasterKey(given.encode()).master_id
