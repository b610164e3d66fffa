"""Reads what the `--checkout` audit compares: the event's orders, sales and ledger straight from Postgres (as
the URL's own user, outside row-level security, like truth.py) and the payment simulator's own counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg

from loadtests.flashsale.checkout_audit import CheckoutFacts, OrderRow
from loadtests.flashsale.samples import CardPosted

drain_wait_s_max = 60.0  # for the outbox to finish what the sale's orders owe (tickets, refunds)
drain_poll_s = 0.25
stats_timeout_s = 30.0


async def simulator_stats(paysim_url: str) -> dict[str, Any]:
    """The simulator's /_sim/stats: its captures and refunds are counted by the bank's side of the sale."""
    timeout = aiohttp.ClientTimeout(total=stats_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as http, http.get(f"{paysim_url}/_sim/stats") as answer:
        answer.raise_for_status()
        stats: dict[str, Any] = await answer.json()
    return stats


async def drain(database_url: str, event_id: str) -> float:
    """Waits (bounded) until the event's orders owe nothing in the outbox; the seconds waited."""
    started = time.monotonic()
    conn = await asyncpg.connect(database_url)
    try:
        while await conn.fetchval(_OWED_SQL, event_id) and time.monotonic() - started < drain_wait_s_max:
            await asyncio.sleep(drain_poll_s)
    finally:
        await conn.close()
    return time.monotonic() - started


async def owed(database_url: str, event_id: str) -> int:
    """Outbox rows the event's orders still owe."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(_OWED_SQL, event_id))
    finally:
        await conn.close()


async def held_for_open_orders(database_url: str, event_id: str) -> int:
    """Seats and units the holds of the event's orders still pending payment keep (their quotes' ticket lines)."""
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(_OPEN_UNITS_SQL, event_id))
    finally:
        await conn.close()


async def checkout_facts(database_url: str, org_id: str, event_id: str, cards: Sequence[CardPosted],
                         before: dict[str, Any], after: dict[str, Any]) -> CheckoutFacts:
    conn = await asyncpg.connect(database_url)
    try:
        orders = [OrderRow(r["id"], r["status"], r["reason"], r["total_minor"], r["issued"])
                  for r in await conn.fetch(_ORDERS_SQL, event_id)]
        live_sale_orders = [r["order_ref"] for r in await conn.fetch(_LIVE_SALES_SQL, event_id)]
        ledger_unbalanced = await conn.fetchval(_UNBALANCED_SQL, org_id)
        capture_mismatch = await conn.fetchval(_CAPTURE_MISMATCH_SQL, event_id)
        outbox_undone = await conn.fetchval(_OWED_SQL, event_id)
    finally:
        await conn.close()
    return CheckoutFacts(
        cards=cards, orders=orders, live_sale_orders=live_sale_orders,
        captures=after["captures"] - before["captures"], refunds=after["refunds"] - before["refunds"],
        ledger_unbalanced=ledger_unbalanced, capture_mismatch=capture_mismatch, outbox_undone=outbox_undone,
    )  # fmt: skip


_ORDERS_SQL = """
SELECT id, status, reason, total_minor, extract(epoch FROM tickets_issued_at)::float8 AS issued
FROM orders WHERE event_id = $1
"""
_OPEN_UNITS_SQL = """
SELECT coalesce(sum((line->>'quantity')::int), 0) FROM orders o, jsonb_array_elements(o.quote->'lines') AS line
WHERE o.event_id = $1 AND o.status = 'pending_payment' AND line->>'kind' = 'ticket'
"""
_LIVE_SALES_SQL = "SELECT order_ref FROM sales WHERE event_id = $1 AND status = 'live'"
_OWED_SQL = """
SELECT count(*) FROM outbox o JOIN orders r ON r.id = o.payload->>'order_id'
WHERE r.event_id = $1 AND o.done_at IS NULL
"""
_UNBALANCED_SQL = """
SELECT count(*) FROM (
    SELECT e.transaction_id FROM ledger_entries e WHERE e.org_id = $1
    GROUP BY e.transaction_id, e.currency HAVING sum(e.amount_minor) <> 0
) AS unbalanced
"""
_CAPTURE_MISMATCH_SQL = """
SELECT count(*) FROM orders o
LEFT JOIN (
    SELECT t.order_id, sum(e.amount_minor) AS clearing FROM ledger_transactions t
    JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = 'provider_clearing'
    WHERE t.kind = 'capture' GROUP BY t.order_id
) c ON c.order_id = o.id
WHERE o.event_id = $1 AND o.status IN ('paid', 'refunded') AND coalesce(abs(c.clearing), 0) <> o.total_minor
"""
