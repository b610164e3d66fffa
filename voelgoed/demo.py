"""The demo `voelgoed up` seeds once the gateway is ready: an org, its owner key and an on-sale event.

Recorded in <data_dir>/demo.json and reused on the next run while its key still works, so a restart shows the
same key and event instead of piling up demo orgs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from persistence.access.apikeys import find_api_key, parse_api_key
from persistence.access.orgs import create_org
from persistence.access.secret_hashes import secret_matches
from persistence.db import connect
from persistence.tenancy import unscoped
from voelgoed.private_files import read_json, write_private_json
from voelgoed.startup_failure import StartupFailed

DEMO_FILE_NAME = "demo.json"
DEMO_ORG_NAME = "Voelgoed Demo"
UP_ACTOR = "up"  # the audit log's system actor for what `voelgoed up` creates
demo_event_lead_days = 30
demo_request_timeout_s = 10.0  # each of the demo's calls to the gateway


@dataclass(frozen=True)
class Demo:
    org_id: str
    api_key: str
    event_id: str


async def ensure_demo(data_dir: Path, api_url: str, database_url: str) -> Demo:
    """Reuse the demo recorded in demo.json while its key still works on this database; else create it."""
    path = data_dir / DEMO_FILE_NAME
    recorded = read_json(path)
    org_id, api_key = str(recorded.get("org_id", "")), str(recorded.get("api_key", ""))
    if not await _key_is_live(database_url, org_id, api_key):
        org_id, api_key = await _create_demo_org(database_url)
        recorded = {"org_id": org_id, "api_key": api_key}
        write_private_json(path, recorded)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=demo_request_timeout_s) as http:
        event_id = await _ensure_demo_event(http, org_id, str(recorded.get("event_id", "")))
    write_private_json(path, {"org_id": org_id, "api_key": api_key, "event_id": event_id})
    return Demo(org_id, api_key, event_id)


async def _key_is_live(database_url: str, org_id: str, api_key: str) -> bool:
    parsed = parse_api_key(api_key)
    if parsed is None:
        return False
    conn = await connect(database_url)
    try:
        async with unscoped(conn, reason="check the demo key recorded in demo.json, whichever org it names") as db:
            record = await find_api_key(db, parsed[0])
            now = await db.fetchval("SELECT now()")
    finally:
        await conn.close()
    return (
        record is not None
        and record.org_id == org_id
        and record.revoked_at is None
        and not record.expired(now)
        and secret_matches(parsed[1], record.secret_hash)
    )


async def _create_demo_org(database_url: str) -> tuple[str, str]:
    conn = await connect(database_url)
    try:
        return await create_org(conn, DEMO_ORG_NAME, actor=UP_ACTOR)
    finally:
        await conn.close()


async def _ensure_demo_event(http: httpx.AsyncClient, org_id: str, event_id: str) -> str:
    event = (await http.get(f"/v1/events/{event_id}")) if event_id else None
    if event is None or event.status_code != 200:
        # The Idempotency-Key makes a create that was answered but not recorded (a crash) replay, not repeat.
        created = await http.post(
            "/v1/events", json=demo_event_body(), headers={"Idempotency-Key": f"voelgoed-demo-event-{org_id}"}
        )
        _expect(created, 201, "creating the demo event")
        event = created
    event_id = str(event.json()["id"])
    if event.json().get("status") != "on_sale":
        _expect(await http.post(f"/v1/events/{event_id}/publish"), 200, "publishing the demo event")
    return event_id


def demo_event_body(now: datetime | None = None) -> dict[str, Any]:
    """Two rows of ten seats and 500 general-admission tickets, a month from now."""
    starts_at = (now or datetime.now(UTC)) + timedelta(days=demo_event_lead_days)
    return {
        "name": "Voelgoed Demo Flash Sale",
        "starts_at": starts_at.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hold_ttl_s": 600,
        "max_tickets_per_buyer": 10,
        "seating": {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 10}, {"label": "2", "seats": 10}]}]},
        "ticket_types": [
            {"code": "GA", "kind": "ga", "capacity": 500, "price": {"amount_minor": 15000, "currency": "ZAR"}},
            {"code": "SEAT", "kind": "seated", "price": {"amount_minor": 30000, "currency": "ZAR"}},
        ],
    }


def _expect(response: httpx.Response, status: int, doing: str) -> None:
    if response.status_code != status:
        raise StartupFailed(f"{doing}: HTTP {response.status_code}: {response.text[:500]}")
