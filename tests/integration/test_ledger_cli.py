"""`voelgoed ledger verify ORG [--json]`, run as the user runs it (a separate process): a balanced ledger passes
with its balances, a transaction forged past every guard is named (exit 1), bad input exits 2. And `voelgoed ledger
balances ORG`: every account per currency, zeros included."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from types import MappingProxyType

import asyncpg

from engine.catalog import pricing
from engine.ledger import flows
from persistence import ledger
from persistence.db import connect
from persistence.tenancy import org_transaction
from tests.integration.test_cli import assert_bad_input, cli_org, run_cli

PRICES = pricing.PriceList("ZAR", MappingProxyType({"GA": pricing.TypePrice("GA", 10_000)}),
                           fees=(pricing.Fee("BOOKING", "order", amount_minor=500),))


async def test_ledger_verify(database_url: str, redis_url: str) -> None:
    org_id = await cli_org()
    empty = await run_cli("ledger", "verify", org_id, "--json")
    assert empty.status == 0, empty.stderr
    assert json.loads(empty.stdout) == {
        "org_id": org_id, "ok": True, "transactions": 0, "unbalanced": [], "balances": {}, "against_normal": []}

    quote = pricing.quote(PRICES, [pricing.Item("GA", 1)], datetime(2026, 11, 1, tzinfo=UTC))
    paid = flows.capture("ord_1", quote, transaction_id="ltx_" + secrets.token_hex(16), source="payment:1")
    assert paid.transaction is not None
    conn = await connect(database_url)
    try:
        async with org_transaction(conn, org_id) as db:
            await ledger.write(db, paid.transaction)
    finally:
        await conn.close()
    intact = await run_cli("ledger", "verify", org_id, "--json")
    assert intact.status == 0, intact.stderr
    assert json.loads(intact.stdout)["balances"] == {
        "ZAR": {"organizer_revenue": -10_000, "platform_fees": -500, "provider_clearing": 10_500}}
    plain = await run_cli("ledger", "verify", org_id)
    assert plain.status == 0 and "balanced" in plain.stdout and "provider_clearing 10500" in plain.stdout

    forged = "ltx_" + secrets.token_hex(16)
    owner = await asyncpg.connect(database_url)
    try:
        async with owner.transaction():
            # only a superuser gets past the constraint triggers, and only for this transaction
            await owner.execute("SET LOCAL session_replication_role = replica")
            await owner.execute(
                "INSERT INTO ledger_transactions (org_id, id, kind, source, entries) VALUES ($1, $2, 'payout', 'x', 2)",
                org_id, forged)
            await owner.execute(
                "INSERT INTO ledger_entries (org_id, transaction_id, position, account, currency, amount_minor)"
                " VALUES ($1, $2, 0, 'payouts', 'ZAR', -900), ($1, $2, 1, 'organizer_payable', 'ZAR', 1000)",
                org_id, forged)
    finally:
        await owner.close()
    broken = await run_cli("ledger", "verify", org_id, "--json")
    assert broken.status == 1, (broken.stdout, broken.stderr)
    verdict = json.loads(broken.stdout)
    assert verdict["ok"] is False and verdict["unbalanced"] == [forged] and verdict["transactions"] == 2
    text = await run_cli("ledger", "verify", org_id)
    assert text.status == 1 and forged in text.stdout

    balances = await run_cli("ledger", "balances", org_id, "--currency", "ZAR", "--json")
    assert balances.status == 0, balances.stderr
    rows = json.loads(balances.stdout)["accounts"]
    assert [r["code"] for r in rows] == [
        "provider_clearing", "refunds", "payouts", "organizer_revenue", "organizer_payable", "platform_fees",
        "tax_payable"]
    assert {r["code"]: r["balance_minor"] for r in rows}["provider_clearing"] == 10_500
    every = await run_cli("ledger", "balances", org_id)
    assert every.status == 0 and "ZAR provider_clearing 10500" in every.stdout and "ZAR refunds 0" in every.stdout
    assert_bad_input(await run_cli("ledger", "balances", org_id, "--currency", "zar"), "ISO 4217")
    assert_bad_input(await run_cli("ledger", "balances", "org_" + "0" * 32), "no org")

    assert_bad_input(await run_cli("ledger", "verify", "org_" + "0" * 32), "no org")
    assert_bad_input(await run_cli("ledger", "verify", "nonsense"), "org id")
