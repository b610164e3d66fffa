"""The one refusal table: every refusal has exactly one HTTP answer, every answer belongs to a refusal, and the
codes survive the inventory's wire."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from actors.wire import decode_results, encode_results
from engine.inventory.commands import Rejected
from engine.refusals import Refusal, Refused
from gateway.errors import DomainError, InfrastructureError
from gateway.refusals import REFUSAL_STATUS, error_for_refused, refused


def test_every_refusal_has_an_answer_and_every_answer_a_refusal() -> None:
    assert set(REFUSAL_STATUS) == set(Refusal)
    assert all(isinstance(refusal, Refusal) for refusal in REFUSAL_STATUS)


def test_codes_are_distinct_snake_case() -> None:
    values = [refusal.value for refusal in Refusal]
    assert len(set(values)) == len(values)
    assert all(value.replace("_", "").isalpha() and value.islower() for value in values)


@pytest.mark.parametrize("refusal", list(Refusal))
def test_a_refusal_renders_with_its_code_and_status(refusal: Refusal) -> None:
    error = refused(refusal, "why", {"id": "x"})
    assert error.code == refusal.value and error.status == REFUSAL_STATUS[refusal]
    assert error.body() == {"error": {"code": refusal.value, "message": "why", "details": {"id": "x"}}}
    if error.status == 503:
        assert isinstance(error, InfrastructureError) and error.headers["Retry-After"]
    else:
        assert isinstance(error, DomainError) and 400 <= error.status < 500


def test_a_raised_refusal_renders_like_a_returned_one() -> None:
    raised = error_for_refused(Refused(Refusal.LAST_OWNER, "keep one", {"user_id": "u"}))
    assert raised.body() == refused(Refusal.LAST_OWNER, "keep one", {"user_id": "u"}).body()
    assert raised.status == 409


def test_rejected_accepts_only_the_closed_set() -> None:
    assert Rejected("hold_expired", "m").code is Refusal.HOLD_EXPIRED  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Rejected("no_such_refusal", "m")  # type: ignore[arg-type]


def test_refusals_cross_the_wire_as_members() -> None:
    [decoded] = decode_results(encode_results([Rejected(Refusal.SEATS_UNAVAILABLE, "taken", {"seats": ["A-1-1"]})]))
    assert isinstance(decoded, Rejected) and decoded.code is Refusal.SEATS_UNAVAILABLE
    assert decoded.details == {"seats": ["A-1-1"]}


def _error_table() -> dict[int, set[str]]:
    """docs/api.md's error table: status -> the codes its row lists."""
    text = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    start = text.index("| Status | Codes | When |")
    block = text[start:text.index("\n\n", start)]
    rows = re.findall(r"^\| (\d{3}) \| (.*?) \|", block, re.MULTILINE)
    table: dict[int, set[str]] = {}
    for status, codes in rows:
        assert int(status) not in table, f"the error table has two rows for {status}"
        table[int(status)] = set(re.findall(r"`([a-z_]+)`", codes))
    return table


def test_the_documented_error_table_lists_every_refusal_under_its_status() -> None:
    table = _error_table()
    missing = [(r.value, status) for r, status in REFUSAL_STATUS.items() if r.value not in table.get(status, set())]
    assert missing == [], "refusals docs/api.md's error table does not list under their status"
