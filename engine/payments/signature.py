"""The webhook signature: `Voelgoed-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

The timestamp is inside the MAC, so a captured delivery cannot be replayed later than `signature_age_s_max` with a
new timestamp; replays inside that window are the receiver's to refuse by event id. Several `v1` values are
allowed (a sender rotating its secret signs with both); one matching is enough. Everything else about the header
is strict: one `t`, digits only, bounded lengths, unknown schemes ignored.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

SIGNATURE_HEADER = "Voelgoed-Signature"
SCHEME = "v1"
signature_age_s_max = 300  # older deliveries are refused: a captured one cannot be replayed for long
signature_future_s_max = 60  # a sender's clock this far ahead is tolerated, no further
signature_header_chars_max = 1_024
signature_v1_values_max = 4
signature_items_max = 8
timestamp_digits_max = 12
_mac_hex_chars = hashlib.sha256().digest_size * 2
_HEX = frozenset("0123456789abcdef")


class SignatureRefusal(StrEnum):
    MALFORMED = "signature_malformed"
    STALE = "signature_stale"
    FUTURE = "signature_from_the_future"
    MISMATCH = "signature_mismatch"


@dataclass(frozen=True, slots=True)
class ParsedSignature:
    timestamp_s: int
    macs: tuple[str, ...]


def mac_hex(secret: bytes, body: bytes, timestamp_s: int) -> str:
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return hmac.new(secret, b"%d." % timestamp_s + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp_s: int) -> str:
    """The header value for ``body`` sent at ``timestamp_s``."""
    if timestamp_s < 0:
        raise ValueError("timestamps are unix seconds, never negative")
    return f"t={timestamp_s},{SCHEME}={mac_hex(secret, body, timestamp_s)}"


def parse(header: str) -> ParsedSignature | None:
    """The header's timestamp and v1 MACs, or None when it is not a well-formed signature header."""
    if not header or len(header) > signature_header_chars_max:
        return None
    items = header.split(",")
    if len(items) > signature_items_max:
        return None
    timestamps: list[int] = []
    macs: list[str] = []
    for item in items:
        key, sep, value = item.strip().partition("=")
        if not sep or not key or not value:
            return None
        if key == "t":
            if not (value.isascii() and value.isdigit()) or len(value) > timestamp_digits_max:
                return None
            timestamps.append(int(value))
        elif key == SCHEME:
            if len(value) != _mac_hex_chars or not _HEX.issuperset(value):
                return None
            macs.append(value)
    if len(timestamps) != 1 or not macs or len(macs) > signature_v1_values_max:
        return None
    return ParsedSignature(timestamp_s=timestamps[0], macs=tuple(macs))


def verify(secret: bytes, body: bytes, header: str, now_s: float) -> SignatureRefusal | None:
    """None when ``header`` signs ``body`` with ``secret`` recently enough; else why it does not."""
    parsed = parse(header)
    if parsed is None:
        return SignatureRefusal.MALFORMED
    if parsed.timestamp_s < now_s - signature_age_s_max:
        return SignatureRefusal.STALE
    if parsed.timestamp_s > now_s + signature_future_s_max:
        return SignatureRefusal.FUTURE
    expected = mac_hex(secret, body, parsed.timestamp_s).encode()
    # every candidate is compared in constant time; which one matched is not observable beyond "one did"
    matched = [hmac.compare_digest(expected, mac.encode()) for mac in parsed.macs]
    return None if any(matched) else SignatureRefusal.MISMATCH
