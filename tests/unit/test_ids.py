"""Id formats: a hold id names its event, so the gateway routes a hold without a database read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ids import (
    event_hex_chars,
    event_id_of_hold,
    hold_id_for,
    hold_token_hex_chars,
    is_event_id,
    sale_id_of_hold,
    ticket_id_of_hold,
)

lower_hex = "0123456789abcdef"
event_ids = st.text(lower_hex, min_size=event_hex_chars, max_size=event_hex_chars).map(lambda h: "evt_" + h)
tokens = st.text(lower_hex, min_size=hold_token_hex_chars, max_size=hold_token_hex_chars)
EVENT_ID = "evt_" + "0f" * 16
TOKEN = "a" * hold_token_hex_chars


@given(event_ids, tokens)
def test_a_hold_id_names_its_event(event_id: str, token: str) -> None:
    hold_id = hold_id_for(event_id, token)
    assert hold_id.startswith("hld_")
    assert event_id_of_hold(hold_id) == event_id


@given(event_ids, tokens, tokens)
def test_different_tokens_make_different_hold_ids(event_id: str, first: str, second: str) -> None:
    assert (hold_id_for(event_id, first) == hold_id_for(event_id, second)) == (first == second)


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "hld_",
        EVENT_ID,
        "sal_" + "0f" * 16 + TOKEN,  # a sale id is not a hold id
        "hld_" + "0F" * 16 + TOKEN,  # upper-case hex
        "hld_" + "0f" * 16 + TOKEN[:-1],  # one short
        "hld_" + "0f" * 16 + TOKEN + "a",  # one long
        "hld_" + "0f" * 16 + "g" * hold_token_hex_chars,
        " hld_" + "0f" * 16 + TOKEN,
        "hld_" + "0f" * 16 + TOKEN + "\n",
        "HLD_" + "0f" * 16 + TOKEN,
        "hld_../../etc/passwd",
    ],
)
def test_junk_is_not_a_hold_id(junk: str) -> None:
    assert event_id_of_hold(junk) is None


@given(st.text(max_size=80))
def test_any_text_either_parses_to_an_event_id_or_is_none(text: str) -> None:
    event_id = event_id_of_hold(text)
    assert event_id is None or (is_event_id(event_id) and text == hold_id_for(event_id, text[-20:]))


@pytest.mark.parametrize(
    "event_id, token",
    [
        ("evt_" + "0f" * 15, TOKEN),  # short event hex
        ("0f" * 16, TOKEN),  # no prefix
        ("evt_" + "0F" * 16, TOKEN),
        (EVENT_ID, TOKEN[:-1]),
        (EVENT_ID, "A" * hold_token_hex_chars),
        (EVENT_ID, "z" * hold_token_hex_chars),
    ],
)
def test_hold_id_for_refuses_bad_parts(event_id: str, token: str) -> None:
    with pytest.raises(ValueError):
        hold_id_for(event_id, token)


def test_is_event_id() -> None:
    assert is_event_id(EVENT_ID)
    for junk in ("", "evt_", EVENT_ID + "0", EVENT_ID.upper(), "evt_" + "0f" * 15 + "0g"):
        assert not is_event_id(junk)


def test_sale_and_ticket_ids_derive_from_the_hold_id() -> None:
    hold_id = hold_id_for(EVENT_ID, TOKEN)
    suffix = "0f" * 16 + TOKEN
    assert sale_id_of_hold(hold_id) == "sal_" + suffix
    assert ticket_id_of_hold(hold_id, 1) == f"tkt_{suffix}_1"
    assert ticket_id_of_hold(hold_id, 12) != ticket_id_of_hold(hold_id, 1)
