"""/openapi.json says what the models validate: for bodies on either side of each rule the document states, the
document (JSON Schema 2020-12, as OpenAPI 3.1 reads it) and the model agree; every example is valid; every error
status comes with its body model and headers; links chain create event -> holds -> confirm. Without services: the
document is built from the route table (schemathesis tries it against a running gateway in
tests/e2e/test_openapi_schemathesis.py). And the defaults of a minimal event, and the router's 405 answers."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import BaseModel, ValidationError

from engine import limits
from engine.access import passwords
from gateway.app import create_app
from gateway.idempotency import KEY_PATTERN
from gateway.openapi import build_openapi
from gateway.routes import all_routes
from gateway.routes.access.models import ApiKeyCreate, InvitationAccept
from gateway.routes.catalog.models import EventCreate, EventPatch, TicketTypePatch
from gateway.routes.inventory.models import HoldCreate
from gateway.routes.ledger.models import PayoutCreate
from gateway.routes.tickets import TicketKeysOut
from voelgoed.settings import Settings

DOCUMENT = build_openapi(all_routes())
SCHEMAS = DOCUMENT["components"]["schemas"]
GA = {"code": "GA", "kind": "ga", "capacity": 5, "price": {"amount_minor": 100, "currency": "ZAR"}}
SEATED = {"code": "S", "kind": "seated", "price": {"amount_minor": 100, "currency": "ZAR"}}
SEATING = {"sections": [{"name": "A", "rows": [{"label": "1", "seats": 2}]}]}
EVENT = {"name": "e", "starts_at": "2026-12-31T18:00:00Z"}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}", "components": DOCUMENT["components"]}


def document_admits(model: type[BaseModel], body: Any) -> bool:
    validator = jsonschema.Draft202012Validator(schema_of(model), format_checker=jsonschema.FormatChecker())
    return validator.is_valid(body)


def model_admits(model: type[BaseModel], body: Any) -> bool:
    try:
        model.model_validate_json(json.dumps(body))
    except ValidationError:
        return False
    return True


AGREEMENT = [
    # the forms of a hold
    (HoldCreate, {"buyer_id": "b", "seats": ["A-1-1"]}, True),
    (HoldCreate, {"buyer_id": "b", "ticket_type": "GA", "quantity": 2}, True),
    (HoldCreate, {"buyer_id": "b", "seats": None, "ticket_type": "GA", "quantity": 2}, True),
    (HoldCreate, {"buyer_id": "b"}, False),
    (HoldCreate, {"buyer_id": "b", "ticket_type": "GA"}, False),
    (HoldCreate, {"buyer_id": "b", "quantity": 2}, False),
    (HoldCreate, {"buyer_id": "b", "seats": ["A-1-1"], "quantity": 2}, False),
    (HoldCreate, {"buyer_id": "b", "seats": ["A-1-1", "A-1-1"]}, False),
    (HoldCreate, {"buyer_id": "b", "seats": []}, False),
    # a ticket type's capacity by kind; seating with exactly one seated type
    (EventCreate, {**EVENT, "ticket_types": [GA]}, True),
    (EventCreate, {**EVENT, "ticket_types": [{**GA, "capacity": None}]}, False),
    (EventCreate, {**EVENT, "ticket_types": [{k: v for k, v in GA.items() if k != "capacity"}]}, False),
    (EventCreate, {**EVENT, "seating": SEATING, "ticket_types": [GA, SEATED]}, True),
    (EventCreate, {**EVENT, "seating": SEATING, "ticket_types": [{**SEATED, "capacity": 2}]}, False),
    (EventCreate, {**EVENT, "seating": SEATING, "ticket_types": [GA]}, False),
    (EventCreate, {**EVENT, "seating": None, "ticket_types": [GA]}, True),
    (EventCreate, {**EVENT, "ticket_types": [SEATED]}, False),
    (EventCreate, {**EVENT, "seating": SEATING, "ticket_types": [SEATED, {**SEATED, "code": "T"}]}, False),
    (EventCreate, {**EVENT, "ticket_types": []}, False),
    (EventCreate, {**EVENT, "ticket_types": [GA], "hold_ttl_s": limits.hold_ttl_s_max + 1}, False),
    # a ticket type's change: at least one field, none of them null; tiers replaced as a whole ([] removes them)
    (TicketTypePatch, {"capacity": 5}, True),
    (TicketTypePatch, {"price": {"amount_minor": 100, "currency": "ZAR"}, "price_tiers": []}, True),
    (TicketTypePatch, {"price_tiers": [{"until": "2099-01-01T00:00:00Z", "price": GA["price"]}]}, True),
    (TicketTypePatch, {}, False),
    (TicketTypePatch, {"price": None}, False),
    (TicketTypePatch, {"capacity": None}, False),
    (TicketTypePatch, {"price": {"amount_minor": -1, "currency": "ZAR"}}, False),
    (TicketTypePatch, {"price_tiers": [{"until": "2099-01-01T00:00:00Z"}]}, False),
    (TicketTypePatch, {"capacity": 5, "zone": "FLOOR"}, False),
    # an event's new fees (the whole list, never null) and tax (null removes it)
    (EventPatch, {"fees": [], "tax": None}, True),
    (EventPatch, {"fees": [{"code": "F", "per": "order", "amount_minor": 1}]}, True),
    (EventPatch, {"tax": {"code": "VAT", "rate_bp": 1500, "included": True}}, True),
    (EventPatch, {"fees": None}, False),
    (EventPatch, {"fees": [{"code": "F", "per": "week", "amount_minor": 1}]}, False),
    (EventPatch, {"tax": {"code": "VAT", "rate_bp": 10_001, "included": True}}, False),
    # scopes: known, distinct; a publishable key's buying scopes only
    (ApiKeyCreate, {"name": "k", "scopes": ["events:read"]}, True),
    (ApiKeyCreate, {"name": "k", "scopes": ["events:nothing"]}, False),
    (ApiKeyCreate, {"name": "k", "scopes": ["events:read", "events:read"]}, False),
    (ApiKeyCreate, {"name": "k", "kind": "publishable", "scopes": ["inventory:hold"]}, True),
    (ApiKeyCreate, {"name": "k", "kind": "publishable", "scopes": ["events:read"]}, False),
    (ApiKeyCreate, {"name": "k", "kind": "secret", "scopes": ["events:read"]}, True),
    # a payout: a currency, and an amount of at least 1 minor unit (omitted: everything payable)
    (PayoutCreate, {"currency": "ZAR"}, True),
    (PayoutCreate, {"currency": "ZAR", "amount_minor": 1}, True),
    (PayoutCreate, {"currency": "ZAR", "amount_minor": None}, True),
    (PayoutCreate, {"currency": "ZAR", "amount_minor": 0}, False),
    (PayoutCreate, {"currency": "ZAR", "amount_minor": 10**15 + 1}, False),
    (PayoutCreate, {"currency": "zar"}, False),
    (PayoutCreate, {"amount_minor": 5}, False),
    (PayoutCreate, {"currency": "ZAR", "to": "bank"}, False),
    # the password policy
    (InvitationAccept, {"token": "t", "password": "x" * passwords.password_chars_min}, True),
    (InvitationAccept, {"token": "t", "password": "x" * (passwords.password_chars_min - 1)}, False),
    (InvitationAccept, {"token": "t", "password": "x" * (passwords.password_chars_max + 1)}, False),
    (InvitationAccept, {"token": "t", "password": " \u3000\t" * 5}, False),
    (InvitationAccept, {"token": "t", "password": " \u3000\t" * 5 + "x"}, True),
]


@pytest.mark.parametrize(("model", "body", "valid"), AGREEMENT)
def test_the_document_and_the_model_agree(model: type[BaseModel], body: Any, valid: bool) -> None:
    assert model_admits(model, body) is valid
    assert document_admits(model, body) is valid


def test_rules_no_schema_states_answer_422_with_type_invalid() -> None:
    """Distinct ticket type codes: the document admits the body, the model refuses it as a rule ("invalid")."""
    body = {**EVENT, "ticket_types": [GA, GA]}
    assert document_admits(EventCreate, body)
    with pytest.raises(ValidationError) as refused:
        EventCreate.model_validate_json(json.dumps(body))
    assert {e["type"] for e in refused.value.errors()} == {"invalid_fields"}  # rendered with type "invalid"


def test_a_minimal_event_takes_the_defaults() -> None:
    event = EventCreate.model_validate_json(json.dumps({**EVENT, "ticket_types": [GA]}))
    assert (event.hold_ttl_s, event.max_tickets_per_buyer) == (600, 10)
    assert (limits.hold_ttl_s_default, limits.max_tickets_per_buyer_default) == (600, 10)
    assert set(SCHEMAS["EventCreate"]["required"]) == {"name", "starts_at", "ticket_types"}


def test_every_example_is_valid() -> None:
    found = 0
    for name, schema in SCHEMAS.items():
        for example in schema.get("examples", ()):
            found += 1
            validator = jsonschema.Draft202012Validator({"$ref": f"#/components/schemas/{name}", **DOCUMENT})
            assert validator.is_valid(example), (name, example)
    assert found >= 5


def test_the_idempotency_key_pattern_is_the_enforced_one() -> None:
    for key, valid in [("a", True), ("a b", True), ("x" * 200, True), ("x" * 201, False), (" a", False), ("", False)]:
        assert (re.fullmatch(KEY_PATTERN, key) is not None) is valid, key


def test_each_error_status_has_its_model_and_headers() -> None:
    for path, ops in DOCUMENT["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if int(status) < 400:
                    continue
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                assert ref != "#/components/schemas/ErrorOut", (method, path, status)
                if status in ("429", "503"):
                    assert answer["headers"]["Retry-After"]["required"], (method, path, status)
                if status == "405":
                    assert "Allow" in answer["headers"]
            if op.get("security"):
                assert {"401", "403", "429"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= set(op["responses"]), (method, path)


def test_links_chain_an_event_to_its_holds_and_a_hold_to_its_confirm() -> None:
    created = DOCUMENT["paths"]["/v1/events"]["post"]["responses"]["201"]["links"]
    assert created["create_hold_post"]["parameters"] == {"event_id": "$response.body#/id"}
    assert created["publish_event_post"]["operationId"] == "publish_event"
    held = DOCUMENT["paths"]["/v1/events/{event_id}/holds"]["post"]["responses"]["201"]["links"]
    assert held["confirm_hold_post"]["parameters"] == {"hold_id": "$response.body#/hold_id"}
    ids = {op["operationId"] for ops in DOCUMENT["paths"].values() for op in ops.values()}
    for ops in DOCUMENT["paths"].values():
        for op in ops.values():
            for answer in op["responses"].values():
                for link in answer.get("links", {}).values():
                    assert link["operationId"] in ids


def test_path_parameters_carry_the_id_formats() -> None:
    parameters = DOCUMENT["paths"]["/v1/holds/{hold_id}"]["get"]["parameters"]
    assert parameters[0]["schema"]["pattern"] == "^hld_[0-9a-f]{52}$"


async def test_405_names_every_method_of_the_path() -> None:
    # The router answers these before any route runs: no services (no lifespan) needed.
    app = create_app(Settings(database_url="postgresql://unused/unused", redis_url="redis://unused"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client:
        wrong = await client.patch("/v1/holds/hld_x")
        assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
        assert wrong.headers["allow"] == "GET, HEAD, DELETE"
        options = await client.options("/v1/events")
        assert options.status_code == 405 and options.headers["allow"] == "POST"
        posted = await client.post("/v1/events/evt_x/live")
        assert posted.status_code == 405 and posted.headers["allow"] == "GET"
        assert (await client.get("/v1/nothing")).status_code == 404


@pytest.mark.parametrize(
    ("starts_at", "refused_as"),
    [
        ("2026-12-31T18:00:00Z", None),
        ("2026-12-31t18:00:00.5+02:00", None),
        ("0001-01-02T00:00:00Z", None),
        ("123", "datetime_format"),  # epoch seconds: pydantic alone took them
        ("2026-12-31 18:00:00Z", "datetime_format"),
        ("2026-12-31T18:00Z", "datetime_format"),
        ("2026-12-31T18:00:00+0100", "datetime_format"),
        ("2026-02-30T18:00:00Z", "datetime_format"),
        ("0001-01-01T00:00:00+01:00", "invalid"),  # year 0 in UTC
        ("0001-01-01T00:00:00Z", "invalid"),  # the driver would store -infinity (schemathesis found the 500)
        ("9999-12-31T23:59:59.999999Z", "invalid"),
        ("9999-12-31T23:59:59-01:00", "invalid"),
    ],
)
def test_request_times_are_rfc3339_and_within_what_utc_holds(starts_at: str, refused_as: str | None) -> None:
    body = json.dumps({**EVENT, "starts_at": starts_at, "ticket_types": [GA]})
    if refused_as is None:
        assert EventCreate.model_validate_json(body).starts_at.utcoffset() is not None
        return
    with pytest.raises(ValidationError) as refused:
        EventCreate.model_validate_json(body)
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [(("starts_at",), refused_as)]


def test_a_number_with_a_zero_fraction_is_the_integer_it_equals() -> None:
    hold = HoldCreate.model_validate_json('{"buyer_id": "b", "ticket_type": "GA", "quantity": 2.0, "ttl_s": 3e1}')
    assert (hold.quantity, hold.ttl_s) == (2, 30) and isinstance(hold.quantity, int)
    for refused in ("2.5", "true", '"2"'):
        with pytest.raises(ValidationError):
            HoldCreate.model_validate_json('{"buyer_id": "b", "ticket_type": "GA", "quantity": ' + refused + "}")


def test_the_ledger_routes_are_documented_as_the_contract_says() -> None:
    """API.md "Ledger:": balances {"accounts": [{code, balance_minor}]}; transactions paged with a cursor; POST
    /v1/payouts {"currency", "amount_minor"?} answers 201, 409 beyond what is payable; with their scopes."""
    balances = DOCUMENT["paths"]["/v1/ledger/balances"]["get"]
    assert {p["name"] for p in balances["parameters"] if p["in"] == "query"} == {"currency"}
    row = SCHEMAS["AccountBalanceOut"]
    assert {"code", "balance_minor"} <= set(row["required"])
    transactions = DOCUMENT["paths"]["/v1/ledger/transactions"]["get"]
    assert {p["name"] for p in transactions["parameters"] if p["in"] == "query"} == {"cursor", "limit"}
    assert "next_cursor" in SCHEMAS["TransactionPageOut"]["properties"]
    payout = DOCUMENT["paths"]["/v1/payouts"]["post"]
    assert {"201", "409"} <= set(payout["responses"])
    assert SCHEMAS["PayoutCreate"]["required"] == ["currency"]
    assert "payouts:write" in json.dumps(payout) and "ledger:read" in json.dumps(balances)


def test_the_ticket_keys_route_is_documented_as_the_contract_says() -> None:
    """GET /v1/ticket-keys (API.md "Checkout, payments, tickets"): {"keys": [{kid, alg, public_key, status}]}."""
    operation = DOCUMENT["paths"]["/v1/ticket-keys"]["get"]
    answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/TicketKeysOut"}
    key = SCHEMAS["TicketKeyOut"]
    assert set(key["required"]) == {"kid", "alg", "public_key", "status"}
    assert key["properties"]["status"]["enum"] == ["active", "retiring"]
    good = {"keys": [{"kid": "a1b2c3", "alg": "Ed25519", "public_key": "A" * 43, "status": "retiring"}]}
    assert document_admits(TicketKeysOut, good) and model_admits(TicketKeysOut, good)
    for bad_key in ({"status": "retired"}, {"public_key": "A" * 44}, {"kid": "A1B2C3"}, {"alg": "RS256"}):
        bad = {"keys": [{**good["keys"][0], **bad_key}]}
        assert not document_admits(TicketKeysOut, bad) and not model_admits(TicketKeysOut, bad)
