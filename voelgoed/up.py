"""`voelgoed up`: the whole platform on this machine, in the foreground, until Ctrl-C.

Postgres and Redis are embedded (under the data folder) unless VOELGOED_DATABASE_URL / VOELGOED_REDIS_URL
name servers; Ray is a local head unless VOELGOED_RAY_ADDRESS names one. Start order is Postgres, Redis,
migrations, Ray, the payment simulator, gateway, demo; stop order is the reverse, each step bounded. The URLs go to
<data_dir>/runtime.json so `voelgoed org create` reaches the same data while this runs. While it serves, an embedded
Postgres or Redis that dies is restarted (voelgoed/store_supervision.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from gateway.http_protocol import HTTP_PROTOCOL
from persistence.migrate import migrate
from voelgoed import embedded, store_supervision
from voelgoed.banner import banner
from voelgoed.demo import ensure_demo
from voelgoed.payments_simulator import PAYSIM_PROCESS_MARKER, start_paysim, stop_paysim
from voelgoed.private_files import read_json, write_private_json
from voelgoed.session_secret import ensure_session_secret
from voelgoed.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_RAY_NAMESPACE,
    ORDERS_WORKER_ACTOR,
    ORDERS_WORKER_ENV,
    RUNTIME_FILE_NAME,
)
from voelgoed.startup_failure import StartupFailed
from voelgoed.ticket_master_key import ensure_ticket_master_key

GATEWAY_APP = "gateway.app:create_app"
RAY_DASHBOARD_PORT = 8265
gateway_workers_default = 2
gateway_ready_s_max = 90.0
gateway_stop_s_max = 15.0
gateway_graceful_shutdown_s = 10  # uvicorn's own cap on draining open requests, under gateway_stop_s_max
ready_poll_s = 0.25
serve_poll_s = 1.0  # how soon a gateway exit or a lost store ends the serving loop
ready_probe_timeout_s = 10.0  # each /readyz probe while waiting for the gateway
stale_stop_s_max = 15.0
fulfilment_stop_s_max = 60.0  # joining Ray, killing the actor, leaving


class ShutdownRequested(Exception):
    """Ctrl-C or SIGTERM arrived: unwind what has started."""


@dataclass(frozen=True)
class UpConfig:
    data_dir: Path
    database_url: str | None  # None: embedded Postgres
    redis_url: str | None  # None: embedded Redis
    ray_address: str | None  # None: a local Ray head
    gateway_host: str
    gateway_port: int
    gateway_workers: int
    dashboard_port: int
    # the ASGI factory uvicorn serves; the load-test baselines (loadtests/baselines/) run under `up` this way
    gateway_app: str = GATEWAY_APP
    # the proxies whose X-Forwarded-For names the client (uvicorn --forwarded-allow-ips); None: trust no header
    forwarded_allow_ips: str | None = None
    paysim_port: int | None = None  # None: a free port

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> UpConfig:
        """Only the environment: runtime.json is this command's output, never its input."""
        return cls(
            data_dir=Path(environ.get("VOELGOED_DATA_DIR", DEFAULT_DATA_DIR)).resolve(),
            database_url=environ.get("VOELGOED_DATABASE_URL") or None,
            redis_url=environ.get("VOELGOED_REDIS_URL") or None,
            ray_address=environ.get("VOELGOED_RAY_ADDRESS") or None,
            gateway_host=environ.get("VOELGOED_GATEWAY_HOST", "127.0.0.1"),
            gateway_port=int(environ.get("VOELGOED_GATEWAY_PORT", "8000")),
            gateway_workers=int(environ.get("VOELGOED_GATEWAY_WORKERS", str(gateway_workers_default))),
            dashboard_port=int(environ.get("VOELGOED_RAY_DASHBOARD_PORT", str(RAY_DASHBOARD_PORT))),
            gateway_app=environ.get("VOELGOED_GATEWAY_APP", GATEWAY_APP),
            forwarded_allow_ips=environ.get("VOELGOED_FORWARDED_ALLOW_IPS") or None,
            paysim_port=int(environ["VOELGOED_PAYSIM_PORT"]) if environ.get("VOELGOED_PAYSIM_PORT") else None,
        )

    @property
    def api_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"


def run_up(environ: Mapping[str, str] | None = None) -> int:
    config = UpConfig.from_env(os.environ if environ is None else environ)
    return asyncio.run(_up(config))


