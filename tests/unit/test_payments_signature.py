"""The webhook signature (engine/payments/signature.py): a fresh signature verifies; any flipped bit in the body
or the signature, a stale or future timestamp, a wrong secret and every malformed header are refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.payments.signature import (
    SignatureRefusal,
    mac_hex,
    parse,
    sign,
    signature_age_s_max,
    signature_future_s_max,
    signature_v1_values_max,
    verify,
)

SECRET = b"whsec_test_secret"
NOW = 1_790_000_000
bodies = st.binary(max_size=2_048)
secrets = st.binary(min_size=1, max_size=64)


def flip_bit(data: bytes, bit: int) -> bytes:
    index, offset = divmod(bit % (len(data) * 8), 8)
    return data[:index] + bytes([data[index] ^ (1 << offset)]) + data[index + 1 :]


def test_the_mac_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # the contract of API.md, computed independently of the module
    expected = hmac.new(SECRET, b"1790000000.{}", hashlib.sha256).hexdigest()
    assert sign(SECRET, b"{}", NOW) == f"t=1790000000,v1={expected}"


@given(secret=secrets, body=bodies, age_s=st.integers(0, signature_age_s_max))
def test_a_fresh_valid_signature_is_accepted(secret: bytes, body: bytes, age_s: int) -> None:
    assert verify(secret, body, sign(secret, body, NOW - age_s), now_s=NOW) is None


@given(body=bodies, skew_s=st.integers(0, signature_future_s_max))
def test_a_sender_clock_slightly_ahead_is_accepted(body: bytes, skew_s: int) -> None:
    assert verify(SECRET, body, sign(SECRET, body, NOW + skew_s), now_s=NOW) is None


@given(body=bodies.filter(bool), bit=st.integers(min_value=0))
def test_any_flipped_bit_in_the_body_is_refused(body: bytes, bit: int) -> None:
    header = sign(SECRET, body, NOW)
    assert verify(SECRET, flip_bit(body, bit), header, now_s=NOW) is SignatureRefusal.MISMATCH


@given(body=bodies, bit=st.integers(min_value=0))
def test_any_flipped_bit_in_the_signature_header_is_refused(body: bytes, bit: int) -> None:
    header = sign(SECRET, body, NOW).encode()
    tampered = flip_bit(header, bit).decode("latin-1")
    assert verify(SECRET, body, tampered, now_s=NOW) is not None


@given(body=bodies, bit=st.integers(0, 255))
def test_any_flipped_bit_in_the_mac_is_a_mismatch(body: bytes, bit: int) -> None:
    mac = bytes.fromhex(mac_hex(SECRET, body, NOW))
    header = f"t={NOW},v1={flip_bit(mac, bit).hex()}"
    assert verify(SECRET, body, header, now_s=NOW) is SignatureRefusal.MISMATCH


@given(body=bodies, other=secrets.filter(lambda s: s != SECRET))
def test_another_secret_is_refused(body: bytes, other: bytes) -> None:
    assert verify(SECRET, body, sign(other, body, NOW), now_s=NOW) is SignatureRefusal.MISMATCH


@given(body=bodies, extra_s=st.integers(1, 10**9))
def test_an_old_signature_is_refused(body: bytes, extra_s: int) -> None:
    header = sign(SECRET, body, NOW - signature_age_s_max - extra_s)
    assert verify(SECRET, body, header, now_s=NOW) is SignatureRefusal.STALE


@given(body=bodies, extra_s=st.integers(1, 10**9))
def test_a_signature_too_far_in_the_future_is_refused(body: bytes, extra_s: int) -> None:
    header = sign(SECRET, body, NOW + signature_future_s_max + extra_s)
    assert verify(SECRET, body, header, now_s=NOW) is SignatureRefusal.FUTURE


def test_a_replay_with_a_new_timestamp_does_not_verify() -> None:
    old = sign(SECRET, b"{}", NOW - 3_600)
    mac = old.split("v1=")[1]
    assert verify(SECRET, b"{}", f"t={NOW},v1={mac}", now_s=NOW) is SignatureRefusal.MISMATCH


def test_one_matching_v1_among_several_is_enough() -> None:
    good = mac_hex(SECRET, b"{}", NOW)
    other = mac_hex(b"the old secret", b"{}", NOW)
    assert verify(SECRET, b"{}", f"t={NOW},v1={other},v1={good}", now_s=NOW) is None
    assert verify(SECRET, b"{}", f"t={NOW},v1={other},v1={other}", now_s=NOW) is SignatureRefusal.MISMATCH


def test_unknown_schemes_are_ignored_but_not_enough() -> None:
    good = mac_hex(SECRET, b"{}", NOW)
    assert verify(SECRET, b"{}", f"t={NOW},v0=abc,v1={good}", now_s=NOW) is None
    assert verify(SECRET, b"{}", f"t={NOW},v0={good}", now_s=NOW) is SignatureRefusal.MALFORMED


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=,v1=00",
        f"v1={'0' * 64}",  # no timestamp
        f"t={NOW}",  # no MAC
        f"t={NOW},t={NOW},v1={'0' * 64}",  # two timestamps
        f"t=-5,v1={'0' * 64}",
        f"t=1e9,v1={'0' * 64}",
        f"t=١٢٣,v1={'0' * 64}",  # non-ASCII digits
        f"t={'9' * 13},v1={'0' * 64}",
        f"t={NOW},v1={'0' * 63}",  # short MAC
        f"t={NOW},v1={'A' * 64}",  # uppercase hex is not what anyone sends
        f"t={NOW},v1={'g' * 64}",
        f"t={NOW},=x,v1={'0' * 64}",
        f"t={NOW}," + ",".join([f"v1={'0' * 64}"] * (signature_v1_values_max + 1)),
        "t=1," + "x" * 2_000,
    ],
)
def test_malformed_headers_are_refused(header: str) -> None:
    assert parse(header) is None
    assert verify(SECRET, b"{}", header, now_s=NOW) is SignatureRefusal.MALFORMED


@given(header=st.text(max_size=300))
def test_arbitrary_text_never_verifies_and_never_raises(header: str) -> None:
    assert verify(SECRET, b"{}", header, now_s=NOW) is not None


def test_whitespace_around_items_is_tolerated() -> None:
    good = mac_hex(SECRET, b"{}", NOW)
    assert verify(SECRET, b"{}", f"t={NOW}, v1={good}", now_s=NOW) is None


def test_signing_refuses_an_empty_secret_and_a_negative_time() -> None:
    with pytest.raises(ValueError):
        sign(b"", b"{}", NOW)
    with pytest.raises(ValueError):
        sign(SECRET, b"{}", -1)
