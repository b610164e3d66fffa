"""The password policy and argon2id hashing."""

from __future__ import annotations

import time

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


def test_verification_costs_about_the_same_for_a_known_and_an_unknown_account() -> None:
    # The login route verifies against DUMMY_HASH for an unknown e-mail: same parameters, so same cost.
    real = hash_password(GOOD)

    def cost(stored: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            verify_password(stored, "a wrong guess of a password")
        return (time.perf_counter() - start) / 3

    real_s, dummy_s = min(cost(real) for _ in range(3)), min(cost(DUMMY_HASH) for _ in range(3))
    assert 0.5 < real_s / dummy_s < 2.0
    assert real_s < 0.2  # logins must not queue (about 25 ms on the 2-core development machine)