async def _up(config: UpConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    other = _running_up_pid(config.data_dir)
    if other is not None:
        print(f"voelgoed up: already running with {config.data_dir} (pid {other})", file=sys.stderr)
        return 1
    _stop_stale_run(config.data_dir)
    status = 0
    with contextlib.ExitStack() as stack:
        try:
            await _start_and_serve(config, stack, stop)
        except ShutdownRequested:
            pass
        except StartupFailed as error:
            print(f"voelgoed up: {error}", file=sys.stderr)
            status = 1
        print("Stopping: gateway, payment simulator, Ray, Redis, Postgres ...", flush=True)
    (config.data_dir / RUNTIME_FILE_NAME).unlink(missing_ok=True)
    print("Stopped.", flush=True)
    return status


async def _start_and_serve(config: UpConfig, stack: contextlib.ExitStack, stop: asyncio.Event) -> None:
    """Each started service registers its stop on the stack at once, so the stack unwinds in reverse order."""

    def checkpoint() -> None:
        if stop.is_set():
            raise ShutdownRequested

    runtime: dict[str, Any] = {"up_pid": os.getpid()}
    write_private_json(config.data_dir / RUNTIME_FILE_NAME, runtime)
    supervised: list[store_supervision.SupervisedStore] = []  # only the embedded stores: the others are not ours
    database_url, redis_url = config.database_url, config.redis_url
    if database_url is None:
        postgres = await _start_postgres(config.data_dir, stack, runtime)
        supervised.append(store_supervision.supervised_postgres(postgres))
        database_url = postgres.url
    checkpoint()
    if redis_url is None:
        redis = await _start_redis(config.data_dir, stack, runtime)
        supervised.append(store_supervision.supervised_redis(redis))
        redis_url = redis.url
    checkpoint()
    try:
        await migrate(database_url)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise StartupFailed(f"migrations failed: {type(error).__name__}: {error}") from None
    checkpoint()
    ray_address = config.ray_address or await _start_ray(config, stack, runtime)
    runtime |= {"database_url": database_url, "redis_url": redis_url, "ray_address": ray_address}
    write_private_json(config.data_dir / RUNTIME_FILE_NAME, runtime)
    checkpoint()
    webhook_url = f"{config.api_url}/v1/payments/webhooks/simulator"
    paysim = await start_paysim(config.data_dir, config.gateway_host, config.paysim_port, webhook_url)
    stack.callback(_stop_step, "payment simulator", lambda: stop_paysim(paysim))
    runtime |= {"paysim_pid": paysim.process.pid, "paysim_url": paysim.url}
    write_private_json(config.data_dir / RUNTIME_FILE_NAME, runtime)
    checkpoint()
    ensure_ticket_master_key(config.data_dir)  # the gateway and the fulfilment actor read it from the data folder
    env = _gateway_env(config, database_url, redis_url, ray_address, ensure_session_secret(config.data_dir))
    env |= paysim.gateway_env()
    # Payments are configured: checkout's orders worker runs in the one fulfilment actor (actors/fulfilment.py),
    # which the gateway's processes make sure exists, not once per gateway worker process.
    env[ORDERS_WORKER_ENV] = ORDERS_WORKER_ACTOR
    if config.ray_address is not None:  # not our Ray: it would keep the detached actor after we stop
        namespace = env.get("VOELGOED_RAY_NAMESPACE", DEFAULT_RAY_NAMESPACE)
        stack.callback(_stop_step, "fulfilment actor", lambda: _stop_fulfilment_actor(ray_address, namespace))
    gateway = _start_gateway(config, env, stack)
    runtime |= {"gateway_pid": gateway.pid, "gateway_app": config.gateway_app}
    write_private_json(config.data_dir / RUNTIME_FILE_NAME, runtime)
    await _wait_ready(config, gateway, stop)
    demo = await ensure_demo(config.data_dir, config.api_url, database_url)
    checkpoint()
    dashboard_port = config.dashboard_port if config.ray_address is None else None
    announced = banner(
        demo, api_url=config.api_url, data_dir=config.data_dir, dashboard_port=dashboard_port, payments_url=paysim.url
    )
    print(announced, flush=True)
    await _serve_until_stopped(gateway, stop, config.data_dir, supervised, runtime)


async def _start_postgres(
    data_dir: Path, stack: contextlib.ExitStack, runtime: dict[str, Any]
) -> embedded.EmbeddedPostgres:
    print(f"Starting Postgres in {data_dir / 'postgres'} ...", flush=True)
    try:
        postgres = await asyncio.to_thread(embedded.EmbeddedPostgres.start, data_dir / "postgres")
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        raise StartupFailed(f"embedded Postgres did not start: {error}") from None
    stack.callback(_stop_step, "Postgres", postgres.stop)
    runtime |= {"postgres_pid": postgres.pid, "postgres_dir": str(postgres.pgdata)}
    return postgres


async def _start_redis(data_dir: Path, stack: contextlib.ExitStack, runtime: dict[str, Any]) -> embedded.EmbeddedRedis:
    print(f"Starting Redis in {data_dir / 'redis'} ...", flush=True)
    try:
        redis = await asyncio.to_thread(embedded.EmbeddedRedis.start, data_dir / "redis", append_only=True)
    except (OSError, RuntimeError) as error:
        raise StartupFailed(f"embedded Redis did not start: {error}") from None
    stack.callback(_stop_step, "Redis", redis.stop)
    runtime["redis_pid"] = redis.pid
    return redis


async def _start_ray(config: UpConfig, stack: contextlib.ExitStack, runtime: dict[str, Any]) -> str:
    temp_dir = embedded.ray_temp_dir_for(config.data_dir)
    print(f"Starting Ray (dashboard on 127.0.0.1:{config.dashboard_port}, logs in {temp_dir}) ...", flush=True)
    try:
        head = await asyncio.to_thread(embedded.RayHead.start, temp_dir, dashboard_port=config.dashboard_port)
    except (OSError, RuntimeError) as error:
        raise StartupFailed(str(error)) from None
    stack.callback(_stop_step, "Ray", head.stop)
    runtime |= {"ray_session_id": head.session_id, "ray_temp_dir": str(temp_dir)}
    return head.address


def _gateway_env(
    config: UpConfig, database_url: str, redis_url: str, ray_address: str, session_secret: str
) -> dict[str, str]:
    return {
        **os.environ,
        **embedded.RAY_ENV,
        "VOELGOED_DATABASE_URL": database_url,
        "VOELGOED_REDIS_URL": redis_url,
        "VOELGOED_RAY_ADDRESS": ray_address,
        "VOELGOED_SESSION_SECRET": session_secret,
        "VOELGOED_DATA_DIR": str(config.data_dir),
        "VOELGOED_GATEWAY_HOST": config.gateway_host,
        "VOELGOED_GATEWAY_PORT": str(config.gateway_port),
        # several uvicorn workers: /metrics must add up every worker's samples, not show whichever answered
        "PROMETHEUS_MULTIPROC_DIR": str(config.data_dir / "metrics"),
    }


def _start_gateway(config: UpConfig, env: dict[str, str], stack: contextlib.ExitStack) -> subprocess.Popen[bytes]:
    metrics_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    shutil.rmtree(metrics_dir, ignore_errors=True)  # samples of an earlier run's workers must not add up
    metrics_dir.mkdir(parents=True)
    log_path = config.data_dir / "logs" / "gateway.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Starting the gateway on {config.api_url} ({config.gateway_workers} workers, log {log_path}) ...",
          flush=True)  # fmt: skip
    command = [
        sys.executable, "-m", "uvicorn", config.gateway_app, "--factory",
        "--host", config.gateway_host,
        "--port", str(config.gateway_port),
        "--workers", str(config.gateway_workers),
        "--no-access-log",
        "--http", HTTP_PROTOCOL,  # one socket write per answer (gateway/http_protocol.py)
        # X-Forwarded-For only from the proxies named (docs/operations.md): uvicorn would trust 127.0.0.1 by
        # default, letting a local client pick the address its rate limits and audit entries are filed under
        *(["--proxy-headers", f"--forwarded-allow-ips={config.forwarded_allow_ips}"] if config.forwarded_allow_ips
          else ["--no-proxy-headers"]),
        "--timeout-graceful-shutdown", str(gateway_graceful_shutdown_s),
    ]  # fmt: skip
    with open(log_path, "ab") as log:
        gateway = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stack.callback(_stop_step, "gateway", lambda: _stop_gateway(gateway))
    return gateway


