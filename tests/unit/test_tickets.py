"""The tickets core: the QR payload codec, the offline verifier, key states and the sealing of private keys.

The offline verifier refuses 10,000 tampered payloads (bit flips anywhere, truncations, extensions, signatures of
other keys, other orgs, other events) and never admits one; a rotated key verifies its tickets until retired; a
revoked ticket is refused, and only a genuine one is ever called revoked."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.ids import hold_id_for, ticket_id_of_hold
from engine.tickets import payload as codec
from engine.tickets.keys import KeyRing, KeyStatus, SigningKey, VerifyingKey, may_move
from engine.tickets.payload import Malformed, TicketClaims
from engine.tickets.sealing import MasterKey, SealBroken, sealed_bytes
from engine.tickets.verify import RefusalReason, TicketRefusal, VerifiedTicket, sign, verify

tampered_examples = 10_000
hexes = st.binary(min_size=16, max_size=16).map(bytes.hex)
orgs = hexes.map(lambda h: "org_" + h)
events = hexes.map(lambda h: "evt_" + h)
kids = st.binary(min_size=3, max_size=3).map(bytes.hex)
seeds = st.binary(min_size=32, max_size=32)
labels = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
codes = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=32)
seat_ids = st.builds(lambda s, r, n: f"{s}-{r}-{n}", labels, labels, st.integers(1, 9_999_999))


@st.composite
def claims_of(draw: st.DrawFn, event_id: str) -> TicketClaims:
    hold = hold_id_for(event_id, draw(st.binary(min_size=10, max_size=10)).hex())
    ticket_id = ticket_id_of_hold(hold, draw(st.integers(1, codec.ordinal_max)))
    if draw(st.booleans()):
        return TicketClaims(ticket_id, draw(codes), seat_id=draw(seat_ids))
    return TicketClaims(ticket_id, draw(codes), unit=draw(st.integers(1, codec.unit_max)))


def new_org() -> str:
    return "org_" + secrets.token_hex(16)


def new_event() -> str:
    return "evt_" + secrets.token_hex(16)


def new_key(org_id: str, kid: str = "a1b2c3") -> SigningKey:
    return SigningKey(kid, org_id, secrets.token_bytes(32))


def ticket(event_id: str, number: int = 1, *, seat_id: str | None = None, unit: int | None = 1234) -> TicketClaims:
    hold = hold_id_for(event_id, secrets.token_hex(10))
    if seat_id is not None:
        return TicketClaims(ticket_id_of_hold(hold, number), "VIP", seat_id=seat_id)
    return TicketClaims(ticket_id_of_hold(hold, number), "GA", unit=unit)


def refused(result: VerifiedTicket | TicketRefusal) -> RefusalReason:
    assert isinstance(result, TicketRefusal), result
    return result.reason


# --- the codec ------------------------------------------------------------------------------------------------


@given(st.data(), orgs, events, kids, seeds)
@settings(max_examples=300)
def test_a_signed_ticket_verifies_and_says_what_was_signed(
    data: st.DataObject, org_id: str, event_id: str, kid: str, seed: bytes
) -> None:
    claims = data.draw(claims_of(event_id))
    key = SigningKey(kid, org_id, seed)
    text = sign(claims, key)
    assert len(text) <= codec.payload_chars_max and text.isascii()
    result = verify(text, KeyRing.of([key.verifying_key()]), event_ids=[new_event(), event_id])
    assert result == VerifiedTicket(
        claims.ticket_id, event_id, org_id, kid, KeyStatus.ACTIVE, claims.ticket_type, claims.seat_id, claims.unit
    )
    decoded = codec.decode(text)
    assert decoded.claims_for(event_id) == claims
    assert decoded.kid == kid and decoded.event_tag == codec.event_tag(event_id)


def test_a_typical_payload_is_compact() -> None:
    """The figures docs/architecture.md reports: 116 characters for a GA ticket (type GA, unit 1234), 119 for a
    seat (type VIP, seat A-12-7). Base64url of the 81 fixed bytes is 108 of them; the signature alone is 86."""
    key = new_key(new_org())
    event_id = new_event()
    assert len(sign(ticket(event_id, unit=1234), key)) == 116
    assert len(sign(ticket(event_id, seat_id="A-12-7"), key)) == 119
    assert codec.binary_chars == 108


def test_the_layout_is_the_documented_one() -> None:
    key = new_key(new_org(), kid="0a0b0c")
    event_id = new_event()
    claims = ticket(event_id, 7, seat_id="A-12-7")
    text = sign(claims, key)
    assert text[0] == "1" and text.endswith("VIP.A-12-7")
    binary = __import__("base64").urlsafe_b64decode(text[1:109])
    assert binary[0:3] == bytes.fromhex("0a0b0c")
    assert binary[3:6] == bytes.fromhex(event_id[4:10])
    assert binary[6:16].hex() == claims.ticket_id[36:56]
    assert binary[16] == 7


_GENUINE = sign(ticket(new_event(), 5), new_key(new_org()))
_PREFIX = _GENUINE[:109]  # version and the base64 part of a genuine payload: only the tail is wrong below


@pytest.mark.parametrize(
    "bad",
    ["", "1", _PREFIX, _PREFIX + "GA", _PREFIX + "GA~", _PREFIX + "GA~0", _PREFIX + "GA~01", _PREFIX + "GA~+1",
     _PREFIX + "GA~1000001", _PREFIX + "G A~1", _PREFIX + "GA.", _PREFIX + "GA~1.A-1-1", _PREFIX + "~1",
     _PREFIX + "GA.A 1", _PREFIX + "T" * 33 + "~1", _PREFIX + "GA." + "S" * 129, _PREFIX + "GA\u0661~1",
     _PREFIX + "GA~\u0661", _PREFIX[:108] + "+" + "GA~1", _PREFIX[:108] + "=" + "GA~1",
     "https://example.com/ticket", " " + _GENUINE, _GENUINE + "\n"],
)  # fmt: skip
def test_anything_an_encoder_would_not_make_is_malformed(bad: str) -> None:
    with pytest.raises(Malformed):
        codec.decode(bad)
    result = verify(bad, KeyRing.of([]), event_ids=[new_event()])
    assert isinstance(result, TicketRefusal) and result.reason in {
        RefusalReason.MALFORMED,
        RefusalReason.UNSUPPORTED_VERSION,
    }


def test_an_ordinal_out_of_range_is_malformed() -> None:
    key = new_key(new_org())
    text = sign(ticket(new_event(), 5), key)
    binary = bytearray(__import__("base64").urlsafe_b64decode(text[1:109]))
    for ordinal in (0, codec.ordinal_max + 1, 255):
        binary[16] = ordinal
        forged = text[0] + __import__("base64").urlsafe_b64encode(bytes(binary)).decode() + text[109:]
        with pytest.raises(Malformed):
            codec.decode(forged)


def test_another_version_is_named_as_such() -> None:
    text = sign(ticket(new_event()), new_key(new_org()))
    assert refused(verify("2" + text[1:], KeyRing.of([]), event_ids=[new_event()])) is RefusalReason.UNSUPPORTED_VERSION


def test_claims_no_decoder_would_accept_are_never_signed() -> None:
    event_id = new_event()
    hold = hold_id_for(event_id, secrets.token_hex(10))
    with pytest.raises(AssertionError):
        TicketClaims(ticket_id_of_hold(hold, 1), "G A", unit=1)
    with pytest.raises(AssertionError):
        TicketClaims(ticket_id_of_hold(hold, 1), "GA", seat_id="A 1", unit=None)
    with pytest.raises(AssertionError):
        TicketClaims(ticket_id_of_hold(hold, 1), "GA", seat_id="A-1-1", unit=1)
    with pytest.raises(AssertionError):
        TicketClaims(ticket_id_of_hold(hold, 101), "GA", unit=1)
    with pytest.raises(AssertionError):
        TicketClaims(ticket_id_of_hold(hold, 1), "GA", unit=codec.unit_max + 1)


# --- 10,000 tampered payloads ---------------------------------------------------------------------------------


ORG = new_org()
EVENT = new_event()
KEY = new_key(ORG, kid="c0ffee")
RING = KeyRing.of([KEY.verifying_key()])


def _flip_bits(text: str, positions: list[int]) -> str:
    raw = bytearray(text.encode("ascii"))
    for position in positions:
        raw[(position // 8) % len(raw)] ^= 1 << (position % 8)
    return raw.decode("latin-1")


@st.composite
def tampered(draw: st.DrawFn) -> tuple[str, str, set[RefusalReason]]:
    """(how, the tampered payload, the reasons it may be refused with): the original is genuine and verifies."""
    claims = draw(claims_of(EVENT))
    genuine = sign(claims, KEY)
    how = draw(st.sampled_from(["flip", "truncate", "extend", "other key", "other org", "other event", "splice"]))
    if how == "flip":
        bits = draw(st.lists(st.integers(0, 8 * len(genuine) - 1), min_size=1, max_size=3, unique=True))
        forged = _flip_bits(genuine, bits)
        if forged == genuine:  # two flips of one bit undo each other: unique= rules it out, but say so
            forged = _flip_bits(genuine, bits[:1])
        return how, forged, set(RefusalReason) - {RefusalReason.REVOKED}
    if how == "truncate":
        return how, genuine[: draw(st.integers(0, len(genuine) - 1))], set(RefusalReason) - {RefusalReason.REVOKED}
    if how == "extend":
        more = draw(st.text(min_size=1, max_size=8))
        at = draw(st.integers(0, len(genuine)))
        return how, genuine[:at] + more + genuine[at:], set(RefusalReason) - {RefusalReason.REVOKED}
    if how == "other key":  # an attacker's key claiming the real kid
        return how, sign(claims, SigningKey(KEY.kid, ORG, draw(seeds))), {RefusalReason.BAD_SIGNATURE}
    if how == "other org":  # another org's genuine key, with the same kid
        other = SigningKey(KEY.kid, draw(orgs.filter(lambda o: o != ORG)), KEY.seed)
        return how, sign(claims, other), {RefusalReason.BAD_SIGNATURE}
    if how == "other event":  # a genuine ticket of this org for an event not admitted here
        other_event = draw(events.filter(lambda e: e != EVENT))
        return (
            how,
            sign(replace(claims, ticket_id=claims.ticket_id.replace(EVENT[4:], other_event[4:])), KEY),
            {
                RefusalReason.WRONG_EVENT,
                RefusalReason.BAD_SIGNATURE,  # only if its 3-byte event tag is this event's
            },
        )
    # splice: the start (kid, tag, most of the token) and the tail of another genuine ticket, this one's signature
    other = draw(claims_of(EVENT).filter(lambda c: c != claims))
    theirs = sign(other, KEY)
    forged = genuine[:1] + theirs[1:18] + genuine[18:109] + theirs[109:]
    assume(forged not in (genuine, theirs))  # the two tickets may differ only where the splice keeps one of them
    return how, forged, {RefusalReason.BAD_SIGNATURE, RefusalReason.MALFORMED}


def test_ten_thousand_tampered_payloads_are_all_refused() -> None:
    seen: dict[str, int] = {}

    @given(tampered())
    @settings(max_examples=tampered_examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
    def check(case: tuple[str, str, set[RefusalReason]]) -> None:
        how, forged, allowed = case
        result = verify(forged, RING, event_ids=[EVENT])
        assert isinstance(result, TicketRefusal), (how, forged, result)
        assert result.reason in allowed, (how, forged, result)
        seen[how] = seen.get(how, 0) + 1

    check()
    assert sum(seen.values()) >= tampered_examples
    assert set(seen) == {"flip", "truncate", "extend", "other key", "other org", "other event", "splice"}


def test_every_single_bit_flip_of_one_payload_is_refused() -> None:
    """Exhaustive for one seated and one GA payload: no bit of the text is outside what the signature covers."""
    for claims in (ticket(EVENT, 3, seat_id="A-12-7"), ticket(EVENT, 4, unit=999_999)):
        genuine = sign(claims, KEY)
        assert isinstance(verify(genuine, RING, event_ids=[EVENT]), VerifiedTicket)
        for bit in range(8 * len(genuine)):
            assert isinstance(verify(_flip_bits(genuine, [bit]), RING, event_ids=[EVENT]), TicketRefusal), bit


def test_a_kid_no_key_has_is_an_unknown_key() -> None:
    text = sign(ticket(EVENT), new_key(ORG, kid="000001"))
    assert refused(verify(text, RING, event_ids=[EVENT])) is RefusalReason.UNKNOWN_KEY


def test_a_ticket_of_another_event_is_the_wrong_event() -> None:
    assert refused(verify(sign(ticket(new_event()), KEY), RING, event_ids=[EVENT])) is RefusalReason.WRONG_EVENT
    assert refused(verify(sign(ticket(EVENT), KEY), RING, event_ids=[])) is RefusalReason.WRONG_EVENT


def test_two_admitted_events_sharing_a_tag_still_verify_the_right_one() -> None:
    twin = "evt_" + EVENT[4:10] + secrets.token_hex(13)
    text = sign(ticket(EVENT), KEY)
    result = verify(text, RING, event_ids=[twin, EVENT])
    assert isinstance(result, VerifiedTicket) and result.event_id == EVENT
    assert refused(verify(text, RING, event_ids=[twin])) is RefusalReason.BAD_SIGNATURE


# --- rotation and revocation ------------------------------------------------------------------------------------


def test_a_rotated_key_verifies_its_tickets_until_it_is_retired() -> None:
    org_id, event_id = new_org(), new_event()
    old, new = new_key(org_id, "aaaaaa"), new_key(org_id, "bbbbbb")
    before, after = sign(ticket(event_id, 1), old), sign(ticket(event_id, 2), new)
    active = KeyRing.of([old.verifying_key()])
    rotated = KeyRing.of([old.verifying_key(KeyStatus.RETIRING), new.verifying_key()])
    retired = KeyRing.of([old.verifying_key(KeyStatus.RETIRED), new.verifying_key()])

    assert isinstance(verify(before, active, event_ids=[event_id]), VerifiedTicket)
    still = verify(before, rotated, event_ids=[event_id])
    assert isinstance(still, VerifiedTicket) and still.key_status is KeyStatus.RETIRING and still.kid == "aaaaaa"
    assert isinstance(verify(after, rotated, event_ids=[event_id]), VerifiedTicket)
    assert refused(verify(before, retired, event_ids=[event_id])) is RefusalReason.RETIRED_KEY
    assert isinstance(verify(after, retired, event_ids=[event_id]), VerifiedTicket)
    # dropped from the ring altogether (a scanner's bundle lists active and retiring keys only)
    assert refused(verify(before, KeyRing.of([new.verifying_key()]), event_ids=[event_id])) is RefusalReason.UNKNOWN_KEY


def test_key_states_move_forward_one_step_only() -> None:
    allowed = {(a, b) for a in KeyStatus for b in KeyStatus if may_move(a, b)}
    assert allowed == {(KeyStatus.ACTIVE, KeyStatus.RETIRING), (KeyStatus.RETIRING, KeyStatus.RETIRED)}


def test_a_revoked_ticket_is_refused_and_its_neighbours_are_not() -> None:
    first, second = ticket(EVENT, 1), ticket(EVENT, 2)
    revoked = {first.ticket_id}
    assert refused(verify(sign(first, KEY), RING, event_ids=[EVENT], revoked=revoked)) is RefusalReason.REVOKED
    assert isinstance(verify(sign(second, KEY), RING, event_ids=[EVENT], revoked=revoked), VerifiedTicket)


def test_a_forgery_of_a_revoked_ticket_is_a_bad_signature_not_revoked() -> None:
    claims = ticket(EVENT, 1)
    forged = sign(claims, SigningKey(KEY.kid, ORG, secrets.token_bytes(32)))
    reason = refused(verify(forged, RING, event_ids=[EVENT], revoked={claims.ticket_id}))
    assert reason is RefusalReason.BAD_SIGNATURE


def test_a_ring_refuses_two_keys_with_one_kid() -> None:
    with pytest.raises(ValueError):
        KeyRing.of([new_key(ORG, "abcdef").verifying_key(), new_key(ORG, "abcdef").verifying_key()])


def test_a_verifying_key_checks_its_parts() -> None:
    with pytest.raises((AssertionError, ValueError)):
        VerifyingKey("ABCDEF", ORG, bytes(32), KeyStatus.ACTIVE)
    with pytest.raises((AssertionError, ValueError)):
        VerifyingKey("abcdef", "org_x", bytes(32), KeyStatus.ACTIVE)
    with pytest.raises((AssertionError, ValueError)):
        VerifyingKey("abcdef", ORG, bytes(31), KeyStatus.ACTIVE)


# --- sealing private keys -------------------------------------------------------------------------------------


def test_a_sealed_key_opens_only_with_its_master_org_and_kid() -> None:
    master = MasterKey(secrets.token_urlsafe(32).encode())
    seed, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
    sealed = master.seal(ORG, "abcdef", seed, nonce)
    assert len(sealed) == sealed_bytes and seed not in sealed
    assert master.open(ORG, "abcdef", sealed, nonce) == seed
    for attempt in (
        lambda: master.open(new_org(), "abcdef", sealed, nonce),
        lambda: master.open(ORG, "abcdee", sealed, nonce),
        lambda: master.open(ORG, "abcdef", sealed, secrets.token_bytes(12)),
        lambda: master.open(ORG, "abcdef", bytes([sealed[0] ^ 1]) + sealed[1:], nonce),
        lambda: MasterKey(secrets.token_urlsafe(32).encode()).open(ORG, "abcdef", sealed, nonce),
    ):
        with pytest.raises(SealBroken):
            attempt()


def test_a_master_secret_is_long_enough_and_never_shown() -> None:
    with pytest.raises(ValueError):
        MasterKey(b"x" * 31)
    secret = secrets.token_urlsafe(32).encode()
    master = MasterKey(secret)
    assert secret.decode() not in repr(master) and len(master.master_id) == 16
    assert MasterKey(secret).master_id == master.master_id != MasterKey(secret + b"!").master_id
