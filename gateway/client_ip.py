"""The caller's address, as rate limits and the audit log see it."""

from __future__ import annotations

from starlette.requests import HTTPConnection

UNKNOWN_CLIENT = "unknown"


def client_ip(connection: HTTPConnection) -> str:
    """The peer address uvicorn reports. Behind a proxy, run uvicorn with --proxy-headers and
    --forwarded-allow-ips so this is the buyer's address (from X-Forwarded-For), not the proxy's."""
    client = connection.client
    return client.host if client is not None and client.host else UNKNOWN_CLIENT
