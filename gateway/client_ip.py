"""The caller's address, as rate limits and the audit log see it."""

from __future__ import annotations

import functools
import ipaddress

from starlette.requests import HTTPConnection

UNKNOWN_CLIENT = "unknown"
addresses_cached_max = 4_096


def client_ip(connection: HTTPConnection) -> str:
    """The peer address uvicorn reports. Behind a proxy, run uvicorn with --proxy-headers and
    --forwarded-allow-ips so this is the buyer's address (from X-Forwarded-For), not the proxy's.

    uvicorn passes X-Forwarded-For on from a trusted proxy unchecked, so anything that is not an IP address reads
    as ``unknown``: a crafted header must not reach the audit log (which bounds its ip column) or name a bucket."""
    client = connection.client
    return _normalized(client.host) if client is not None and client.host else UNKNOWN_CLIENT


@functools.lru_cache(maxsize=addresses_cached_max)  # a hot-path call: most requests come from few addresses
def _normalized(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return UNKNOWN_CLIENT
