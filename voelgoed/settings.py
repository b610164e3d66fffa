"""Process settings, read once from the environment (and the runtime file `make up` leaves behind)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

RUNTIME_FILE_NAME = "runtime.json"
DEFAULT_DATA_DIR = ".voelgoed"
DEFAULT_RAY_NAMESPACE = "voelgoed"
inventory_hosts_default = 4
inventory_hosts_max = 256  # actors.placement.inventory_hosts_max; not imported: settings load before Ray


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str
    ray_address: str | None = None  # None: join or start a local Ray (tests); else "host:port"
    ray_namespace: str = DEFAULT_RAY_NAMESPACE
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    inventory_hosts: int = inventory_hosts_default

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
        )


def _inventory_hosts(raw: str) -> int:
    """Checked at start-up: every gateway must place events alike, and a bad count would fail every hold."""
    hosts = int(raw) if raw.isdigit() else 0
    if not 1 <= hosts <= inventory_hosts_max:
        raise RuntimeError(f"VOELGOED_INVENTORY_HOSTS must be 1..{inventory_hosts_max}, not {raw!r}")
    return hosts


def read_runtime_file(data_dir: Path) -> dict[str, str]:
    path = data_dir / RUNTIME_FILE_NAME
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text())
    return {k: v for k, v in loaded.items() if isinstance(v, str)}
