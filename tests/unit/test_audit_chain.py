"""The audit hash chain: canonical bytes, hashes, and verification that names the first broken link for any
single edit, deletion, swap or insertion."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.audit_chain import (
    GENESIS_HASH,
    REASON_BEYOND_HEAD,
    REASON_HASH,
    REASON_HEAD_HASH,
    REASON_ORG,
    REASON_PREV_HASH,
    REASON_SEQUENCE_GAP,
    REASON_SEQUENCE_ORDER,
    REASON_TAIL_MISSING,
    ChainedEntry,
    ChainVerifier,
    Entry,
    Head,
    Verdict,
    canonical_bytes,
    chain,
    check_json,
    entry_hash,
    rfc3339_micros,
    verify,
)

ORG = "org_" + "1" * 32
AT = datetime(2026, 11, 22, 10, 30, 15, 123456, tzinfo=UTC)


def entry(seq: int, **fields: Any) -> Entry:
    values: dict[str, Any] = {
        "org_id": ORG,
        "seq": seq,
        "at": AT,
        "actor_type": "key",
        "actor_id": "key_" + "a" * 32,
        "action": "event.create",
        "object_type": "event",
        "object_id": f"evt_{seq:032x}",
        "ip": "198.51.100.7",
        "before": None,
        "after": {"name": "Show", "seq": seq},
    }
    values.update(fields)
    return Entry(**values)


def make_chain(n: int) -> tuple[list[ChainedEntry], Head]:
    return chain(Head(0, GENESIS_HASH), [entry(seq) for seq in range(1, n + 1)])


# --- canonical bytes and hashes ---------------------------------------------------------------------------------


def test_genesis_is_32_zero_bytes() -> None:
    assert GENESIS_HASH == b"\x00" * 32


def test_canonical_bytes_are_pinned() -> None:
    """Changing the canonical form would break every stored chain: this spelling is a stored format."""
    assert canonical_bytes(entry(1, after={"b": 1, "a": "ü"})) == (
        b'{"action":"event.create","actor":{"id":"key_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","type":"key"},'
        b'"after":{"a":"\\u00fc","b":1},"at":"2026-11-22T10:30:15.123456Z","before":null,'
        b'"ip":"198.51.100.7","object":{"id":"evt_00000000000000000000000000000001","type":"event"},'
        b'"org_id":"org_11111111111111111111111111111111","seq":1}'
    )


def test_hash_covers_the_previous_hash() -> None:
    e = entry(1)
    assert entry_hash(GENESIS_HASH, e) != entry_hash(b"\x01" * 32, e)
    assert len(entry_hash(GENESIS_HASH, e)) == 32


def test_times_are_utc_with_microseconds() -> None:
    assert rfc3339_micros(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == "2026-01-02T03:04:05.000000Z"
    sast = timezone(timedelta(hours=2))
    assert rfc3339_micros(datetime(2026, 1, 2, 5, 4, 5, 7, tzinfo=sast)) == "2026-01-02T03:04:05.000007Z"
    with pytest.raises(ValueError):
        rfc3339_micros(datetime(2026, 1, 2))


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        1.5,
        {"price": 1.0},
        float("nan"),
        {1: "int key"},
        {"s": {1, 2}},
        {"when": AT},
        b"bytes",
        "nul\x00",
        {"k\x00": 1},
        "\ud800",
        _nested(20),
    ],
)
def test_values_jsonb_would_not_return_unchanged_are_refused(value: object) -> None:
    with pytest.raises(ValueError):
        check_json(value)


def test_chain_refuses_bad_entries_and_misnumbering() -> None:
    with pytest.raises(ValueError):
        chain(Head(0, GENESIS_HASH), [entry(1, action="EventCreate")])
    with pytest.raises(ValueError):
        chain(Head(0, GENESIS_HASH), [entry(1, actor_type="robot")])
    with pytest.raises(ValueError):
        chain(Head(0, GENESIS_HASH), [entry(2)])
    with pytest.raises(ValueError):
        chain(Head(0, GENESIS_HASH), [entry(1, ip="x" * 65)])


def test_chain_continues_from_a_head() -> None:
    first, head = make_chain(3)
    more, new_head = chain(head, [entry(4), entry(5)])
    assert more[0].prev_hash == first[-1].hash
    assert new_head == Head(5, more[-1].hash)
    assert verify([*first, *more], new_head, org_id=ORG) == Verdict(True, 5, None, None)


# --- verification -----------------------------------------------------------------------------------------------

# Any Unicode but what Postgres text refuses (NUL) and what is not UTF-8 (lone surrogates).
text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.none() | st.dictionaries(text, json_values, max_size=4)


@st.composite
def entries(draw: st.DrawFn, seq: int) -> Entry:
    return Entry(
        org_id=ORG,
        seq=seq,
        at=draw(st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))),
        actor_type=draw(st.sampled_from(["user", "key", "system"])),
        actor_id=draw(st.text("abcdef0123456789_", min_size=1, max_size=12)),
        action=draw(st.sampled_from(["event.create", "sale.create", "member.role_change", "session.login_failed"])),
        object_type=draw(st.sampled_from(["event", "sale", "member", "session"])),
        object_id=draw(st.text("abcdef0123456789_", min_size=1, max_size=12)),
        ip=draw(st.none() | st.ip_addresses().map(str)),
        before=draw(json_objects),
        after=draw(json_objects),
    )


@st.composite
def chains(draw: st.DrawFn, min_size: int = 1) -> tuple[list[ChainedEntry], Head]:
    n = draw(st.integers(min_value=min_size, max_value=8))
    return chain(Head(0, GENESIS_HASH), [draw(entries(seq)) for seq in range(1, n + 1)])


def _jsonb_round_trip(value: Any) -> Any:
    # jsonb re-spells objects (its own key order, spaces after separators); the canonical form must not care.
    return json.loads(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


@given(chains())
def test_an_intact_chain_verifies(made: tuple[list[ChainedEntry], Head]) -> None:
    stored, head = made
    assert verify(stored, head, org_id=ORG) == Verdict(True, len(stored), None, None)
    # also as read back from the database: before/after parsed again from jsonb text
    reread = [
        dataclasses.replace(
            c,
            entry=dataclasses.replace(
                c.entry, before=_jsonb_round_trip(c.entry.before), after=_jsonb_round_trip(c.entry.after)
            ),
        )
        for c in stored
    ]
    assert verify(reread, head, org_id=ORG).ok


@given(chains(), st.data())
def test_any_single_field_change_is_named(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    stored, head = made
    k = data.draw(st.integers(min_value=0, max_value=len(stored) - 1))
    target = stored[k]
    field = data.draw(
        st.sampled_from(
            [
                "org_id", "seq", "at", "actor_type", "actor_id", "action", "object_type", "object_id", "ip",
                "before", "after", "prev_hash", "hash",
            ]
        )
    )  # fmt: skip
    if field in ("prev_hash", "hash"):
        new = data.draw(st.binary(min_size=32, max_size=32))
        assume(new != getattr(target, field))
        tampered = (
            dataclasses.replace(target, prev_hash=new)
            if field == "prev_hash"
            else dataclasses.replace(target, hash=new)
        )
        expected = REASON_PREV_HASH if field == "prev_hash" else REASON_HASH
    else:
        new_entry = data.draw(entries(target.entry.seq))
        if field == "seq":
            value: Any = data.draw(st.integers(min_value=-5, max_value=20))
        elif field == "org_id":
            value = "org_" + "2" * 32
        else:
            value = getattr(new_entry, field)
        assume(value != getattr(target.entry, field))
        tampered = dataclasses.replace(target, entry=dataclasses.replace(target.entry, **{field: value}))
        if field == "seq":
            expected = REASON_SEQUENCE_GAP if value > target.entry.seq else REASON_SEQUENCE_ORDER
        else:
            expected = REASON_ORG if field == "org_id" else REASON_HASH
    changed = [*stored[:k], tampered, *stored[k + 1 :]]
    verdict = verify(changed, head, org_id=ORG)
    assert (verdict.ok, verdict.first_broken_seq, verdict.reason) == (False, k + 1, expected)
    if field == "org_id":  # without the org to compare with, the hash still gives it away
        assert verify(changed, head).first_broken_seq == k + 1


@given(chains(), st.data())
def test_a_deletion_is_named(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    stored, head = made
    k = data.draw(st.integers(min_value=0, max_value=len(stored) - 1))
    verdict = verify([*stored[:k], *stored[k + 1 :]], head, org_id=ORG)
    expected = REASON_TAIL_MISSING if k == len(stored) - 1 else REASON_SEQUENCE_GAP
    assert (verdict.ok, verdict.first_broken_seq, verdict.reason) == (False, k + 1, expected)


@given(chains(min_size=2), st.data())
def test_a_swap_is_named(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    stored, head = made
    k = data.draw(st.integers(min_value=0, max_value=len(stored) - 2))
    swapped = [*stored[:k], stored[k + 1], stored[k], *stored[k + 2 :]]
    verdict = verify(swapped, head, org_id=ORG)
    assert (verdict.ok, verdict.first_broken_seq, verdict.reason) == (False, k + 1, REASON_SEQUENCE_GAP)


@given(chains(min_size=2), st.data())
def test_a_renumbered_swap_is_named(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    """Swapping two entries' contents but keeping the numbering (and each entry's stored hashes)."""
    stored, head = made
    k = data.draw(st.integers(min_value=0, max_value=len(stored) - 2))
    a, b = stored[k], stored[k + 1]
    assume(dataclasses.replace(a.entry, seq=0) != dataclasses.replace(b.entry, seq=0))
    new_a = dataclasses.replace(b, entry=dataclasses.replace(b.entry, seq=a.entry.seq))
    new_b = dataclasses.replace(a, entry=dataclasses.replace(a.entry, seq=b.entry.seq))
    verdict = verify([*stored[:k], new_a, new_b, *stored[k + 2 :]], head, org_id=ORG)
    assert (verdict.ok, verdict.first_broken_seq) == (False, k + 1)


@given(chains(), st.data())
def test_an_insertion_is_named(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    stored, head = made
    k = data.draw(st.integers(min_value=0, max_value=len(stored)))
    forged_entry = data.draw(entries(k + 1))
    prev_hash = stored[k - 1].hash if k else GENESIS_HASH
    if data.draw(st.booleans(), label="chained correctly"):
        # the strongest forger: a correct link and hash, but the entries after it keep their numbers
        forged = ChainedEntry(forged_entry, prev_hash, entry_hash(prev_hash, forged_entry))
        expected = (k + 2, REASON_SEQUENCE_ORDER) if k < len(stored) else (k + 1, REASON_BEYOND_HEAD)
    else:
        forged_hash = data.draw(st.binary(min_size=32, max_size=32))
        forged = ChainedEntry(forged_entry, prev_hash, forged_hash)
        assume(forged_hash != entry_hash(prev_hash, forged_entry))
        expected = (k + 1, REASON_HASH)
    verdict = verify([*stored[:k], forged, *stored[k:]], head, org_id=ORG)
    assert (verdict.ok, verdict.first_broken_seq, verdict.reason) == (False, *expected)


@given(chains(), st.data())
def test_paged_feeding_equals_verify(made: tuple[list[ChainedEntry], Head], data: st.DataObject) -> None:
    stored, head = made
    verifier = ChainVerifier(ORG)
    for c in stored:
        assert verifier.feed(c)
    assert verifier.last == head
    assert verifier.finish(head) == verify(stored, head, org_id=ORG)


def test_head_checks() -> None:
    stored, head = make_chain(3)
    assert verify(stored, Head(3, b"\x07" * 32)) == Verdict(False, 3, 3, REASON_HEAD_HASH)
    assert verify(stored, Head(5, head.hash)) == Verdict(False, 3, 4, REASON_TAIL_MISSING)
    assert verify(stored, Head(0, GENESIS_HASH)) == Verdict(False, 3, 1, REASON_BEYOND_HEAD)
    assert verify([], Head(0, GENESIS_HASH)) == Verdict(True, 0, None, None)
    assert verify([], Head(2, head.hash)) == Verdict(False, 0, 1, REASON_TAIL_MISSING)
    # without a head only the entries are checked: a removed tail cannot be seen
    assert verify(stored[:2]).ok


def test_verification_stops_at_the_first_break() -> None:
    stored, head = make_chain(4)
    broken = [stored[0], dataclasses.replace(stored[1], hash=b"\x01" * 32), stored[2], stored[3]]
    verifier = ChainVerifier(ORG)
    assert verifier.feed(broken[0]) and not verifier.feed(broken[1]) and not verifier.feed(broken[2])
    assert verifier.finish(head) == Verdict(False, 2, 2, REASON_HASH)


def test_an_unspellable_stored_value_is_a_hash_mismatch() -> None:
    stored, head = make_chain(2)
    bad = dataclasses.replace(stored[1], entry=dataclasses.replace(stored[1].entry, after={"x": float("nan")}))
    assert verify([stored[0], bad], head) == Verdict(False, 2, 2, REASON_HASH)
