"""The payment simulator beside the gateway under `voelgoed up`: `python -m paysim` as its own process.

Its webhook secret and API key are made on the first run and kept in the data folder (like the session secret);
the gateway learns its URL, secret and key from VOELGOED_PAYMENTS_* (the checkout builds its
`SimulatorProvider` from them). Started before the gateway so its URL is known; its webhooks go to the gateway's
`POST /v1/payments/webhooks/simulator` and are retried until the gateway answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from voelgoed import embedded
from voelgoed.private_files import read_json, write_private_json
from voelgoed.startup_failure import StartupFailed

PAYSIM_KEYS_FILE_NAME = "paysim.json"
PAYSIM_PROCESS_MARKER = "paysim"
paysim_ready_s_max = 20.0
paysim_stop_s_max = 10.0
paysim_probe_s_max = 2.0
paysim_poll_s = 0.1
paysim_secret_bytes = 32


@dataclass(frozen=True)
class PaysimKeys:
    webhook_secret: str
    api_key: str


@dataclass(frozen=True)
class RunningPaysim:
    url: str
    keys: PaysimKeys
    process: subprocess.Popen[bytes]

    def gateway_env(self) -> dict[str, str]:
        return {
            "VOELGOED_PAYMENTS_PROVIDER_URL": self.url,
            "VOELGOED_PAYMENTS_WEBHOOK_SECRET": self.keys.webhook_secret,
            "VOELGOED_PAYMENTS_API_KEY": self.keys.api_key,
        }


def ensure_paysim_keys(data_dir: Path) -> PaysimKeys:
    kept = read_json(data_dir / PAYSIM_KEYS_FILE_NAME)
    secret, key = kept.get("webhook_secret"), kept.get("api_key")
    if isinstance(secret, str) and isinstance(key, str) and secret and key:
        return PaysimKeys(secret, key)
    keys = PaysimKeys(secrets.token_urlsafe(paysim_secret_bytes), "sk_sim_" + secrets.token_urlsafe(24))
    kept = {"webhook_secret": keys.webhook_secret, "api_key": keys.api_key}
    write_private_json(data_dir / PAYSIM_KEYS_FILE_NAME, kept)
    return keys


async def start_paysim(data_dir: Path, host: str, port: int | None, webhook_url: str) -> RunningPaysim:
    """Running and answering, or StartupFailed (and nothing left running) within `paysim_ready_s_max`."""
    keys = ensure_paysim_keys(data_dir)
    port = port or embedded.free_tcp_port(host)
    url = f"http://{host}:{port}"
    log_path = data_dir / "logs" / "paysim.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Starting the payment simulator on {url} (log {log_path}) ...", flush=True)
    command = [
        sys.executable, "-m", "paysim", "--host", host, "--port", str(port), "--webhook-url", webhook_url,
        "--api-key", keys.api_key,
    ]  # fmt: skip
    env = {**os.environ, "PAYSIM_SECRET": keys.webhook_secret}  # not on the command line, where ps shows it
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningPaysim(url=url, keys=keys, process=process)
    try:
        await _wait_ready(running, log_path)
    except BaseException:
        stop_paysim(running)
        raise
    return running


def stop_paysim(running: RunningPaysim) -> None:
    process = running.process
    if process.poll() is None:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(paysim_stop_s_max)
    if process.poll() is None:
        process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(paysim_stop_s_max)


async def _wait_ready(running: RunningPaysim, log_path: Path) -> None:
    deadline = asyncio.get_running_loop().time() + paysim_ready_s_max
    async with httpx.AsyncClient(base_url=running.url, timeout=paysim_probe_s_max) as http:
        while asyncio.get_running_loop().time() < deadline:
            if running.process.poll() is not None:
                raise StartupFailed(f"the payment simulator exited ({running.process.returncode}); see {log_path}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/_sim/health")).status_code == 200:
                    return
            await asyncio.sleep(paysim_poll_s)
    raise StartupFailed(f"the payment simulator was not ready within {paysim_ready_s_max:.0f}s; see {log_path}")
