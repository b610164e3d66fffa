"""The `voelgoed` command:

- `voelgoed up` (what `make up` runs);
- `voelgoed org create NAME [--json]`: an organization and its owner API key (shown once);
- `voelgoed user create EMAIL --org ORG --role ROLE [--password-stdin] [--json]`: an active member (a new person,
  or one who already has a password in another org: the operator vouches, no invitation); a new person without a
  password gets an invitation token, printed once, that sets it;
- `voelgoed key create ORG --name N --scopes a,b [--kind secret|publishable] [--expires-at RFC3339] [--json]`:
  an API key, shown once;
- `voelgoed audit verify ORG [--json]`: recompute the org's audit hash chain;
- `voelgoed ledger verify ORG [--json]`: check that every one of the org's ledger transactions balances per
  currency, and print the balances.
- `voelgoed ledger balances ORG [--currency C] [--json]`: every account's balance, per currency (zeros included),
  as GET /v1/ledger/balances answers it.

The CLI acts as the platform itself (the audit log's actor "system:cli"), so it may grant any scope and role.
It runs the migrations first (idempotent), then works as the platform's database role, under row-level security.

Exit codes: 0 done (for `audit verify`: the chain is intact; `ledger verify`: every transaction balances), 1 failure
with one line on stderr (for `audit verify`: the chain is broken, naming the first broken entry; `ledger verify`:
a transaction does not balance, naming it), 2 bad usage or bad input, with one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg

from engine import limits
from engine.access.passwords import hash_password, password_problem
from engine.access.rules import KEY_KINDS, ROLES, SCOPES, KeyKind, key_expiry_problem, key_scope_problems
from persistence import audit, ledger
from persistence.access import apikeys, invitations, memberships, users
from persistence.access.orgs import CLI_ACTOR, create_org
from persistence.db import connect
from persistence.migrate import migrate
from persistence.tenancy import OrgDb, org_transaction, require_org, unscoped
from services import ledger as ledger_cases
from voelgoed.settings import Settings
from voelgoed.up import run_up

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
SYSTEM_ACTOR = audit.Actor("system", CLI_ACTOR)
CREATED_BY = f"system:{CLI_ACTOR}"
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_ORG_RE = re.compile(r"org_[0-9a-f]{32}")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
password_stdin_bytes_max = 4_096
T = TypeVar("T")


class CliError(Exception):
    """A failure the user can act on; its message is printed as the one line on stderr (exit 1)."""


class BadInput(Exception):
    """Input the command refuses (exit 2): an unknown org, a bad scope, a short password ..."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return run_up()
        handler = _HANDLERS[(args.command, args.subcommand)]
        return handler(args)
    except BadInput as error:
        print(f"voelgoed: {error}", file=sys.stderr)
        return EXIT_USAGE
    except CliError as error:
        print(f"voelgoed: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voelgoed", description="VoelgoedEvents platform commands")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "up", help="start Postgres, Redis, Ray and the gateway on this machine, with a demo org; Ctrl-C stops"
    )
    json_help = "print one JSON object instead of text"

    org = commands.add_parser("org", help="manage organizations")
    org_commands = org.add_subparsers(dest="subcommand", required=True, metavar="ORG_COMMAND")
    create = org_commands.add_parser("create", help="create an organization and print its owner API key once")
    create.add_argument("name", metavar="NAME", help="the organization's display name")
    create.add_argument("--json", action="store_true", help='print exactly {"org_id": ..., "api_key": ...}')

    user = commands.add_parser("user", help="manage people")
    user_commands = user.add_subparsers(dest="subcommand", required=True, metavar="USER_COMMAND")
    create = user_commands.add_parser(
        "create", help="make a person a member of an org; without a password, print an invitation token once"
    )
    create.add_argument("email", metavar="EMAIL")
    create.add_argument("--org", required=True, metavar="ORG", help="the org id (org_...)")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument(
        "--password-stdin", action="store_true", help="read the new person's password from standard input"
    )
    create.add_argument("--json", action="store_true", help=json_help)

    key = commands.add_parser("key", help="manage API keys")
    key_commands = key.add_subparsers(dest="subcommand", required=True, metavar="KEY_COMMAND")
    create = key_commands.add_parser("create", help="create an API key for an org and print it once")
    create.add_argument("org", metavar="ORG", help="the org id (org_...)")
    create.add_argument("--name", required=True, metavar="N")
    create.add_argument("--scopes", required=True, metavar="a,b", help=f"comma-separated, of: {', '.join(SCOPES)}")
    create.add_argument("--kind", choices=KEY_KINDS, default=KeyKind.SECRET.value)
    create.add_argument("--expires-at", metavar="RFC3339", help="e.g. 2027-01-31T00:00:00Z; default: never")
    create.add_argument("--json", action="store_true", help=json_help)

    audit_parser = commands.add_parser("audit", help="the audit log")
    audit_commands = audit_parser.add_subparsers(dest="subcommand", required=True, metavar="AUDIT_COMMAND")
    verify = audit_commands.add_parser(
        "verify", help="recompute an org's audit hash chain; exit 1 naming the first broken entry"
    )
    verify.add_argument("org", metavar="ORG", help="the org id (org_...)")
    verify.add_argument("--json", action="store_true", help=json_help)

    ledger_parser = commands.add_parser("ledger", help="the double-entry ledger")
    ledger_commands = ledger_parser.add_subparsers(dest="subcommand", required=True, metavar="LEDGER_COMMAND")
    verify = ledger_commands.add_parser(
        "verify", help="check every ledger transaction of an org balances per currency; exit 1 naming any that not"
    )
    verify.add_argument("org", metavar="ORG", help="the org id (org_...)")
    verify.add_argument("--json", action="store_true", help=json_help)
    balances = ledger_commands.add_parser(
        "balances", help="every ledger account's balance of an org, per currency (zeros included)"
    )
    balances.add_argument("org", metavar="ORG", help="the org id (org_...)")
    balances.add_argument("--currency", help="one ISO 4217 code (default: each currency the org has entries in)")
    balances.add_argument("--json", action="store_true", help=json_help)
    return parser


