"""Access tokens: what verifies, and everything that must not (expired, tampered, wrong type or algorithm)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sessions import (
    AccessClaims,
    InvalidToken,
    TokenSigner,
    access_token_ttl_s,
    clock_leeway_s,
    looks_like_token,
)

SECRET = "s" * 48
USER, ORG, SESSION = "usr_" + "1" * 32, "org_" + "2" * 32, "ses_" + "3" * 32


def _claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": USER,
        "org": ORG,
        "sid": SESSION,
        "role": "admin",
        "iat": now,
        "exp": now + 60,
        "typ": "access",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def test_an_issued_token_verifies_to_its_claims() -> None:
    signer = TokenSigner(SECRET)
    token, expires_in = signer.issue_access(USER, ORG, SESSION, "admin")
    assert expires_in == access_token_ttl_s
    assert looks_like_token(token)
    assert signer.verify_access(token) == AccessClaims(USER, ORG, SESSION, "admin")


def test_an_expired_token_is_refused() -> None:
    past = TokenSigner(SECRET, clock=lambda: time.time() - access_token_ttl_s - clock_leeway_s - 2)
    token, _ = past.issue_access(USER, ORG, SESSION, "admin")
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify_access(token)


def test_another_secret_or_a_tampered_payload_is_refused() -> None:
    token, _ = TokenSigner(SECRET).issue_access(USER, ORG, SESSION, "scanner")
    with pytest.raises(InvalidToken):
        TokenSigner("t" * 48).verify_access(token)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["role"] = "owner"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify_access(f"{header}.{forged}.{signature}")


@pytest.mark.parametrize(
    "changes",
    [{"typ": "refresh"}, {"typ": None}, {"sid": None}, {"role": "emperor"}, {"org": "org_x"}, {"sub": 5}],
)
def test_wrong_type_or_malformed_claims_are_refused(changes: dict[str, Any]) -> None:
    token = jwt.encode(_claims(**changes), SECRET, algorithm="HS256")
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify_access(token)


def test_other_algorithms_are_refused() -> None:
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify_access(unsigned)
    stronger_hmac = jwt.encode(_claims(), SECRET * 2, algorithm="HS512")
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET * 2).verify_access(stronger_hmac)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner("short")


@given(st.text(max_size=200))
def test_arbitrary_strings_are_refused_without_raising_anything_else(text: str) -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(SECRET).verify_access(text)


def test_api_keys_do_not_look_like_tokens() -> None:
    assert not looks_like_token("vk_0123456789ab_" + "a" * 43)
    assert not looks_like_token("eyJ" + "a" * 3000 + ".eyJa.b")
