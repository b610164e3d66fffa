"""The QR payload of a ticket, version 1: what it carries, how it is laid out, and the bytes its signature covers.

Text (every character is a QR byte-mode character, and safe in JSON and URLs)::

    "1"                        version
    108 base64url characters   81 bytes, no padding (81 = 3 x 27, so no spare bits):
                                 0..2    kid           the signing key, unique within its org
                                 3..5    event tag     the first 3 bytes of the event id's 16
                                 6..15   hold token    the 10 random bytes of the ticket id after the event
                                 16      ordinal       the ticket's number in its sale, 1..100
                                 17..80  signature     Ed25519 over the signed message below
    ticket type code           [A-Za-z0-9_-]{1,32}
    "." seat id | "~" unit     a seat id [A-Za-z0-9_-]{1,128}, or a GA unit in decimal 1..1,000,000

The ticket id is ``tkt_<event hex><token hex>_<ordinal>`` (engine/ids.py), so the payload holds all of it but the
event's last 13 bytes, and the org not at all: the verifier knows both (its events, and the org of the key the kid
names), and the signature covers them in full, so a ticket of another event or org never verifies. Signed message::

    b"voelgoed-ticket/1\\0" | org id (16 bytes) | event id (16) | kid (3) | token (10) | ordinal (1)
    | b"." or b"~" | len(type) (1) | type | seat id, or unit in decimal

Decoding is canonical: a string decodes only if encoding what it decoded gives the same string back, so no two
strings carry one signed ticket and every changed character changes the signed message (or fails to decode).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from engine import ids, limits
from engine.tickets.keys import kid_bytes, org_bytes, signature_bytes

PAYLOAD_VERSION = "1"
event_tag_bytes = 3
hold_token_bytes = 10
ordinal_max = limits.seats_per_hold_max  # a sale's tickets are numbered 1..its seats or units
binary_bytes = kid_bytes + event_tag_bytes + hold_token_bytes + 1 + signature_bytes
binary_chars = 4 * binary_bytes // 3
assert binary_bytes % 3 == 0, "whole base64 quanta: no padding, no spare bits"
ticket_type_chars_max = limits.label_chars_max
seat_id_chars_max = limits.id_chars_max
unit_max = limits.ga_capacity_max
payload_chars_max = 1 + binary_chars + ticket_type_chars_max + 1 + seat_id_chars_max
SEAT_MARK = "."
UNIT_MARK = "~"
_DOMAIN = b"voelgoed-ticket/1\x00"
_BINARY_RE = re.compile(rf"[A-Za-z0-9_-]{{{binary_chars}}}")
_TAIL_RE = re.compile(
    rf"(?P<type>[A-Za-z0-9_-]{{1,{ticket_type_chars_max}}})"
    rf"(?:\.(?P<seat>[A-Za-z0-9_-]{{1,{seat_id_chars_max}}})|~(?P<unit>[1-9][0-9]{{0,6}}))"
)
_TICKET_RE = re.compile(rf"{ids.TICKET_PREFIX}([0-9a-f]{{32}})([0-9a-f]{{20}})_([1-9][0-9]{{0,2}})")


class Malformed(ValueError):
    """Not a version 1 ticket payload (or not one any encoder makes)."""


@dataclass(frozen=True)
class TicketClaims:
    """What a signed ticket says: its id (which names its event), its type, and its seat or GA unit."""

    ticket_id: str
    ticket_type: str
    seat_id: str | None = None
    unit: int | None = None

    def __post_init__(self) -> None:
        match = _TICKET_RE.fullmatch(self.ticket_id)
        assert match is not None and 1 <= int(match.group(3)) <= ordinal_max, self.ticket_id
        assert (self.seat_id is None) != (self.unit is None), "a ticket has a seat or a GA unit"
        # _TAIL_RE is what decoding accepts: a claim it would refuse must never be signed
        place = f"{SEAT_MARK}{self.seat_id}" if self.seat_id is not None else f"{UNIT_MARK}{self.unit}"
        assert _TAIL_RE.fullmatch(self.ticket_type + place) is not None, (self.ticket_type, place)
        assert self.unit is None or 1 <= self.unit <= unit_max, self.unit

    @property
    def event_id(self) -> str:
        return ids.EVENT_PREFIX + self.ticket_id[len(ids.TICKET_PREFIX) : len(ids.TICKET_PREFIX) + 32]


@dataclass(frozen=True)
class Decoded:
    """A payload taken apart, nothing checked but its form: the verifier decides whether to believe it."""

    kid: str
    event_tag: bytes
    hold_token: bytes
    ordinal: int
    ticket_type: str
    seat_id: str | None
    unit: int | None
    signature: bytes

    def claims_for(self, event_id: str) -> TicketClaims:
        ticket_id = f"{ids.TICKET_PREFIX}{event_id[len(ids.EVENT_PREFIX) :]}{self.hold_token.hex()}_{self.ordinal}"
        return TicketClaims(ticket_id, self.ticket_type, self.seat_id, self.unit)


def event_bytes(event_id: str) -> bytes:
    if not ids.is_event_id(event_id):
        raise ValueError(f"not an event id: {event_id!r}")
    return bytes.fromhex(event_id[len(ids.EVENT_PREFIX) :])


def event_tag(event_id: str) -> bytes:
    return event_bytes(event_id)[:event_tag_bytes]


def signed_message(claims: TicketClaims, kid: str, org_id: str) -> bytes:
    match = _TICKET_RE.fullmatch(claims.ticket_id)
    assert match is not None
    ordinal = int(match.group(3))
    kind, place = (SEAT_MARK, claims.seat_id) if claims.seat_id is not None else (UNIT_MARK, str(claims.unit))
    type_bytes = claims.ticket_type.encode("ascii")
    return b"".join((
        _DOMAIN, org_bytes(org_id), bytes.fromhex(match.group(1)), bytes.fromhex(kid), bytes.fromhex(match.group(2)),
        bytes((ordinal,)), kind.encode("ascii"), bytes((len(type_bytes),)), type_bytes, place.encode("ascii"),
    ))  # fmt: skip


def encode(claims: TicketClaims, kid: str, signature: bytes) -> str:
    assert len(signature) == signature_bytes
    match = _TICKET_RE.fullmatch(claims.ticket_id)
    assert match is not None
    binary = b"".join((
        bytes.fromhex(kid), bytes.fromhex(match.group(1))[:event_tag_bytes], bytes.fromhex(match.group(2)),
        bytes((int(match.group(3)),)), signature,
    ))  # fmt: skip
    assert len(binary) == binary_bytes
    place = f"{SEAT_MARK}{claims.seat_id}" if claims.seat_id is not None else f"{UNIT_MARK}{claims.unit}"
    text = base64.urlsafe_b64encode(binary).decode("ascii")
    return PAYLOAD_VERSION + text + claims.ticket_type + place


def decode(payload: str) -> Decoded:
    """The payload's parts; ``Malformed`` for anything an encoder would not have made."""
    if len(payload) > payload_chars_max or not payload.startswith(PAYLOAD_VERSION):
        raise Malformed("not a version 1 ticket payload")
    body = payload[1 : 1 + binary_chars]
    tail = _TAIL_RE.fullmatch(payload, 1 + binary_chars)
    if _BINARY_RE.fullmatch(body) is None or tail is None:
        raise Malformed("not a version 1 ticket payload")
    try:
        binary = base64.urlsafe_b64decode(body)
    except (binascii.Error, ValueError):
        raise Malformed("the signed part is not base64url") from None
    ordinal = binary[16]
    unit = None if tail.group("unit") is None else int(tail.group("unit"))
    if not 1 <= ordinal <= ordinal_max or (unit is not None and unit > unit_max):
        raise Malformed("ticket number or unit out of range")
    decoded = Decoded(
        kid=binary[0:3].hex(), event_tag=binary[3:6], hold_token=binary[6:16], ordinal=ordinal,
        ticket_type=tail.group("type"), seat_id=tail.group("seat"), unit=unit, signature=binary[17:],
    )  # fmt: skip
    if _reencoded(decoded) != payload:
        raise Malformed("not in canonical form")
    return decoded


def _reencoded(decoded: Decoded) -> str:
    binary = b"".join((
        bytes.fromhex(decoded.kid), decoded.event_tag, decoded.hold_token, bytes((decoded.ordinal,)),
        decoded.signature,
    ))  # fmt: skip
    place = f"{SEAT_MARK}{decoded.seat_id}" if decoded.seat_id is not None else f"{UNIT_MARK}{decoded.unit}"
    return PAYLOAD_VERSION + base64.urlsafe_b64encode(binary).decode("ascii") + decoded.ticket_type + place
