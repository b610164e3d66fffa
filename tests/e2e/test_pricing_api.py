"""Pricing over HTTP: events with tiers, fees and tax; promo codes; quotes of items and of holds; every bad input a
4xx naming each field; a new promo code reaching another gateway process by pub/sub; quotes with Postgres dead."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from gateway.price_cache import PriceCache
from persistence import audit
from services.catalog import pricing as pricing_cases
from tests.bounded_wait import until
from tests.fakes import Gateway, event_body, new_org, running_gateway
from tests.fakes.clock import FakeClock
from tests.fakes.inventory import FakeInventoryClient

FAR = "2099-01-01T00:00:00Z"
DEAD_DATABASE_URL = "postgresql://voelgoed@127.0.0.1:1/nothing"
ACTOR = audit.Actor("key", "key_pricing_e2e", None)


def priced_body(**changes: Any) -> dict[str, Any]:
    body = event_body()
    body["ticket_types"][0]["price_tiers"] = [{"until": FAR, "price": {"amount_minor": 12_000, "currency": "ZAR"}}]
    body["fees"] = [
        {"code": "BOOKING", "per": "ticket", "amount_minor": 500},
        {"code": "SERVICE", "per": "order", "percent_bp": 250},
    ]
    body["tax"] = {"code": "VAT", "rate_bp": 1_500, "included": False}
    body.update(changes)
    return body


@pytest.fixture(scope="module")
async def owner(database_url: str) -> dict[str, str]:
    _, key = await new_org(database_url, "pricing org")
    return {"Authorization": f"Bearer {key}"}


async def priced_event(gw: Gateway, owner: dict[str, str], *, publish: bool = True, **changes: Any) -> str:
    created = await gw.client.post("/v1/events", json=priced_body(**changes), headers=owner)
    assert created.status_code == 201, created.text
    event_id: str = created.json()["id"]
    if publish:
        assert (await gw.client.post(f"/v1/events/{event_id}/publish", headers=owner)).status_code == 200
    return event_id


async def promo(gw: Gateway, owner: dict[str, str], event_id: str, **body: Any) -> dict[str, Any]:
    made = await gw.client.post(f"/v1/events/{event_id}/promo-codes", json=body, headers=owner)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


async def quote(gw: Gateway, owner: dict[str, str], event_id: str, **body: Any) -> Any:
    body.setdefault("buyer_id", "buyer-1")
    if "hold_id" not in body:
        body.setdefault("items", [{"ticket_type": "GA", "quantity": 2}, {"ticket_type": "SEAT", "quantity": 1}])
    return await gw.client.post(f"/v1/events/{event_id}/quote", json=body, headers=owner)


def lines(answer: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    return [(x["kind"], x["code"], x["quantity"], x["amount_minor"]) for x in answer["lines"]]


def assert_sums(answer: dict[str, Any]) -> None:
    counted = [x["amount_minor"] for x in answer["lines"] if not x.get("included", False)]
    assert answer["total_minor"] == sum(counted) >= 0


async def test_a_quote_of_items_with_a_tier_fees_and_added_tax(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    answered = await quote(gw, owner, event_id)
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert lines(body) == [
        ("ticket", "GA", 2, 24_000),  # the tier (120.00) until 2099
        ("ticket", "SEAT", 1, 30_000),
        ("fee", "BOOKING", 3, 1_500),
        ("fee", "SERVICE", 1, 1_350),  # 2.5 % of 540.00
        ("tax", "VAT", 1, 8_528),  # 15 % of 568.50 = 85.275 -> 85.28 (half-even on the minor unit: 8527.5 -> 8528)
    ]
    assert body["lines"][-1]["included"] is False
    assert (body["subtotal_minor"], body["discount_minor"], body["fees_minor"], body["tax_minor"]) == (
        54_000, 0, 2_850, 8_528,
    )
    assert body["total_minor"] == 65_378 and body["currency"] == "ZAR" and body["price_list_version"] == 1
    assert_sums(body)
    assert "promo_code" not in body


async def test_the_event_shows_its_price_rules(gw: Gateway, owner: dict[str, str]) -> None:
    created = await gw.client.post("/v1/events", json=priced_body(), headers=owner)
    assert created.status_code == 201, created.text
    shown = (await gw.client.get(f"/v1/events/{created.json()['id']}", headers=owner)).json()
    for event in (created.json(), shown):
        assert event["ticket_types"][0]["price_tiers"] == [
            {"until": FAR, "price": {"amount_minor": 12_000, "currency": "ZAR"}}
        ]
        assert event["ticket_types"][1]["price_tiers"] == []
        assert event["fees"] == [
            {"code": "BOOKING", "per": "ticket", "amount_minor": 500, "percent_bp": None},
            {"code": "SERVICE", "per": "order", "amount_minor": None, "percent_bp": 250},
        ]
        assert event["tax"] == {"code": "VAT", "rate_bp": 1_500, "included": False}


async def test_included_tax_is_inside_the_total(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner, fees=[], tax={"code": "VAT", "rate_bp": 1_500, "included": True})
    body = (await quote(gw, owner, event_id, items=[{"ticket_type": "SEAT", "quantity": 1}])).json()
    assert lines(body) == [("ticket", "SEAT", 1, 30_000), ("tax", "VAT", 1, 3_913)]  # 300 x 15/115 = 39.13
    assert body["lines"][-1]["included"] is True
    assert body["total_minor"] == 30_000
    assert_sums(body)


async def test_a_promo_code_applies_case_insensitively_and_is_audited(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    made = await promo(gw, owner, event_id, code="save10", percent_off_bp=1_000, ticket_types=["SEAT"])
    assert made == {
        "event_id": event_id, "code": "SAVE10", "percent_off_bp": 1_000, "amount_off_minor": None, "max_uses": None,
        "max_uses_per_buyer": None, "valid_from": None, "valid_until": None, "ticket_types": ["SEAT"],
    }
    body = (await quote(gw, owner, event_id, promo_code="Save10")).json()
    assert lines(body) == [
        ("ticket", "GA", 2, 24_000),
        ("ticket", "SEAT", 1, 30_000),
        ("discount", "SAVE10", 1, -3_000),
        ("fee", "BOOKING", 3, 1_500),
        ("fee", "SERVICE", 1, 1_275),  # 2.5 % of the net 510.00
        ("tax", "VAT", 1, 8_066),  # 15 % of 537.75 = 80.6625
    ]
    assert (body["discount_minor"], body["total_minor"], body["promo_code"]) == (3_000, 61_841, "SAVE10")
    assert body["price_list_version"] == 2
    assert_sums(body)
    log = await gw.client.get("/v1/audit-log", params={"action": "promo_code.create"}, headers=owner)
    assert [e["object"]["id"] for e in log.json()["entries"]][:1] == [f"{event_id}:SAVE10"]
    again = await gw.client.post(
        f"/v1/events/{event_id}/promo-codes", json={"code": "SAVE10", "amount_off_minor": 5}, headers=owner
    )
    assert again.status_code == 409 and again.json()["error"]["code"] == "promo_code_exists"


async def test_promo_code_invalid_says_why(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    now = datetime.now(UTC)
    day = timedelta(days=1)
    await promo(gw, owner, event_id, code="OLD", amount_off_minor=100, valid_until=(now - day).isoformat())
    await promo(gw, owner, event_id, code="SOON", amount_off_minor=100, valid_from=(now + day).isoformat())
    await promo(gw, owner, event_id, code="VIPONLY", amount_off_minor=100, ticket_types=["SEAT"])
    await promo(gw, owner, event_id, code="ONCE", amount_off_minor=100, max_uses=1)
    await promo(gw, owner, event_id, code="MINE", amount_off_minor=100, max_uses_per_buyer=1)
    svc = gw.app.state.services
    org_id = (await svc.auth.authenticate(owner["Authorization"].removeprefix("Bearer "))).org_id
    for code, use_id in (("ONCE", "order-1"), ("MINE", "order-2")):
        await pricing_cases.take_promo_use(svc.units, svc.redis, org_id, ACTOR, event_id, code, use_id, "buyer-1")
    cases = [
        ("NOPE", "buyer-1", [{"ticket_type": "GA", "quantity": 1}], "unknown"),
        ("old", "buyer-1", [{"ticket_type": "GA", "quantity": 1}], "expired"),
        ("SOON", "buyer-1", [{"ticket_type": "GA", "quantity": 1}], "not_yet_valid"),
        ("VIPONLY", "buyer-1", [{"ticket_type": "GA", "quantity": 1}], "not_applicable"),
        ("ONCE", "buyer-2", [{"ticket_type": "GA", "quantity": 1}], "used_up"),
        ("MINE", "buyer-1", [{"ticket_type": "GA", "quantity": 1}], "buyer_limit_reached"),
    ]
    for code, buyer, items, reason in cases:
        answered = await quote(gw, owner, event_id, promo_code=code, buyer_id=buyer, items=items)
        assert answered.status_code == 422, (code, answered.text)
        error = answered.json()["error"]
        assert error["code"] == "promo_code_invalid" and error["details"]["reason"] == reason, error
    fine = await quote(gw, owner, event_id, promo_code="MINE", buyer_id="buyer-2", items=[cases[0][2][0]])
    assert fine.status_code == 200 and fine.json()["discount_minor"] == 100


async def test_a_quote_of_a_hold(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "holder", "seats": ["A-1-1", "A-1-2"]}, headers=owner
    )
    assert held.status_code == 201, held.text
    hold_id = held.json()["hold_id"]
    body = (await quote(gw, owner, event_id, buyer_id="holder", hold_id=hold_id)).json()
    assert lines(body)[0] == ("ticket", "SEAT", 2, 60_000)
    assert_sums(body)
    for buyer, hold in (("someone-else", hold_id), ("holder", "hld_" + event_id[4:] + "0" * 20)):
        refused = await quote(gw, owner, event_id, buyer_id=buyer, hold_id=hold)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "hold_not_found"
    other_event = await priced_event(gw, owner)
    refused = await quote(gw, owner, other_event, buyer_id="holder", hold_id=hold_id)
    assert refused.status_code == 404


async def test_a_draft_can_be_priced_by_its_organizer(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner, publish=False)
    assert (await quote(gw, owner, event_id)).status_code == 200  # a draft can be priced by its organizer


@pytest.mark.parametrize(
    "body,fields",
    [
        ({"code": "X"}, {"percent_off_bp"}),
        ({"code": "X", "percent_off_bp": 10, "amount_off_minor": 10}, {"percent_off_bp"}),
        ({"code": "X", "percent_off_bp": 0}, {"percent_off_bp"}),
        ({"code": "X", "percent_off_bp": 10_001}, {"percent_off_bp"}),
        ({"code": "X", "amount_off_minor": -1}, {"amount_off_minor"}),
        ({"code": "bad code", "percent_off_bp": 1}, {"code"}),
        ({"code": "X" * 33, "percent_off_bp": 1}, {"code"}),
        (
            {"code": "X", "percent_off_bp": 1, "max_uses": 0, "max_uses_per_buyer": 0},
            {"max_uses", "max_uses_per_buyer"},
        ),
        (
            {"code": "X", "percent_off_bp": 1, "valid_from": "2026-12-02T00:00:00Z",
             "valid_until": "2026-12-01T00:00:00Z"},
            {"valid_until"},
        ),
        ({"code": "X", "percent_off_bp": 1, "valid_from": "2026-12-02T00:00:00"}, {"valid_from"}),
        ({"code": "X", "percent_off_bp": 1, "ticket_types": []}, {"ticket_types"}),
        ({"code": "X", "percent_off_bp": 1, "ticket_types": ["GA", "GA"]}, {"ticket_types.1"}),
        ({"code": "X", "percent_off_bp": 1, "ticket_types": ["NOPE"]}, {"ticket_types.0"}),
    ],
)
async def test_bad_promo_codes_are_422_naming_each_field(
    gw: Gateway, owner: dict[str, str], body: dict[str, Any], fields: set[str]
) -> None:
    event_id = await priced_event(gw, owner, publish=False)
    answered = await gw.client.post(f"/v1/events/{event_id}/promo-codes", json=body, headers=owner)
    assert answered.status_code == 422, answered.text
    error = answered.json()["error"]
    assert error["code"] == "validation_failed"
    assert {f["field"] for f in error["details"]["fields"]} == fields, error


@pytest.mark.parametrize(
    "body,status,code,fields",
    [
        ({"buyer_id": "b"}, 422, "validation_failed", {"items"}),
        (
            {"buyer_id": "b", "items": [{"ticket_type": "GA", "quantity": 1}], "hold_id": "hld_" + "0" * 52},
            422, "validation_failed", {"items"},
        ),
        ({"buyer_id": "b", "items": []}, 422, "validation_failed", {"items"}),
        (
            {"buyer_id": "b", "items": [{"ticket_type": "GA", "quantity": 1}, {"ticket_type": "GA", "quantity": 2}]},
            422, "validation_failed", {"items.1.ticket_type"},
        ),
        (
            {"buyer_id": "", "items": [{"ticket_type": "GA", "quantity": 0}, {"ticket_type": "G A", "quantity": 101}]},
            422, "validation_failed", {"buyer_id", "items.0.quantity", "items.1.ticket_type", "items.1.quantity"},
        ),
        ({"buyer_id": "b", "hold_id": "nope"}, 422, "validation_failed", {"hold_id"}),
        ({"buyer_id": "b", "items": [{"ticket_type": "GA", "quantity": 1}], "promo_code": "no spaces"}, 422,
         "validation_failed", {"promo_code"}),
        ({"buyer_id": "b", "items": [{"ticket_type": "NOPE", "quantity": 1}]}, 422, "unknown_ticket_type", None),
    ],
)
async def test_bad_quotes_are_4xx(
    gw: Gateway, owner: dict[str, str], body: dict[str, Any], status: int, code: str, fields: set[str] | None
) -> None:
    event_id = await priced_event(gw, owner)
    answered = await gw.client.post(f"/v1/events/{event_id}/quote", json=body, headers=owner)
    assert answered.status_code == status, answered.text
    error = answered.json()["error"]
    assert error["code"] == code
    if fields is not None:
        assert {f["field"] for f in error["details"]["fields"]} == fields, error


def _tier(until: str, amount: int = 100, currency: str = "ZAR") -> dict[str, Any]:
    return {"until": until, "price": {"amount_minor": amount, "currency": currency}}


@pytest.mark.parametrize(
    "changes,fields",
    [
        ({"fees": [{"code": "F", "per": "ticket"}]}, {"fees.0.amount_minor"}),
        ({"fees": [{"code": "F", "per": "ticket", "amount_minor": 1, "percent_bp": 1}]}, {"fees.0.amount_minor"}),
        ({"fees": [{"code": "F", "per": "week", "percent_bp": 10_001}]}, {"fees.0.per", "fees.0.percent_bp"}),
        (
            {"fees": [{"code": "F", "per": "order", "amount_minor": n} for n in (1, 2)]},
            {"fees.1.code"},
        ),
        ({"fees": [{"code": f"F{i}", "per": "order", "amount_minor": 1} for i in range(11)]}, {"fees"}),
        ({"tax": {"code": "VAT", "rate_bp": 10_001, "included": "yes"}}, {"tax.rate_bp", "tax.included"}),
        ({"tax": {"code": "VAT", "rate_bp": 1}}, {"tax.included"}),
    ],
)
async def test_bad_price_rules_on_an_event_are_422_all_at_once(
    gw: Gateway, owner: dict[str, str], changes: dict[str, Any], fields: set[str]
) -> None:
    answered = await gw.client.post("/v1/events", json=priced_body(**changes), headers=owner)
    assert answered.status_code == 422, answered.text
    assert {f["field"] for f in answered.json()["error"]["details"]["fields"]} == fields, answered.text


async def test_bad_tiers_and_mixed_currencies_are_422_all_at_once(gw: Gateway, owner: dict[str, str]) -> None:
    body = priced_body()
    body["ticket_types"][0]["price_tiers"] = [_tier(FAR), _tier("2098-01-01T00:00:00Z"), _tier(FAR, currency="USD")]
    body["ticket_types"][1]["price"]["currency"] = "EUR"
    answered = await gw.client.post("/v1/events", json=body, headers=owner)
    assert answered.status_code == 422, answered.text
    assert {f["field"] for f in answered.json()["error"]["details"]["fields"]} == {
        "ticket_types.0.price_tiers.1.until",
        "ticket_types.0.price_tiers.2.until",
        "ticket_types.0.price_tiers.2.price.currency",
        "ticket_types.1.price.currency",
    }
    body["ticket_types"][0]["price_tiers"] = [_tier("2098-01-01T00:00:00")]
    answered = await gw.client.post("/v1/events", json=body, headers=owner)
    assert {f["field"] for f in answered.json()["error"]["details"]["fields"]} == {
        "ticket_types.0.price_tiers.0.until"
    }


async def test_a_new_promo_code_reaches_another_process_by_pub_sub(
    gw: Gateway, owner: dict[str, str], database_url: str, redis_url: str
) -> None:
    event_id = await priced_event(gw, owner)
    async with running_gateway(database_url, redis_url) as other:
        cache = other.app.state.services.domain(PriceCache)
        await until(lambda: cache._listening)
        assert (await quote(other, owner, event_id)).status_code == 200  # now cached in the other process
        org_id = (await other.app.state.services.auth.authenticate(owner["Authorization"][7:])).org_id
        assert cache._lists.get((org_id, event_id)) is not None
        await promo(gw, owner, event_id, code="LATE", amount_off_minor=1_000)
        await until(lambda: cache._lists.get((org_id, event_id)) is None)  # evicted by the announcement
        answered = await quote(other, owner, event_id, promo_code="late")
        assert answered.status_code == 200, answered.text
        assert answered.json()["discount_minor"] == 1_000


async def test_quotes_work_with_postgres_dead(gw: Gateway, owner: dict[str, str]) -> None:
    event_id = await priced_event(gw, owner)
    await promo(gw, owner, event_id, code="DEAD", percent_off_bp=5_000, max_uses=10)
    svc = gw.app.state.services
    org_id = (await svc.auth.authenticate(owner["Authorization"][7:])).org_id
    await pricing_cases.take_promo_use(svc.units, svc.redis, org_id, ACTOR, event_id, "DEAD", "order-x", "b")
    assert (await quote(gw, owner, event_id)).status_code == 200  # the key is cached
    held = await gw.client.post(
        f"/v1/events/{event_id}/holds", json={"buyer_id": "b", "ticket_type": "GA", "quantity": 3}, headers=owner
    )
    assert held.status_code == 201
    dead = await asyncpg.create_pool(DEAD_DATABASE_URL, min_size=0, max_size=1, timeout=0.5)
    assert dead is not None
    alive, svc.pool._pool = svc.pool._pool, dead
    try:
        svc.domain(PriceCache)._lists.clear()  # from Redis, not this process's memory
        answered = await quote(gw, owner, event_id, promo_code="dead")
        assert answered.status_code == 200, answered.text
        assert answered.json()["discount_minor"] == 27_000
        by_hold = await quote(gw, owner, event_id, buyer_id="b", hold_id=held.json()["hold_id"])
        assert by_hold.status_code == 200 and lines(by_hold.json())[0] == ("ticket", "GA", 3, 36_000)
        # The control: Postgres really is away for this process.
        control = await gw.client.get(f"/v1/events/{event_id}", headers=owner)
        assert control.status_code == 503, control.text
    finally:
        svc.pool._pool = alive
        await dead.close()


async def test_a_quote_of_an_expired_hold_is_410(database_url: str, redis_url: str, owner: dict[str, str]) -> None:
    """The inventory's clock runs 700 s behind the gateway's: a hold it places (TTL 600 s) is already past its
    expires_at for the quote, which compares the hold's time with its own."""
    late = FakeInventoryClient(database_url, redis_url, clock=FakeClock(time.time() - 700))
    async with running_gateway(database_url, redis_url, inventory=late) as gateway:
        event_id = await priced_event(gateway, owner)
        held = await gateway.client.post(
            f"/v1/events/{event_id}/holds", json={"buyer_id": "slow", "ticket_type": "GA", "quantity": 1},
            headers=owner,
        )
        assert held.status_code == 201, held.text
        answered = await quote(gateway, owner, event_id, buyer_id="slow", hold_id=held.json()["hold_id"])
        assert answered.status_code == 410 and answered.json()["error"]["code"] == "hold_expired", answered.text


