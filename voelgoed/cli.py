"""The `voelgoed` command: `voelgoed up` (what `make up` runs) and `voelgoed org create NAME [--json]`.

Exit codes: 0 done, 2 bad usage (argparse's own), 1 failure with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import asyncpg

from engine import limits
from persistence.db import connect_timeout_s
from persistence.migrate import migrate
from persistence.orgs import create_org
from voelgoed import platform
from voelgoed.settings import Settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the user can act on; its message is printed as the one line on stderr."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "org" and not 1 <= len(args.name) <= limits.name_chars_max:
        parser.error(f"NAME must be 1..{limits.name_chars_max} characters")
    try:
        if args.command == "up":
            return platform.run_up()
        return _org_create(args.name, as_json=args.json)
    except CliError as error:
        print(f"voelgoed: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voelgoed", description="VoelgoedEvents platform commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up", help="start Postgres, Redis, Ray and the gateway on this machine, with a demo org; Ctrl-C stops"
    )
    org = commands.add_parser("org", help="manage organizations")
    org_commands = org.add_subparsers(dest="org_command", required=True, metavar="ORG_COMMAND")
    create = org_commands.add_parser("create", help="create an organization and print its owner API key once")
    create.add_argument("name", metavar="NAME", help="the organization's display name")
    create.add_argument("--json", action="store_true", help='print exactly {"org_id": ..., "api_key": ...}')
    return parser


def _org_create(name: str, *, as_json: bool) -> int:
    try:
        settings = Settings.from_env()
    except RuntimeError:
        raise CliError("no Postgres: run `make up` (or set VOELGOED_DATABASE_URL and VOELGOED_REDIS_URL)") from None
    org_id, api_key = asyncio.run(_create_org(settings.database_url, name))
    if as_json:
        print(json.dumps({"org_id": org_id, "api_key": api_key}))
    else:
        print(f"org_id:  {org_id}\napi_key: {api_key}\nThe key is shown only this once: keep it safe.")
    return EXIT_OK


async def _create_org(database_url: str, name: str) -> tuple[str, str]:
    try:
        await migrate(database_url)  # idempotent: lets the command work on a fresh database too
        conn = await asyncpg.connect(database_url, timeout=connect_timeout_s)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise CliError(f"no Postgres ({type(error).__name__}): run `make up` or check VOELGOED_DATABASE_URL") from None
    try:
        return await create_org(conn, name)
    except asyncpg.PostgresError as error:
        raise CliError(f"could not create the organization: {type(error).__name__}: {error}") from None
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