# ---- the commands ---------------------------------------------------------------------------------------------


def _org_create(args: argparse.Namespace) -> int:
    name: str = args.name
    if not 1 <= len(name) <= limits.name_chars_max:
        raise BadInput(f"NAME must be 1..{limits.name_chars_max} characters")
    org_id, api_key = _run(lambda conn: create_org(conn, name))
    if args.json:
        print(json.dumps({"org_id": org_id, "api_key": api_key}))
    else:
        print(f"org_id:  {org_id}\napi_key: {api_key}\nThe key is shown only this once: keep it safe.")
    return EXIT_OK


def _user_create(args: argparse.Namespace) -> int:
    email = users.normalize_email(args.email)
    if not 3 <= len(email) <= users.email_chars_max or _EMAIL_RE.fullmatch(email) is None:
        raise BadInput(f"EMAIL {args.email!r} is not an e-mail address")
    org_id = _org_arg(args.org, "--org")
    password_hash = None
    if args.password_stdin:
        password = _read_password()
        problem = password_problem(password)
        if problem is not None:
            raise BadInput(f"the password is refused: {problem}")
        password_hash = hash_password(password)
    result = _run(lambda conn: _add_person(conn, org_id, email, args.role, password_hash))
    if args.json:
        print(json.dumps(result))
    else:
        lines = [f"{name}: {result[name]}" for name in ("user_id", "email", "org_id", "role")]
        invitation = result["invitation"]
        if invitation is not None:
            lines += [
                f"invitation: {invitation['token']}",
                f"The invitation is shown only this once; it sets a password (POST /v1/invitations/accept) "
                f"until {invitation['expires_at']}.",
            ]
        print("\n".join(lines))
    return EXIT_OK


def _key_create(args: argparse.Namespace) -> int:
    org_id = _org_arg(args.org, "ORG")
    name: str = args.name
    if not 1 <= len(name) <= limits.name_chars_max:
        raise BadInput(f"--name must be 1..{limits.name_chars_max} characters")
    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
    if not scopes:
        raise BadInput("--scopes needs at least one scope")
    if len(set(scopes)) != len(scopes):
        raise BadInput("--scopes repeats a scope")
    problems = key_scope_problems(args.kind, scopes, SCOPES)  # the platform itself may grant any scope
    if "unknown" in problems:
        raise BadInput(f"--scopes: unknown scopes {problems['unknown']}; known: {', '.join(SCOPES)}")
    if "not_publishable" in problems:
        raise BadInput(f"--scopes: a publishable key may not carry {problems['not_publishable']}")
    expires_at = _expires_at_arg(args.expires_at)
    record, plaintext = _run(lambda conn: _create_key(conn, org_id, name, scopes, args.kind, expires_at))
    out = {
        "id": record.id,
        "org_id": record.org_id,
        "name": record.name,
        "kind": record.kind,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "expires_at": _rfc3339(record.expires_at),
        "key": plaintext,
    }
    if args.json:
        print(json.dumps(out))
    else:
        print("\n".join(f"{field}: {value}" for field, value in out.items() if field != "key"))
        print(f"key: {plaintext}\nThe key is shown only this once: keep it safe.")
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    org_id = _org_arg(args.org, "ORG")
    result = _run(lambda conn: _verify(conn, org_id))
    out = {
        "org_id": org_id,
        "ok": result.ok,
        "entries": result.entries,
        "first_broken_seq": result.first_broken_seq,
        "reason": result.reason,
    }
    if args.json:
        print(json.dumps(out))
    elif result.ok:
        print(f"intact: {org_id}'s audit chain of {result.entries} entries verifies")
    else:
        print(f"BROKEN: {org_id}'s audit chain breaks at seq {result.first_broken_seq}: {result.reason}")
    return EXIT_OK if result.ok else EXIT_FAILURE


