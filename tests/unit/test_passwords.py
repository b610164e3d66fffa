"""The password policy and argon2id hashing."""

from __future__ import annotations

import argon2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.access import passwords
from engine.access.passwords import (
    DUMMY_HASH,
    hash_password,
    needs_rehash,
    password_chars_max,
    password_chars_min,
    password_problem,
    verify_password,
)

GOOD = "correct horse battery staple"


def test_a_hash_verifies_its_password_only() -> None:
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$")
    assert f"m={passwords.argon2_memory_kib},t={passwords.argon2_time_cost},p={passwords.argon2_parallelism}" in stored
    assert verify_password(stored, GOOD)
    assert not verify_password(stored, GOOD + "!")
    assert not verify_password(stored, GOOD.upper())
    assert hash_password(GOOD) != stored  # salted
    assert not needs_rehash(stored)


def test_malformed_hashes_and_the_dummy_never_verify() -> None:
    assert not verify_password("", GOOD)
    assert not verify_password("$argon2id$nonsense", GOOD)
    assert not verify_password("plaintext", "plaintext")
    assert not verify_password(DUMMY_HASH, GOOD)
    assert needs_rehash("not a hash")


def test_the_policy_bounds_length_only() -> None:
    assert password_problem("a" * password_chars_min) is None
    assert password_problem("a" * password_chars_max) is None
    assert password_problem("a" * (password_chars_min - 1)) is not None
    assert password_problem("a" * (password_chars_max + 1)) is not None
    assert password_problem(" " * password_chars_min) is not None
    for bad in ("short", "a" * (password_chars_max + 1)):
        with pytest.raises(ValueError):
            hash_password(bad)
    assert not verify_password(DUMMY_HASH, "a" * (password_chars_max + 1))


@settings(max_examples=10, deadline=None)
@given(st.text(min_size=password_chars_min, max_size=40).filter(lambda s: s.strip() != ""))
def test_any_acceptable_password_round_trips(password: str) -> None:
    assert verify_password(hash_password(password), password)


def test_verification_costs_the_same_for_a_known_and_an_unknown_account() -> None:
    # The login route verifies against DUMMY_HASH for an unknown e-mail. Argon2's cost is its parameters (time,
    # memory, lanes, lengths), so equal parameters mean equal work; compared without a clock, which a shared
    # machine makes noisy (speed is the benchmarks' business, not a unit test's).
    real = argon2.extract_parameters(hash_password(GOOD))
    assert argon2.extract_parameters(DUMMY_HASH) == real
    assert (real.time_cost, real.memory_cost) == (passwords.argon2_time_cost, passwords.argon2_memory_kib)
