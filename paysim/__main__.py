"""`python -m paysim --port P --webhook-url URL --secret S`: the simulator in the foreground until SIGINT/SIGTERM.

It prints one line `paysim listening on <url>` once it accepts connections, for whoever started it to wait on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys

import uvicorn

from paysim.app import SimConfig, create_app
from paysim.cards import slow_card_s

graceful_shutdown_s = 5
ready_poll_s = 0.01


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m paysim", description="The payment provider simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port (printed at start)")
    parser.add_argument("--webhook-url", required=True, help="where signed webhooks are POSTed")
    parser.add_argument("--secret", help="the webhook signing secret (default: $PAYSIM_SECRET)")
    parser.add_argument("--api-key", help="require `Authorization: Bearer KEY` on the platform's calls")
    parser.add_argument("--public-url", help="the base of confirm_url (default: http://HOST:PORT)")
    parser.add_argument("--slow-card-s", type=float, default=slow_card_s, help="the slow card's delay")
    args = parser.parse_args(argv)
    args.secret = args.secret or os.environ.get("PAYSIM_SECRET")
    if not args.secret:
        parser.error("a webhook secret is required (--secret or PAYSIM_SECRET)")
    if not 0 <= args.slow_card_s <= 600:
        parser.error("--slow-card-s is between 0 and 600")
    return args


async def serve(args: argparse.Namespace) -> None:
    # bound here, before the app exists, so that --port 0 can name its real port in every confirm_url
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    port = sock.getsockname()[1]
    public_url = (args.public_url or f"http://{args.host}:{port}").rstrip("/")
    app = create_app(
        SimConfig(
            public_url=public_url,
            webhook_url=args.webhook_url,
            secret=args.secret.encode(),
            api_key=args.api_key,
            slow_card_s=args.slow_card_s,
        )
    )
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=graceful_shutdown_s, lifespan="on"
    )
    server = uvicorn.Server(config)
    server_task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not server_task.done():
        await asyncio.sleep(ready_poll_s)
    if server.started:
        print(f"paysim listening on {public_url}", flush=True)
    await server_task


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
