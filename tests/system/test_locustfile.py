"""The Locust flash-sale journeys (loadtests/locustfile.py) against the real gateway, run as a subprocess.

Importing locust monkey-patches the process with gevent, so this module never imports it (nor the locustfile): it
runs the `locust` command headless for a few seconds and reads the stats it writes with --json-file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.system.conftest import create_published_event
from tests.system.waiting import eventually

locust_command = str(Path(sys.executable).parent / "locust")
locustfile = str(Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py")
run_s = 8
users = 8  # with Buyer:Watcher weights 10:1, Locust's dispatcher makes the 5th user a Watcher
short_run_s = 4
short_run_users = 3
refused_run_s = 30  # long, so that a run that fails to quit at its start shows
locust_exit_s_max = 60.0  # the run plus Locust's start-up and shutdown, with a wide margin
output_tail_chars = 4000
setup_failed_exit_code = 2  # the locustfile's code for a run that could not start

Stats = dict[tuple[str, str], dict[str, Any]]


async def _locust(tmp_path: Path, gateway_url: str, key: str, users: int, run_s: int,
                  *arguments: str) -> tuple[int, str]:
    """Runs Locust headless with its stats going to tmp_path/stats.json; returns its exit code and its log's end."""
    command = [locust_command, "-f", locustfile, "--headless", "--only-summary", "-u", str(users), "-r", str(users),
               "-t", f"{run_s}s", "--host", gateway_url, "--key", key, "--json-file", str(tmp_path / "stats"),
               *arguments]
    # The key and event come from the command line only, whatever the caller's shell exports.
    env = {name: value for name, value in os.environ.items() if name not in ("VOELGOED_KEY", "VOELGOED_EVENT_ID")}
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    try:
        output, _ = await asyncio.wait_for(process.communicate(), locust_exit_s_max)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")[-output_tail_chars:]


async def _run_locust(tmp_path: Path, gateway_url: str, api_key: str, users: int, run_s: int,
                      *arguments: str) -> Stats:
    """A run that must exit 0 (Locust's code for a run without failures) with no failure in its stats; returns
    them by (method, name)."""
    code, log = await _locust(tmp_path, gateway_url, api_key, users, run_s, *arguments)
    assert code == 0, log
    entries = json.loads((tmp_path / "stats.json").read_text())
    stats: Stats = {(entry["method"], entry["name"]): entry for entry in entries}
    failures = {name: entry["num_failures"] for name, entry in stats.items() if entry["num_failures"]}
    assert not failures, (failures, log)
    return stats


def _count(stats: Stats, method: str, name: str) -> int:
    entry = stats.get((method, name))
    return int(entry["num_requests"]) if entry else 0


async def test_flash_sale_journeys_on_a_published_event(client: httpx.AsyncClient, gateway_url: str, api_key: str,
                                                        tmp_path: Path) -> None:
    event_id = await create_published_event(client, seats=200, ga=500)

    stats = await _run_locust(tmp_path, gateway_url, api_key, users, run_s, "--event-id", event_id,
                              "--confirm-ratio", "0.7", "--release-ratio", "0.15", "--abandon-ratio", "0.15")

    assert _count(stats, "POST", "hold seats") + _count(stats, "POST", "hold ga") > 0, stats.keys()
    assert _count(stats, "POST", "confirm") > 0, stats.keys()
    assert _count(stats, "GET", "availability") > 0, stats.keys()
    assert _count(stats, "WS", "ws snapshot") > 0, stats.keys()
    assert _count(stats, "WS", "ws delta") > 0, stats.keys()
    # Each confirm Locust counted under "confirm" was a 201 (retried 503s would be failures): at least a ticket sold.
    async def sold() -> int:
        availability = (await client.get(f"/v1/events/{event_id}/availability")).json()
        return sum(int(t["sold"]) for t in availability["ticket_types"])

    confirmed = _count(stats, "POST", "confirm")
    assert await eventually(sold, lambda n: n >= confirmed) >= confirmed


async def test_without_an_event_id_it_creates_one(gateway_url: str, api_key: str, tmp_path: Path) -> None:
    stats = await _run_locust(tmp_path, gateway_url, api_key, short_run_users, short_run_s,
                              "--event-seats", "60", "--event-ga", "100")

    assert _count(stats, "GET", "availability") > 0, stats.keys()
    assert _count(stats, "POST", "hold seats") + _count(stats, "POST", "hold ga") > 0, stats.keys()


async def test_a_refused_key_stops_the_run_with_the_setup_exit_code(gateway_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    code, log = await _locust(tmp_path, gateway_url, "vk_nope_nope", short_run_users, refused_run_s)

    assert code == setup_failed_exit_code, log
    assert "flash-sale setup failed" in log and "401" in log, log
    assert time.monotonic() - started < refused_run_s / 2, "the run went on instead of quitting at its start"