def _stop_gateway(gateway: subprocess.Popen[bytes]) -> None:
    """SIGTERM lets uvicorn drain; whatever of its process group outlives the wait is killed."""
    if gateway.poll() is None:
        gateway.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            gateway.wait(gateway_stop_s_max)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(gateway.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        gateway.wait(gateway_stop_s_max)


def _stop_fulfilment_actor(ray_address: str, namespace: str) -> None:
    """The gateway has stopped (it is unwound first); the actor it made goes too, from a short-lived driver (this
    process never joins Ray)."""
    subprocess.run(
        [sys.executable, "-m", "actors.fulfilment", "--stop", ray_address, namespace],
        check=True, timeout=fulfilment_stop_s_max, stdout=subprocess.DEVNULL,
    )


def _stop_step(name: str, stop: Callable[[], None]) -> None:
    print(f"  stopping {name}", flush=True)
    try:
        stop()
    except Exception as error:  # one failed stop must not keep the others from running
        print(f"  stopping {name} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)


async def _wait_ready(config: UpConfig, gateway: subprocess.Popen[bytes], stop: asyncio.Event) -> None:
    deadline = asyncio.get_running_loop().time() + gateway_ready_s_max
    log_path = config.data_dir / "logs" / "gateway.log"
    async with httpx.AsyncClient(base_url=config.api_url, timeout=ready_probe_timeout_s) as http:
        while asyncio.get_running_loop().time() < deadline:
            if stop.is_set():
                raise ShutdownRequested
            if gateway.poll() is not None:
                raise StartupFailed(f"the gateway exited with status {gateway.returncode}; see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(ready_poll_s)
    raise StartupFailed(f"the gateway was not ready within {gateway_ready_s_max:.0f}s; see {log_path}")


async def _serve_until_stopped(
    gateway: subprocess.Popen[bytes],
    stop: asyncio.Event,
    data_dir: Path,
    stores: list[store_supervision.SupervisedStore],
    runtime: dict[str, Any],
) -> None:
    """Until Ctrl-C; the gateway exiting, or an embedded store that died and could not be restarted, ends it
    with StartupFailed (exit 1)."""
    halt = asyncio.Event()
    supervisor = asyncio.create_task(store_supervision.supervise(stores, data_dir, runtime, halt))
    try:
        while not stop.is_set():
            if gateway.poll() is not None:
                log_path = data_dir / "logs" / "gateway.log"
                raise StartupFailed(f"the gateway exited with status {gateway.returncode}; see {log_path}")
            if supervisor.done():
                supervisor.result()  # raises StoreRestartFailed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=serve_poll_s)
    finally:
        halt.set()
        # A restart in flight finishes (it is bounded) before the stack stops that store.
        await asyncio.wait([supervisor])
        if not supervisor.cancelled():
            supervisor.exception()  # retrieved: a failure seen after another one is not logged again at exit


def _running_up_pid(data_dir: Path) -> int | None:
    pid = read_json(data_dir / RUNTIME_FILE_NAME).get("up_pid")
    if isinstance(pid, int) and pid != os.getpid() and embedded.process_matches(pid, "voelgoed"):
        return pid
    return None


def _stop_stale_run(data_dir: Path) -> None:
    """A previous `voelgoed up` that was killed outright leaves its runtime.json and processes behind."""
    stale = read_json(data_dir / RUNTIME_FILE_NAME)
    if not stale:
        return
    print("Stopping what a previous run left behind ...", flush=True)
    if isinstance(stale.get("gateway_pid"), int):
        app = stale.get("gateway_app")
        marker = app if isinstance(app, str) else GATEWAY_APP
        embedded.stop_stale_process(stale["gateway_pid"], marker, stale_stop_s_max)
    if isinstance(stale.get("paysim_pid"), int):
        embedded.stop_stale_process(stale["paysim_pid"], PAYSIM_PROCESS_MARKER, stale_stop_s_max)
    if isinstance(stale.get("redis_pid"), int):
        embedded.stop_stale_process(stale["redis_pid"], "redis-server", stale_stop_s_max)
    session_id, temp_dir = stale.get("ray_session_id"), stale.get("ray_temp_dir")
    if isinstance(session_id, int) and isinstance(temp_dir, str):
        pids = embedded.session_pids(session_id)
        if any(embedded.process_matches(pid, temp_dir) for pid in pids):
            embedded.stop_ray_session(session_id, stale_stop_s_max)
    (data_dir / RUNTIME_FILE_NAME).unlink(missing_ok=True)
