"""The caller's address: only a real IP address is used; anything else (a crafted X-Forwarded-For that uvicorn
passes on from a trusted proxy) reads as unknown, so it can neither break the audit log nor name a bucket."""

from __future__ import annotations

import pytest
from starlette.requests import HTTPConnection

from gateway.client_ip import UNKNOWN_CLIENT, client_ip


def _connection(client: tuple[str, int] | None) -> HTTPConnection:
    return HTTPConnection({"type": "http", "headers": [], "client": client})


@pytest.mark.parametrize(
    "host,seen",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("x" * 500, UNKNOWN_CLIENT),
        ("1.2.3.4, 5.6.7.8", UNKNOWN_CLIENT),
        ("", UNKNOWN_CLIENT),
    ],
)
def test_only_ip_addresses_are_used(host: str, seen: str) -> None:
    assert client_ip(_connection((host, 1234))) == seen


def test_no_client_is_unknown() -> None:
    assert client_ip(_connection(None)) == UNKNOWN_CLIENT