async def test_an_event_on_a_layout_is_priced_like_any_other(gw: Gateway, owner: dict[str, str]) -> None:
    venue = await gw.client.post("/v1/venues", json={"name": "Hall", "timezone": "Africa/Johannesburg"},
                                 headers=owner)
    assert venue.status_code == 201, venue.text
    layout_body = {"name": "Small", "zones": [], "sections": [{"name": "A", "rows": [{"label": "1", "seats": 4}]}]}
    layout = await gw.client.post(f"/v1/venues/{venue.json()['id']}/layouts", json=layout_body, headers=owner)
    assert layout.status_code == 201, layout.text
    body = {key: value for key, value in priced_body().items() if key != "seating"}
    created = await gw.client.post("/v1/events", json=body | {"layout_id": layout.json()["id"]}, headers=owner)
    assert created.status_code == 201, created.text
    event = created.json()
    assert event["tax"] == {"code": "VAT", "rate_bp": 1_500, "included": False} and len(event["fees"]) == 2
    answered = await quote(gw, owner, event["id"])
    assert answered.status_code == 200, answered.text
    assert lines(answered.json())[:2] == [("ticket", "GA", 2, 24_000), ("ticket", "SEAT", 1, 30_000)]
    assert answered.json()["tax_minor"] > 0
    assert_sums(answered.json())
