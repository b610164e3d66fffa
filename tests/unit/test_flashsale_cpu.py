"""The harness's CPU meter counts the platform's processes (the `voelgoed up` tree and everything outside the
harness) and never the harness itself or its load generators."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from loadtests.flashsale.cpu import CpuMeter, role_of

burn_s = 0.3
_BURN = f"import time\nt = time.process_time()\nwhile time.process_time() - t < {burn_s}: pass\ntime.sleep(30)"


def _burner() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _BURN])


def _until_burnt(process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        times = psutil.Process(process.pid).cpu_times()
        if times.user + times.system >= burn_s:
            return
        time.sleep(0.05)
    raise AssertionError("the burner never burnt its CPU")


def test_the_platform_tree_is_counted() -> None:
    meter = CpuMeter(None)
    meter.start()
    platform = _burner()
    try:
        meter.platform_pid = platform.pid
        _until_burnt(platform)
        assert meter.seconds() >= burn_s * 0.9
    finally:
        platform.kill()
        platform.wait()


def test_the_harness_and_its_generators_are_not() -> None:
    generator = _burner()  # a child of the harness outside the platform's tree: a load generator
    try:
        meter = CpuMeter(None)
        meter.start()
        pids = {pid for pid, _ in meter._snapshot()}
        assert os.getpid() not in pids and generator.pid not in pids
    finally:
        generator.kill()
        generator.wait()


def test_the_meter_splits_its_seconds_by_role() -> None:
    meter = CpuMeter(None)
    meter.start()
    platform = _burner()
    try:
        meter.platform_pid = platform.pid
        _until_burnt(platform)
        by_role = meter.seconds_by_role()
        assert by_role.get("other:python", 0) + by_role.get(role_of("python3", ["python3", "-c"]), 0) >= burn_s * 0.9
        assert abs(sum(by_role.values()) - meter.seconds()) < 0.2
    finally:
        platform.kill()
        platform.wait()


def test_roles_name_the_platforms_processes() -> None:
    assert role_of("ray::EventInven", ["ray::EventInventory.call_batch"]) == "ray::EventInventory"
    assert role_of("ray::IDLE", ["ray::IDLE"]) == "ray::IDLE"
    assert role_of("postgres", ["postgres: voelgoed voelgoed 127.0.0.1(5000) idle"]) == "postgres"
    assert role_of("redis-server", ["/x/redis-server *:7000"]) == "redis"
    assert role_of("raylet", ["/x/raylet", "--node"]) == "ray:raylet"
    assert role_of("python3.11", ["python", "-m", "uvicorn", "gateway.app:create_app"]) == "gateway"
    spawned = ["python", "-c", "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5)"]
    assert role_of("python3.11", spawned) == "gateway"  # a uvicorn worker
    assert role_of("python3.11", ["python", "-m", "paysim", "--port", "1"]) == "paysim"
    assert role_of("bash", ["bash"]) == "other:bash"