def _ledger_verify(args: argparse.Namespace) -> int:
    org_id = _org_arg(args.org, "ORG")
    verdict = _run(lambda conn: _verify_ledger(conn, org_id))
    balances: dict[str, dict[str, int]] = {}
    for (currency, account), balance in sorted(verdict.balances.items()):
        balances.setdefault(currency, {})[account.value] = balance
    out = {
        "org_id": org_id,
        "ok": verdict.ok,
        "transactions": verdict.transactions,
        "unbalanced": list(verdict.unbalanced),
        "balances": balances,
        "against_normal": [
            {"currency": c, "account": a.value, "balance_minor": b} for c, a, b in verdict.against_normal
        ],
    }
    if args.json:
        print(json.dumps(out))
    elif verdict.ok:
        print(f"balanced: {org_id}'s ledger of {verdict.transactions} transactions balances in every currency")
        for currency, accounts in balances.items():
            print(f"  {currency}: " + ", ".join(f"{a} {b}" for a, b in accounts.items()))
    else:
        print(f"UNBALANCED: {org_id}'s ledger has transactions that do not balance: {', '.join(verdict.unbalanced)}")
    return EXIT_OK if verdict.ok else EXIT_FAILURE


def _ledger_balances(args: argparse.Namespace) -> int:
    org_id = _org_arg(args.org, "ORG")
    currency = args.currency
    if currency is not None and _CURRENCY_RE.fullmatch(currency) is None:
        raise BadInput("--currency must be three capital letters (ISO 4217), such as ZAR")
    rows = _run(lambda conn: _read_balances(conn, org_id, currency))
    if args.json:
        print(json.dumps({"org_id": org_id, "accounts": [
            {"code": r.account.value, "currency": r.currency, "balance_minor": r.balance_minor} for r in rows]}))
    elif not rows:
        print(f"{org_id}'s ledger has no entries")
    else:
        for r in rows:
            print(f"{r.currency} {r.account.value} {r.balance_minor}")
    return EXIT_OK


_HANDLERS: dict[tuple[str, str], Callable[[argparse.Namespace], int]] = {
    ("org", "create"): _org_create,
    ("user", "create"): _user_create,
    ("key", "create"): _key_create,
    ("audit", "verify"): _audit_verify,
    ("ledger", "verify"): _ledger_verify,
    ("ledger", "balances"): _ledger_balances,
}


# ---- the database work ----------------------------------------------------------------------------------------


async def _require_org(db: OrgDb) -> None:
    # Row-level security on orgs shows the transaction's own org only: found, or it does not exist.
    if await db.conn.fetchval("SELECT 1 FROM orgs WHERE id = $1", db.org_id) is None:
        raise BadInput(f"no organization {db.org_id}")


