"""Process settings, read once from the environment (and the runtime file `make up` leaves behind)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from actors.placement import inventory_hosts_max  # placement alone: importing it loads no Ray
from engine.ratelimit import DEFAULT_POLICY, Policy, policy_with

RUNTIME_FILE_NAME = "runtime.json"
# Made once by `voelgoed up` and kept across runs (sessions outlive a restart); readable by its user only.
SESSION_SECRET_FILE_NAME = "session_secret"
DEFAULT_DATA_DIR = ".voelgoed"
DEFAULT_RAY_NAMESPACE = "voelgoed"
inventory_hosts_default = 4
# Where checkout's orders worker (services/orders/worker.py) runs: "gateway" in every gateway process that can
# take payments (the default, so an in-process gateway in tests fulfils on its own), "actor" in the one supporting
# Ray actor (actors/fulfilment.py, which the gateway makes sure exists; `voelgoed up` sets this), "off" nowhere.
ORDERS_WORKER_ENV = "VOELGOED_ORDERS_WORKER"
ORDERS_WORKER_GATEWAY = "gateway"
ORDERS_WORKER_ACTOR = "actor"
ORDERS_WORKER_OFF = "off"
ORDERS_WORKER_MODES = (ORDERS_WORKER_GATEWAY, ORDERS_WORKER_ACTOR, ORDERS_WORKER_OFF)
# Signs people's session access tokens (HS256, which wants a key of at least its hash's size): at least 256 bits,
# the same on every gateway process.
session_secret_bytes_min = 32
# How long a drain's claim on an outbox row keeps other drains off it (services/outbox.py DrainPolicy.lease_s):
# after a gateway dies, its claimed rows wait this long to be retried. VOELGOED_OUTBOX_LEASE_S shortens it for
# tests (tests/system/test_checkout_crashes.py); a handler may then run at most 1 s less (services/outbox.py).
outbox_lease_s_default = 60.0
outbox_lease_s_min = 2.0
outbox_lease_s_max = 3600.0


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    ray_address: str | None = None  # None: join or start a local Ray (tests); else "host:port"
    ray_namespace: str = DEFAULT_RAY_NAMESPACE
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    inventory_hosts: int = inventory_hosts_default
    # None: people cannot log in (session routes answer 503); API keys work regardless. `voelgoed up` makes one.
    session_secret: str | None = field(default=None, repr=False)
    # engine/ratelimit.py's defaults with VOELGOED_RATE_LIMITS's overrides (docs/api.md "Rate limits").
    rate_limits: Policy = DEFAULT_POLICY
    # The payment provider (the simulator under `voelgoed up`, voelgoed/payments_simulator.py); None: checkout's
    # payment routes answer 404 provider_not_found and paid orders are not fulfilled by this process.
    payments: PaymentsSettings | None = field(default=None, repr=False)
    outbox_lease_s: float = outbox_lease_s_default
    orders_worker: str = ORDERS_WORKER_GATEWAY  # one of ORDERS_WORKER_MODES

    def __post_init__(self) -> None:
        if self.session_secret is not None:
            check_session_secret(self.session_secret)
        if not outbox_lease_s_min <= self.outbox_lease_s <= outbox_lease_s_max:
            raise RuntimeError(
                f"VOELGOED_OUTBOX_LEASE_S must be {outbox_lease_s_min:g}..{outbox_lease_s_max:g} s,"
                f" not {self.outbox_lease_s}"
            )
        check_orders_worker(self.orders_worker)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """URLs from VOELGOED_* variables, else from the data folder's runtime file written by `make up`."""
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("VOELGOED_DATA_DIR", DEFAULT_DATA_DIR))
        runtime = read_runtime_file(data_dir)
        database_url = env.get("VOELGOED_DATABASE_URL") or runtime.get("database_url")
        redis_url = env.get("VOELGOED_REDIS_URL") or runtime.get("redis_url")
        if not database_url or not redis_url:
            raise RuntimeError(
                "no Postgres/Redis: set VOELGOED_DATABASE_URL and VOELGOED_REDIS_URL, or run `make up` first"
            )
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            ray_address=env.get("VOELGOED_RAY_ADDRESS") or runtime.get("ray_address"),
            ray_namespace=env.get("VOELGOED_RAY_NAMESPACE", DEFAULT_RAY_NAMESPACE),
            data_dir=data_dir,
            inventory_hosts=_inventory_hosts(env.get("VOELGOED_INVENTORY_HOSTS", str(inventory_hosts_default))),
            session_secret=env.get("VOELGOED_SESSION_SECRET") or read_session_secret_file(data_dir),
            rate_limits=rate_limits_from(env.get("VOELGOED_RATE_LIMITS")),
            payments=PaymentsSettings.from_env(env),
            outbox_lease_s=_outbox_lease_s(env.get("VOELGOED_OUTBOX_LEASE_S")),
            orders_worker=env.get(ORDERS_WORKER_ENV) or ORDERS_WORKER_GATEWAY,
        )


