"""Services for the whole suite, started by the suite itself so that no run depends on another.

- `database_url`: a fresh, migrated database on a throwaway embedded Postgres, or, when VOELGOED_DATABASE_URL
  was set before the run, a fresh uniquely named database on that server (dropped afterwards).
- `redis_url`: a throwaway embedded Redis, or VOELGOED_REDIS_URL's database, flushed before and after.
- `ray_address`: a Ray head of this run's own, on free ports (never 6379); started only if a test asks.
- `settings`: Settings built from the three.  `clean_redis`: flushes Redis before the test.

Each fixture also exports its VOELGOED_* variable, so subprocesses (a gateway, the CLI) find the same services.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from persistence.migrate import migrate
from tests.fakes import TEST_SESSION_SECRET
from voelgoed import embedded
from voelgoed.settings import Settings

# Read before any fixture changes the environment: these choose external servers over embedded ones.
EXTERNAL_DATABASE_URL = os.environ.get("VOELGOED_DATABASE_URL") or None
EXTERNAL_REDIS_URL = os.environ.get("VOELGOED_REDIS_URL") or None
_SERVICE_VARIABLES = ("VOELGOED_DATABASE_URL", "VOELGOED_REDIS_URL", "VOELGOED_RAY_ADDRESS", "RAY_ADDRESS")
ray_test_cpus = 4
ray_test_object_store_bytes = 512 * 1024 * 1024
# Parallel runs (pytest-xdist, `make test`): each worker is a session of its own with its own services. Its Ray
# workers bind ports of a range of its own, outside Ray's default 10002-19999 (a `make up` or a benchmark beside the
# run) and below the kernel's ephemeral ports (32768 up, where free_tcp_port picks).
ray_worker_ports_first = 20000
ray_worker_ports_each = 1500
ray_worker_port_ranges = 8

# In a parallel run the workers share two cores with each other's Postgres, Redis and Ray: Hypothesis's timing checks
# (the 200 ms deadline, the "input generation is slow" health check) then fail on the machine's load, not on the
# code. Every other setting (examples, steps, database) stays as each test has it.
if os.environ.get("PYTEST_XDIST_WORKER"):
    hypothesis_settings.register_profile(
        "parallel", deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    hypothesis_settings.load_profile("parallel")
TEST_DATABASE_PREFIX = "voelgoed_test_"
# the payment simulator as a real subprocess and a webhook receiver (tests/paysim_fixtures.py)
pytest_plugins = ("tests.paysim_fixtures",)


def pytest_configure(config: pytest.Config) -> None:
    """A parallel run (pytest-xdist, as make test runs it) gives each worker its own services; an external Redis
    database would be one for all of them."""
    parallel = bool(getattr(config.option, "numprocesses", None)) or hasattr(config, "workerinput")
    if EXTERNAL_REDIS_URL is not None and parallel:
        raise pytest.UsageError(
            "VOELGOED_REDIS_URL names one Redis database, which parallel workers would flush under each other: "
            "run serially (make test TEST_WORKERS=0, or pytest -n0)"
        )


@pytest.fixture(scope="session")
def services_root() -> Iterator[Path]:
    """One folder for this run's services, directly under /tmp: Postgres' system user must traverse its
    parents, and socket paths must stay short."""
    root = Path(tempfile.mkdtemp(prefix="voelgoed-test-", dir=embedded.RAY_TEMP_ROOT))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def service_env(services_root: Path) -> Iterator[pytest.MonkeyPatch]:
    """Nothing from the caller's shell or a running `make up` (its runtime.json) leaks into the run."""
    with pytest.MonkeyPatch.context() as patch:
        for name in _SERVICE_VARIABLES:
            patch.delenv(name, raising=False)
        patch.setenv("VOELGOED_DATA_DIR", str(services_root / "data"))
        # Gateways started as subprocesses sign sessions like the in-process ones (tests.fakes.running_gateway).
        patch.setenv("VOELGOED_SESSION_SECRET", TEST_SESSION_SECRET)
        for name, value in embedded.RAY_ENV.items():
            patch.setenv(name, value)
        yield patch


@pytest.fixture(scope="session")
def postgres_server_url(services_root: Path) -> Iterator[str]:
    """A URL of the Postgres server the run's database lives on."""
    if EXTERNAL_DATABASE_URL is not None:
        yield EXTERNAL_DATABASE_URL
        return
    server = embedded.EmbeddedPostgres.start(services_root / "postgres")
    try:
        yield server.url
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_url(postgres_server_url: str, service_env: pytest.MonkeyPatch) -> AsyncIterator[str]:
    name = TEST_DATABASE_PREFIX + secrets.token_hex(6)
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = embedded.with_database(postgres_server_url, name)
    await migrate(url)
    service_env.setenv("VOELGOED_DATABASE_URL", url)
    try:
        yield url
    finally:
        admin = await asyncpg.connect(postgres_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def redis_url(services_root: Path, service_env: pytest.MonkeyPatch) -> Iterator[str]:
    if EXTERNAL_REDIS_URL is not None:
        _flush(EXTERNAL_REDIS_URL)
        service_env.setenv("VOELGOED_REDIS_URL", EXTERNAL_REDIS_URL)
        yield EXTERNAL_REDIS_URL
        _flush(EXTERNAL_REDIS_URL)
        return
    server = embedded.EmbeddedRedis.start(services_root / "redis", append_only=False)
    service_env.setenv("VOELGOED_REDIS_URL", server.url)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ray_address(service_env: pytest.MonkeyPatch) -> Iterator[str]:
    """Its own temp dir under /tmp (Ray's socket paths must be short), and its own ports, so runs never meet."""
    temp_dir = Path(tempfile.mkdtemp(prefix="vgray-", dir=embedded.RAY_TEMP_ROOT))
    head = embedded.RayHead.start(temp_dir, num_cpus=ray_test_cpus, object_store_bytes=ray_test_object_store_bytes,
                                  worker_ports=_ray_worker_ports())
    service_env.setenv("VOELGOED_RAY_ADDRESS", head.address)
    service_env.setenv("RAY_ADDRESS", head.address)
    try:
        yield head.address
    finally:
        _disconnect_ray_driver()
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, ray_address: str, services_root: Path) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        ray_address=ray_address,
        data_dir=services_root / "data",
        session_secret=TEST_SESSION_SECRET,
    )


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    """Flushes the run's Redis database before the test; returns its URL."""
    _flush(redis_url)
    return redis_url


def _flush(url: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


def _ray_worker_ports() -> tuple[int, int] | None:
    """This xdist worker's (gw0, gw1, ...) range of Ray worker ports; None (Ray's default) in a serial run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return None
    first = ray_worker_ports_first + (int(worker[2:]) % ray_worker_port_ranges) * ray_worker_ports_each
    return first, first + ray_worker_ports_each - 1


def _disconnect_ray_driver() -> None:
    """A test process that joined this Ray as a driver leaves it first, or its exit waits on a dead head."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        with contextlib.suppress(Exception):
            ray.shutdown()