async def _add_person(
    conn: asyncpg.Connection, org_id: str, email: str, role: str, password_hash: str | None
) -> dict[str, Any]:
    # Whether the person exists in any org: cross-org by nature, so not in the org's transaction.
    async with unscoped(conn, reason="the CLI looks a person up by e-mail before adding them to an org") as raw:
        existing = await users.find_user_by_email(raw, email)
    if existing is not None and password_hash is not None:
        raise BadInput(f"{email} already has an account (in another org); add them without --password-stdin")
    async with org_transaction(conn, org_id) as db:
        await _require_org(db)
        changes: list[audit.Change] = []
        try:
            person = existing or await users.create_user(db.conn, email, password_hash)
        except users.EmailTaken:
            raise CliError(f"{email} was added meanwhile by someone else; run the command again") from None
        if existing is None:
            changes.append(
                audit.Change(
                    "user.create", "user", person.id, after={"email": email, "password_set": bool(password_hash)}
                )
            )
        try:
            member = await memberships.add_member(db, person.id, role, accepted=True)  # the operator vouches
        except memberships.AlreadyMember:
            raise BadInput(f"{email} is already a member of {org_id}") from None
        if existing is not None and existing.password_hash is None:  # rolls the membership back
            # Whoever holds the invitation that created the account sets its password: making the account an
            # active member here would hand this org to that invitation's holder.
            raise BadInput(
                f"{email} has not set a password yet: they accept the invitation that created their account first"
            )
        changes.append(audit.Change("member.invite", "member", person.id, after={"email": email, "role": role}))
        invitation = None
        if person.password_hash is None:  # created just now, without a password: this invitation sets it
            record, token = await invitations.create_invitation(db, person.id, creates_user=True)
            invitation = {"token": token, "expires_at": _rfc3339(record.expires_at)}
        await audit.record(db, SYSTEM_ACTOR, *changes)
    return {
        "user_id": person.id,
        "email": person.email,
        "org_id": org_id,
        "role": member.role,
        "created": existing is None,
        "invitation": invitation,
    }


async def _create_key(
    conn: asyncpg.Connection, org_id: str, name: str, scopes: list[str], kind: str, expires_at: datetime | None
) -> tuple[apikeys.ApiKeyRecord, str]:
    async with org_transaction(conn, org_id) as db:
        await _require_org(db)
        try:
            record, plaintext = await apikeys.create_api_key(
                db, name, scopes, kind=kind, expires_at=expires_at, created_by=CREATED_BY
            )
        except apikeys.KeyRejected as error:
            raise BadInput(str(error)) from None
        change = audit.Change("api_key.create", "api_key", record.id, after=apikeys.audit_view(record))
        await audit.record(db, SYSTEM_ACTOR, change)
    return record, plaintext


async def _verify(conn: asyncpg.Connection, org_id: str) -> audit.VerifyResult:
    async with org_transaction(conn, org_id) as db:
        await _require_org(db)
    return await audit.verify(conn, org_id)


async def _read_balances(conn: asyncpg.Connection, org_id: str, currency: str | None
                         ) -> list[ledger_cases.AccountBalance]:
    async with org_transaction(conn, org_id) as db:
        await _require_org(db)
        found = await ledger.balances(db, currency)
    return ledger_cases.every_account(found, [currency] if currency else sorted({c for c, _ in found}))


async def _verify_ledger(conn: asyncpg.Connection, org_id: str) -> ledger.Verdict:
    async with org_transaction(conn, org_id) as db:
        await _require_org(db)
        return await ledger.verify(db)


# ---- plumbing -------------------------------------------------------------------------------------------------


def _run(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    try:
        settings = Settings.from_env()
    except RuntimeError:
        raise CliError("no Postgres: run `make up` (or set VOELGOED_DATABASE_URL and VOELGOED_REDIS_URL)") from None
    return asyncio.run(_with_connection(settings.database_url, work))


async def _with_connection(database_url: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    try:
        await migrate(database_url)  # idempotent: lets the command work on a fresh database too
        conn = await connect(database_url)
    except (TimeoutError, OSError, asyncpg.PostgresError) as error:
        raise CliError(f"no Postgres ({type(error).__name__}): run `make up` or check VOELGOED_DATABASE_URL") from None
    try:
        return await work(conn)
    except asyncpg.PostgresError as error:
        raise CliError(f"the database refused: {type(error).__name__}: {error}") from None
    finally:
        await conn.close()


def _org_arg(value: str, name: str) -> str:
    if _ORG_RE.fullmatch(value) is None:
        raise BadInput(f"{name} must be an org id (org_ and 32 hex digits), not {value!r}")
    return require_org(value)


def _expires_at_arg(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"--expires-at {value!r} is not an RFC 3339 time such as 2027-01-31T00:00:00Z") from None
    problem = key_expiry_problem(moment, datetime.now(UTC))
    if problem is not None:
        raise BadInput(f"--expires-at {problem}")
    return moment


def _read_password() -> str:
    raw = sys.stdin.read(password_stdin_bytes_max + 1)
    if len(raw) > password_stdin_bytes_max:
        raise BadInput("the password on standard input is too long")
    # One trailing line break is the terminal's or echo's, not the password's.
    return raw.removesuffix("\n").removesuffix("\r")


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


if __name__ == "__main__":
    sys.exit(main())
