"""Signing a ticket, and the offline verifier: a pure function of the payload, the org's public keys, the events
being admitted and the revoked ticket ids. Scanners embed it (issue 14) with the keys and revocations of their
bundle; the gateway runs the same function.

The checks run in this order, and each failure has its own reason:
  malformed / unsupported_version   the text is not a payload this verifier reads
  unknown_key                       no key of the ring has the payload's kid (or it is another org's)
  retired_key                       the key was retired: every ticket it signed is refused
  wrong_event                       the payload's event tag is none of the events admitted here
  bad_signature                     the signature does not cover these claims for this org and event
  revoked                           a genuine ticket, revoked (refunded or changed)
Only a ticket whose signature holds is ever reported revoked, so "revoked" is never said of a forgery; the three
before the signature are said of what the payload claims, and cost no signature check.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature

from engine.tickets import payload as codec
from engine.tickets.keys import KeyRing, KeyStatus, SigningKey
from engine.tickets.payload import Malformed, TicketClaims


class RefusalReason(StrEnum):
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KEY = "unknown_key"
    RETIRED_KEY = "retired_key"
    WRONG_EVENT = "wrong_event"
    BAD_SIGNATURE = "bad_signature"
    REVOKED = "revoked"


@dataclass(frozen=True)
class TicketRefusal:
    reason: RefusalReason
    message: str


@dataclass(frozen=True)
class VerifiedTicket:
    """A ticket whose signature holds, for an admitted event, by a key not retired, and not revoked."""

    ticket_id: str
    event_id: str
    org_id: str
    kid: str
    key_status: KeyStatus
    ticket_type: str
    seat_id: str | None
    unit: int | None


def sign(claims: TicketClaims, key: SigningKey) -> str:
    """The QR payload of ``claims``, signed by ``key`` (an org's active key)."""
    return codec.encode(claims, key.kid, key.sign(codec.signed_message(claims, key.kid, key.org_id)))


def verify(
    payload: str, keys: KeyRing, *, event_ids: Collection[str], revoked: Collection[str] = frozenset()
) -> VerifiedTicket | TicketRefusal:
    """Whether ``payload`` admits its holder to one of ``event_ids``: needs nothing but what a scanner holds."""
    if not isinstance(payload, str):
        return TicketRefusal(RefusalReason.MALFORMED, "a ticket payload is text")
    if payload[:1].isascii() and payload[:1].isdigit() and payload[:1] != codec.PAYLOAD_VERSION:
        return TicketRefusal(RefusalReason.UNSUPPORTED_VERSION, f"payload version {payload[0]} is not read here")
    try:
        decoded = codec.decode(payload)
    except Malformed as error:
        return TicketRefusal(RefusalReason.MALFORMED, str(error))
    held = keys.get(decoded.kid)
    if held is None:
        return TicketRefusal(RefusalReason.UNKNOWN_KEY, f"no key {decoded.kid}")
    key, public = held
    if key.status is KeyStatus.RETIRED:
        return TicketRefusal(RefusalReason.RETIRED_KEY, f"key {decoded.kid} is retired")
    candidates = [event for event in event_ids if codec.event_tag(event) == decoded.event_tag]
    if not candidates:
        return TicketRefusal(RefusalReason.WRONG_EVENT, "the ticket is for another event")
    for event_id in candidates:  # more than one only if two admitted events share a 3-byte tag
        claims = decoded.claims_for(event_id)
        try:
            public.verify(decoded.signature, codec.signed_message(claims, key.kid, key.org_id))
        except InvalidSignature:
            continue
        if claims.ticket_id in revoked:
            return TicketRefusal(RefusalReason.REVOKED, f"ticket {claims.ticket_id} was revoked")
        return VerifiedTicket(
            claims.ticket_id, event_id, key.org_id, key.kid, key.status, claims.ticket_type, claims.seat_id, claims.unit
        )
    return TicketRefusal(RefusalReason.BAD_SIGNATURE, "the signature does not hold")
