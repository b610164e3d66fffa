"""The platform a sale runs against: started here exactly as `make up` starts it, or one already running.

Starting runs `voelgoed up` in a subprocess on a throwaway data folder and free ports (embedded Postgres and
Redis unless URLs are given, a local Ray, the gateway's uvicorn workers), with the gateway's ASGI factory chosen
by the mode: the engine's own, or a baseline's (loadtests/baselines/). Stopping sends it Ctrl-C, bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from loadtests.flashsale.scenario import Scenario
from persistence.access.orgs import create_org
from voelgoed.demo import DEMO_FILE_NAME
from voelgoed.embedded import RAY_ENV, RAY_TEMP_ROOT, free_tcp_ports
from voelgoed.private_files import read_json
from voelgoed.settings import DEFAULT_RAY_NAMESPACE, RUNTIME_FILE_NAME
from voelgoed.up import GATEWAY_APP

GATEWAY_APPS = {
    "engine": GATEWAY_APP,
    "postgres": "loadtests.baselines.postgres:create_app",
    "redis-lua": "loadtests.baselines.redis_lua:create_app",
}
up_ready_s_max = 240.0
up_stop_s_max = 90.0
group_stop_s_max = 5.0
ready_poll_s = 0.25
ORG_NAME = "Flash-sale harness"


@dataclass(frozen=True)
class Platform:
    url: str
    database_url: str
    redis_url: str
    ray_address: str | None
    ray_namespace: str
    log_dir: Path | None  # where the started platform's logs are; None for --target
    pid: int | None = None  # the `voelgoed up` process the harness started; None for --target
    paysim_url: str = ""  # the payment simulator's (--checkout's audit counts its captures)
    data_dir: Path | None = None  # the started platform's data folder (runtime.json: its pids); None for --target


@contextlib.contextmanager
def platform(scenario: Scenario) -> Iterator[Platform]:
    if scenario.target:
        assert scenario.database_url and scenario.redis_url  # scenario.check() insists
        yield Platform(scenario.target.rstrip("/"), scenario.database_url, scenario.redis_url,
                       scenario.ray_address, DEFAULT_RAY_NAMESPACE, None, paysim_url=scenario.paysim_url or "")
        return
    data_dir = Path(tempfile.mkdtemp(prefix="vg-flashsale-", dir=RAY_TEMP_ROOT))
    port, dashboard_port = free_tcp_ports(2)
    up = _start_up(scenario, data_dir, port, dashboard_port)
    failed = True
    try:
        yield _wait_up(up, data_dir, f"http://127.0.0.1:{port}")
        failed = False
    finally:
        _stop_up(up)
        if failed or scenario.keep_logs:
            print(f"flashsale: the platform's logs are kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


async def create_tenant(database_url: str) -> tuple[str, str]:
    """A fresh org of the sale's own and its owner key: nothing of an earlier run is in its way."""
    conn = await asyncpg.connect(database_url)
    try:
        return await create_org(conn, ORG_NAME)
    finally:
        await conn.close()


def _start_up(scenario: Scenario, data_dir: Path, port: int, dashboard_port: int) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("VOELGOED_") and name != "RAY_ADDRESS"} | RAY_ENV
    env |= {
        "VOELGOED_DATA_DIR": str(data_dir),
        "VOELGOED_GATEWAY_HOST": "127.0.0.1",
        "VOELGOED_GATEWAY_PORT": str(port),
        "VOELGOED_RAY_DASHBOARD_PORT": str(dashboard_port),
        "VOELGOED_GATEWAY_WORKERS": str(scenario.gateway_workers),
        "VOELGOED_GATEWAY_APP": GATEWAY_APPS[scenario.mode],
    }
    if scenario.database_url:
        env["VOELGOED_DATABASE_URL"] = scenario.database_url
    if scenario.redis_url:
        env["VOELGOED_REDIS_URL"] = scenario.redis_url
    log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - the child writes it for its whole life
    with log:
        return subprocess.Popen([sys.executable, "-m", "voelgoed.cli", "up"], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_up(up: subprocess.Popen[bytes], data_dir: Path, url: str) -> Platform:
    deadline = time.monotonic() + up_ready_s_max
    while time.monotonic() < deadline:
        if up.poll() is not None:
            raise RuntimeError(f"`voelgoed up` exited ({up.returncode}): {_tail(data_dir / 'up.log')}")
        demo, runtime = read_json(data_dir / DEMO_FILE_NAME), read_json(data_dir / RUNTIME_FILE_NAME)
        if demo.get("event_id") and runtime.get("database_url"):
            return Platform(
                url=url, database_url=runtime["database_url"], redis_url=runtime["redis_url"],
                ray_address=runtime.get("ray_address"), ray_namespace=DEFAULT_RAY_NAMESPACE,
                log_dir=data_dir / "logs", pid=up.pid, paysim_url=runtime.get("paysim_url", ""), data_dir=data_dir,
            )
        time.sleep(ready_poll_s)
    raise RuntimeError(f"`voelgoed up` was not ready in {up_ready_s_max:.0f}s: {_tail(data_dir / 'up.log')}")


def _stop_up(up: subprocess.Popen[bytes]) -> None:
    """Ctrl-C lets `up` stop its services in order; whatever of its process group outlives it is killed, so
    nothing of one run (a uvicorn worker, say) takes CPU or ports from the next."""
    if up.poll() is None:
        up.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            up.wait(up_stop_s_max)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(up.pid, signum)
        except ProcessLookupError:
            break  # nothing of the group is left
        deadline = time.monotonic() + group_stop_s_max
        while _group_alive(up.pid) and time.monotonic() < deadline:
            time.sleep(ready_poll_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        up.wait(group_stop_s_max)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True



def _tail(path: Path, chars: int = 3_000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""

