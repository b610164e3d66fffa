"""What an Idempotency-Key record keeps of an answer that carried a secret (gateway/idempotency.py): the same
body with each named secret null, nothing else changed; a body it cannot read is not stored at all."""

from __future__ import annotations

import json

import pytest
from starlette.responses import JSONResponse

from gateway.idempotency import without_secrets


def rendered(data: object) -> bytes:
    return bytes(JSONResponse(data).body)


@pytest.mark.parametrize(
    ("answer", "fields", "kept"),
    [
        ({"id": "key_1", "key": "vk_a_b"}, ("key",), {"id": "key_1", "key": None}),
        ({"invitation": {"token": "vi_a_b", "expires_at": "Z"}}, ("invitation.token",),
         {"invitation": {"token": None, "expires_at": "Z"}}),
        ({"invitation": None}, ("invitation.token",), {"invitation": None}),  # nothing to hide
        ({"error": {"code": "validation_failed"}}, ("key",), {"error": {"code": "validation_failed"}}),
        ({"name": "é", "key": "vk_x"}, ("key",), {"name": "é", "key": None}),
    ],
)  # fmt: skip
def test_secrets_are_stored_null_the_rest_as_answered(answer: object, fields: tuple[str, ...], kept: object) -> None:
    stored = without_secrets(rendered(answer), fields)
    assert stored is not None and json.loads(stored) == kept
    assert stored == rendered(kept)  # the same bytes a first answer of that shape would have


def test_without_secret_fields_the_body_is_kept_as_is_and_an_unreadable_one_is_not_kept() -> None:
    assert without_secrets(b"not json", ()) == b"not json"
    assert without_secrets(b"", ("key",)) == b""  # a 204
    assert without_secrets(b"not json", ("key",)) is None