@dataclass(frozen=True)
class PaymentsSettings:
    provider_url: str
    webhook_secret: str = field(repr=False)
    api_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: dict[str, str]) -> PaymentsSettings | None:
        url, secret = env.get("VOELGOED_PAYMENTS_PROVIDER_URL"), env.get("VOELGOED_PAYMENTS_WEBHOOK_SECRET")
        if not url or not secret:
            return None
        return cls(url, secret, env.get("VOELGOED_PAYMENTS_API_KEY") or None)


def check_session_secret(secret: str) -> str:
    """Refuse a short secret at start-up: a guessable one would let anyone sign tokens for any org."""
    if len(secret.encode()) < session_secret_bytes_min:
        raise RuntimeError(
            f"the session secret (VOELGOED_SESSION_SECRET) must be at least {session_secret_bytes_min} bytes"
        )
    return secret


def check_orders_worker(mode: str) -> str:
    """Checked at start-up: a typo would otherwise leave paid orders without tickets, or fulfilled twice over."""
    if mode not in ORDERS_WORKER_MODES:
        raise RuntimeError(f"{ORDERS_WORKER_ENV} must be one of {', '.join(ORDERS_WORKER_MODES)}, not {mode!r}")
    return mode


def rate_limits_from(raw: str | None) -> Policy:
    """VOELGOED_RATE_LIMITS: a JSON object of overrides, e.g. '{"holds.buyer": {"per_s": 2, "burst": 4}}'. Checked
    at start-up: a typo would otherwise leave a limit silently at its default."""
    if not raw or not raw.strip():
        return DEFAULT_POLICY
    try:
        return policy_with(json.loads(raw))
    except ValueError as error:  # json.JSONDecodeError is one too
        raise RuntimeError(f"VOELGOED_RATE_LIMITS: {error}") from None


def _inventory_hosts(raw: str) -> int:
    """Checked at start-up: every gateway must place events alike, and a bad count would fail every hold."""
    hosts = int(raw) if raw.isdigit() else 0
    if not 1 <= hosts <= inventory_hosts_max:
        raise RuntimeError(f"VOELGOED_INVENTORY_HOSTS must be 1..{inventory_hosts_max}, not {raw!r}")
    return hosts


def _outbox_lease_s(raw: str | None) -> float:
    """Checked at start-up (the range in Settings): a typo would otherwise leave the default silently."""
    if raw is None or not raw.strip():
        return outbox_lease_s_default
    try:
        return float(raw)
    except ValueError:
        raise RuntimeError(f"VOELGOED_OUTBOX_LEASE_S is a number of seconds, not {raw!r}") from None


def read_runtime_file(data_dir: Path) -> dict[str, str]:
    path = data_dir / RUNTIME_FILE_NAME
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text())
    return {k: v for k, v in loaded.items() if isinstance(v, str)}


def read_session_secret_file(data_dir: Path) -> str | None:
    try:
        secret = (data_dir / SESSION_SECRET_FILE_NAME).read_text().strip()
    except FileNotFoundError:
        return None
    return secret or None
