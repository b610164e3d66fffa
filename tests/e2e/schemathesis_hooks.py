"""What schemathesis runs beside its own (``--checks all``), loaded as its hooks module by
tests/e2e/test_openapi_schemathesis.py: one check, and one hook on the requests it sends.

The hook: a fuzzer sends its simplest valid Idempotency-Key, "0", with nearly every request, and the API rightly
answers each request but the first 422 ``idempotency_key_reused``, so nothing behind that key would be reached. So a
valid key gets a suffix derived from the request (method, path, body): different requests never share a key, and
the same request sent again keeps its key (and gets the stored answer, as a client's retry would). An invalid key
is sent as generated.

``positive_data_acceptance`` is told to let a schema-valid request be refused with 410 or 422 (the run's config
says why), and ``rules_beyond_the_schema`` takes its place for those answers: such a refusal must come from a rule
no JSON Schema can state, never from a field the document admits and the model refuses. So a 422 passes only as

- ``validation_failed`` whose every field problem has type ``invalid``: the rules that span fields or depend on
  state or the clock (distinct ticket type codes, a section repeating a name, an event over the seat limit, a key
  expiring in the past or after its creator, ``until`` before ``since``, a hold's ``ttl_s`` above its event's); a
  pydantic type (``missing``, ``string_pattern_mismatch``, ``unknown_scope``...) means the document and the model
  disagree, which is what this check exists to catch;
- a refusal of the inventory about the event's state: seats it does not have, a ticket type it does not sell, a
  buyer over the event's limit; or ``idempotency_key_reused`` (a generated key met twice with other bodies).

A 410 passes as ``hold_expired`` or ``invitation_expired``: the state of the thing named, not the request.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import schemathesis

from gateway.idempotency import HEADER, KEY_PATTERN, key_chars_max

RULE_TYPES = frozenset({"invalid"})
STATE_REFUSALS_422 = frozenset(
    {"unknown_seats", "unknown_ticket_type", "buyer_limit_exceeded", "invalid_hold_request", "idempotency_key_reused"}
)
STATE_REFUSALS_410 = frozenset({"hold_expired", "invitation_expired"})


def _is_positive(case: Any) -> bool:
    meta = getattr(case, "meta", None)
    return meta is not None and bool(meta.generation.mode.is_positive)


def _error(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def refusal_problem(status: int, error: dict[str, Any]) -> str | None:
    """Why refusing a schema-valid request this way is a finding, or None when a rule beyond the schema explains it."""
    code = error.get("code")
    if status == 410:
        return None if code in STATE_REFUSALS_410 else f"410 {code}: not the expiry of the thing named"
    if status != 422:
        return None
    if code in STATE_REFUSALS_422:
        return None
    if code != "validation_failed":
        return f"422 {code}: a refusal no rule beyond the schema explains"
    fields = (error.get("details") or {}).get("fields")
    if not fields:
        return "422 validation_failed naming no field: the document admits what a deeper check refused"
    shape = [f for f in fields if f.get("type") not in RULE_TYPES]
    if shape:
        named = "; ".join(f"{f.get('field')}: {f.get('type')} ({f.get('message')})" for f in shape)
        return f"the document admits what the model refuses: {named}"
    return None


_KEY_RE = re.compile(KEY_PATTERN)
_SUFFIX_HEX_CHARS = 12


def request_key(key: str, method: str, path: str, body: Any) -> str:
    """``key`` made the request's own: the same request keeps it, another one gets another."""
    request = json.dumps([method, path, body], sort_keys=True, default=str)
    suffix = hashlib.sha256(request.encode()).hexdigest()[:_SUFFIX_HEX_CHARS]
    return f"{key[: key_chars_max - _SUFFIX_HEX_CHARS - 1].rstrip()}-{suffix}"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: Any) -> None:
    headers = case.headers or {}
    name = next((n for n in headers if n.lower() == HEADER), None)
    key = headers.get(name) if name is not None else None
    if isinstance(key, str) and _KEY_RE.fullmatch(key):
        headers[name] = request_key(key, case.method, case.formatted_path, case.body)


@schemathesis.check
def rules_beyond_the_schema(ctx: Any, response: Any, case: Any) -> bool | None:
    if not _is_positive(case) or response.status_code not in (410, 422):
        return None
    problem = refusal_problem(response.status_code, _error(response))
    if problem is not None:
        raise AssertionError(f"a schema-valid request was refused: {problem}")
    return None
